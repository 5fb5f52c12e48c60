// weir's UI script: live grid and log updates over Server-Sent Events,
// earlier log pieces on demand, and checks of form fields. Every page reads
// without it.
(function () {
  "use strict";

  function follow(url, handlers) {
    var source = new EventSource(url);
    Object.keys(handlers).forEach(function (name) {
      source.addEventListener(name, function (e) { handlers[name](e, source); });
    });
    return source;
  }

  // The grid: cells and run bars change colour as states change.
  function setState(el, state, prefix) {
    el.className = el.className.replace(/\bs-[a-z_]+\b/g, "").trim() + " s-" + state;
    if (prefix !== undefined) { el.setAttribute("title", prefix + state); }
  }
  function applyChanges(list) {
    list.forEach(function (c) {
      if (c.task === null) {
        document.querySelectorAll('[data-run-head="' + c.run + '"]').forEach(function (el) {
          setState(el, c.state, el.dataset.label + ": ");
        });
        document.querySelectorAll('[data-run-state="' + c.run + '"]').forEach(function (el) {
          setState(el, c.state); el.textContent = c.state;
        });
      } else {
        var sel = '[data-run="' + c.run + '"][data-task="' + CSS.escape(c.task) + '"]';
        document.querySelectorAll(sel).forEach(function (el) {
          setState(el, c.state, c.task + " try " + c.try_number + ": ");
          el.dataset.state = c.state;
          if (el.classList.contains("state")) { el.textContent = c.state; }
        });
      }
    });
  }
  var grid = document.querySelector("[data-live]");
  if (grid) {
    var live = document.getElementById("live");
    follow(grid.dataset.live, {
      change: function (e) { applyChanges(JSON.parse(e.data)); },
      end: function (e, source) {
        applyChanges(JSON.parse(e.data));
        source.close();
        if (live) { live.textContent = "all shown runs have ended"; }
      }
    });
  }

  // The log: follow a running try; load earlier pieces.
  var log = document.getElementById("log");
  function nearBottom(el) { return el.scrollHeight - el.scrollTop - el.clientHeight < 40; }
  if (log && log.dataset.follow) {
    var status = document.getElementById("log-status");
    follow(log.dataset.follow, {
      append: function (e) {
        var stick = nearBottom(log);
        log.insertAdjacentHTML("beforeend", e.data);
        if (stick) { log.scrollTop = log.scrollHeight; }
      },
      end: function (e, source) {
        source.close();
        if (status) { status.textContent = "the try has ended"; }
        var badge = document.getElementById("log-state");
        if (badge && e.data) { setState(badge, e.data); badge.textContent = e.data; }
      }
    });
  }
  if (log) { log.scrollTop = log.scrollHeight; }
  var earlier = document.getElementById("earlier");
  if (earlier && log) {
    earlier.addEventListener("click", function (ev) {
      ev.preventDefault();
      fetch(earlier.dataset.url + "&before=" + log.dataset.start, { headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (piece) {
          var height = log.scrollHeight;
          log.insertAdjacentHTML("afterbegin", piece.html);
          log.scrollTop += log.scrollHeight - height;
          log.dataset.start = piece.start;
          if (piece.start === 0) { earlier.hidden = true; }
        });
    });
  }

  // Trigger form: conf must be a JSON object before it is sent.
  document.querySelectorAll("textarea[data-json-object]").forEach(function (area) {
    var out = document.getElementById(area.id + "-check");
    function check() {
      var msg = "";
      if (area.value.trim() !== "") {
        try {
          var v = JSON.parse(area.value);
          if (v === null || typeof v !== "object" || Array.isArray(v)) { msg = "conf must be a JSON object, like {\"key\": 1}"; }
        } catch (err) { msg = "not JSON: " + err.message; }
      }
      area.setCustomValidity(msg);
      if (out) { out.textContent = msg; }
    }
    area.addEventListener("input", check);
    check();
  });

  // Backfill form: say how many runs it would create as the range changes.
  var bf = document.getElementById("backfill-form");
  if (bf) {
    var out = document.getElementById("backfill-preview");
    var timer = null;
    var update = function () {
      var from = bf.elements.from.value, to = bf.elements.to.value;
      if (!from || !to) { return; }
      var q = "?from=" + encodeURIComponent(from) + "&to=" + encodeURIComponent(to) +
        (bf.elements.rerun.checked ? "&rerun=on" : "");
      fetch(bf.dataset.preview + q).then(function (r) { return r.text(); })
        .then(function (t) { out.textContent = t; });
    };
    bf.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(update, 250); });
  }

  // "Select all" boxes.
  document.querySelectorAll("[data-select-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      document.querySelectorAll('input[name="' + box.dataset.selectAll + '"][form="' + box.getAttribute("form") + '"], form#' +
        box.getAttribute("form") + ' input[name="' + box.dataset.selectAll + '"]').forEach(function (b) { b.checked = box.checked; });
    });
  });
})();
