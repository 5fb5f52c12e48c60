"""weir's web UI in a real browser (headless Chromium through Selenium).

Usage: browser_check.py BASE_URL ADMIN_PASSWORD OUT_DIR

Logs in, triggers hello_shell with a param and watches its grid cells turn
green without reloading, follows the log of a failing task while it runs,
clears it and sees the new try, and opens the quality history and the
quarantined rows of orders_daily. Saves a screenshot of every page it
visits in OUT_DIR (light and dark, wide and narrow for the main pages).
Exits non-zero with a message when something is not as it should be.
"""

import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

BASE, PASSWORD, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
CHROMIUM = os.environ.get("WEIR_TEST_CHROMIUM", "/usr/bin/chromium")
DRIVER = os.environ.get("WEIR_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
os.makedirs(OUT, exist_ok=True)


def browser(dark=False, width=1280, height=800):
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--window-size={width},{height}",
    ]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if dark:
        o.add_argument("--force-dark-mode")
        o.add_argument("--blink-settings=preferredColorScheme=0")
    return webdriver.Chrome(service=Service(DRIVER), options=o)


def wait(what, check, timeout=60):
    deadline = time.time() + timeout
    while True:
        try:
            value = check()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def shot(d, name, errors_expected=False):
    """A screenshot of the whole page; the browser must have reported no
    error (a blocked script or style, a failed request)."""
    width = d.get_window_size()["width"]
    full = d.execute_script("return document.documentElement.scrollHeight")
    d.set_window_size(width, min(max(full + 140, 600), 6000))
    time.sleep(0.2)
    d.save_screenshot(os.path.join(OUT, name + ".png"))
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    if errors and not errors_expected:
        raise SystemExit(f"{name}: the browser reported errors: {errors}")


def login(d):
    d.get(BASE + "/login")
    d.find_element(By.NAME, "username").send_keys("admin")
    d.find_element(By.NAME, "password").send_keys(PASSWORD)
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait("the DAG list", lambda: "DAGs" in d.title)


def cells(d, run_pk):
    return d.find_elements(By.CSS_SELECTOR, f'a.cell[data-run="{run_pk}"]')


def states(d, run_pk):
    return [c.get_attribute("class").split("s-")[-1].split()[0] for c in cells(d, run_pk)]


def selected_run_pk(d):
    bar = d.find_element(By.CSS_SELECTOR, ".run-bar.selected")
    return bar.get_attribute("data-run-head")


def trigger(d, dag, params=None):
    d.get(f"{BASE}/dags/{dag}?view=trigger")
    for name, value in (params or {}).items():
        field = d.find_element(By.NAME, f"param.{name}")
        field.clear()
        field.send_keys(value)
    d.find_element(By.CSS_SELECTOR, "form[action$='/trigger'] button[type=submit]").click()
    wait("the new run's page", lambda: "/runs/" in d.current_url)
    return selected_run_pk(d)


d = browser()
d.get(BASE + "/login")
shot(d, "01-login")
login(d)
wait("both example DAGs", lambda: "hello_shell" in d.page_source and "orders_daily" in d.page_source)
shot(d, "02-dags")

# The conf field refuses what is not a JSON object before it is sent.
d.get(BASE + "/dags/hello_shell?view=trigger")
conf = d.find_element(By.ID, "conf")
conf.send_keys("[1, 2]")
if d.execute_script("return arguments[0].checkValidity()", conf):
    raise SystemExit("the conf field accepted a JSON array")
shot(d, "03-trigger-form")

# Trigger with a param; the grid turns green without a reload.
pk = trigger(d, "hello_shell", {"greeting": "hello from the browser"})
hello_run = d.current_url.split("?")[0]
d.execute_script("window.__weir_same_page = true")
wait("the run's cells", lambda: len(cells(d, pk)) == 7)
wait("every cell green", lambda: all(s == "success" for s in states(d, pk)), timeout=90)
if not d.execute_script("return window.__weir_same_page === true"):
    raise SystemExit("the page reloaded: the grid did not update in place")
wait("the stream to end", lambda: "ended" in d.find_element(By.ID, "live").text)
shot(d, "04-grid-green")
# The run's notification (hello_shell notifies on success) is delivered and shown.
d.get(hello_run)
wait("the run's notification to be sent", lambda: ("Notifications" in d.page_source and ">sent<" in d.page_source)
     or (d.refresh() and False))
shot(d, "04b-run-notifications")
d.find_element(By.CSS_SELECTOR, f'a.cell[data-run="{pk}"][data-task="print_env"]').click()
wait("the task panel with its output", lambda: "Tries" in d.page_source and "Output" in d.page_source)
if '"try": 1' not in d.find_element(By.CSS_SELECTOR, "pre.output").text:
    raise SystemExit("the task's output is not shown in its panel")
shot(d, "05-task-instance")
# The mapped task's panel lists its instances; one instance's panel shows its item.
d.find_element(By.CSS_SELECTOR, f'a.cell[data-run="{pk}"][data-task="per_region"]').click()
wait("the mapped instances", lambda: "Mapped instances" in d.page_source)
items = [r.text for r in d.find_elements(By.CSS_SELECTOR, ".panel table tbody tr")]
if not any('"ap"' in r for r in items):
    raise SystemExit(f"the mapped instances do not show their items: {items}")
shot(d, "05b-mapped-task")
d.find_element(By.CSS_SELECTOR, ".panel a[href$='?map_index=2']").click()
wait("a mapped instance", lambda: "per_region [2]" in d.page_source and "Mapped instance of" in d.page_source)
shot(d, "05c-mapped-instance")
d.find_element(By.LINK_TEXT, "Log").click()
wait("the instance's log", lambda: "ap (instance 2)" in d.find_element(By.ID, "log").text)
d.get(hello_run + "/tasks/start/log")
wait("the param in the log", lambda: "hello from the browser" in d.find_element(By.ID, "log").text)
shot(d, "06-log")

# A task that fails slowly: follow its log while it runs, then clear it.
d.get(BASE + "/dags/ui_check?view=trigger")
pk = trigger(d, "ui_check")
task_url = d.current_url.split("?")[0] + "/tasks/slow_fail"
d.get(task_url)
wait("slow_fail to run", lambda: "running" in d.find_element(By.CSS_SELECTOR, ".panel .state").text
     or (d.refresh() and False))
d.get(task_url + "/log")
log = d.find_element(By.ID, "log")
if not log.get_attribute("data-follow"):
    raise SystemExit("the log of a running try is not followed")
d.execute_script("window.__weir_same_page = true")
wait("a later line to arrive live", lambda: "line 7" in d.find_element(By.ID, "log").text)
wait("the try to end", lambda: "ended" in d.find_element(By.ID, "log-status").text)
wait("the state to follow", lambda: d.find_element(By.ID, "log-state").text == "failed")
if not d.execute_script("return window.__weir_same_page === true"):
    raise SystemExit("the log page reloaded instead of following")
shot(d, "07-log-followed")
d.get(task_url)
wait("slow_fail to fail", lambda: "failed" in d.find_element(By.CSS_SELECTOR, ".panel .state").text
     or (d.refresh() and False))
d.find_element(By.CSS_SELECTOR, "form[action$='/clear'] button[type=submit]").click()
wait("try 2", lambda: "log?try=2" in d.page_source or (d.refresh() and False))
shot(d, "08-cleared-new-try")

# orders_daily: its run, the quality history and the quarantined rows.
pk = trigger(d, "orders_daily")
wait("orders_daily to succeed", lambda: all(s == "success" for s in states(d, pk)) and len(cells(d, pk)) == 7,
     timeout=120)
d.get(BASE + "/dags/orders_daily?view=graph")
shot(d, "09-graph")
d.get(BASE + "/dags/orders_daily?view=gantt")
shot(d, "10-gantt")
d.get(BASE + "/dags/orders_daily?view=backfill&from=2026-01-01&to=2026-01-05")
wait("the backfill preview", lambda: "5 new runs would be created" in d.page_source)
shot(d, "11-backfill")
d.get(BASE + "/dags/orders_daily/tasks/validate_orders/quality")
wait("the quality chart", lambda: d.find_elements(By.CSS_SELECTOR, "svg rect.quarantined"))
shot(d, "12-quality-history")
d.find_element(By.LINK_TEXT, "rows").click()
wait("the reasons", lambda: "format:email" in d.page_source)
shot(d, "13-quarantined-rows")
d.find_element(By.PARTIAL_LINK_TEXT, "format:email").click()
wait("one reason", lambda: "with reason" in d.page_source)
rows = d.find_elements(By.CSS_SELECTOR, "table tbody tr")
if not any("not-an-email" in r.text for r in rows):
    raise SystemExit("the row with the bad e-mail is not in the filtered view")
shot(d, "14-quarantine-filtered")
for path, name in [("/datasets", "15-datasets"), ("/datasets/clean.orders", "16-dataset"),
                   ("/audit", "17-audit"), ("/pools", "18-pools"), ("/workers", "20-workers"),
                   ("/dags/nope", "19-not-found")]:
    d.get(BASE + path)
    wait(path, lambda: "weir" in d.title)
    shot(d, name, errors_expected=name == "19-not-found")
# Variables set through the page's form; a secret one is shown masked.
for key, value in [("orders_bucket", "s3://raw/orders"), ("warehouse_password", "hunter2-secret"),
                   ("limits", '{"max_rows": 100000, "regions": ["eu", "us"]}')]:
    d.get(BASE + "/variables")
    d.find_element(By.ID, "key").send_keys(key)
    d.find_element(By.ID, "value").send_keys(value)
    d.find_element(By.ID, "description").send_keys("set from the page")
    d.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    wait(key, lambda: key in d.page_source)
if "hunter2-secret" in d.page_source or "***" not in d.page_source:
    raise SystemExit("the secret variable is not masked on the page")
shot(d, "21-variables")
# A connection added through the page: its password never comes back.
d.get(BASE + "/connections")
d.find_element(By.ID, "conn-id").send_keys("warehouse_pg")
d.find_element(By.ID, "conn-url").send_keys("postgres://etl@db.internal:5432/warehouse?sslmode=require")
d.find_element(By.ID, "conn-password").send_keys("hunter2-secret")
d.find_element(By.ID, "conn-description").send_keys("the warehouse")
d.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
wait("the new connection", lambda: "warehouse_pg" in d.page_source)
if "hunter2-secret" in d.page_source or "***" not in d.page_source:
    raise SystemExit("the connection's password is not masked on the page")
shot(d, "22-connections")
d.quit()

# Dark and narrow.
for dark, width, height, tag in [(True, 1280, 800, "dark-wide"), (False, 390, 844, "light-narrow"),
                                 (True, 390, 844, "dark-narrow")]:
    d = browser(dark, width, height)
    login(d)
    for path, name in [("/", "dags"), ("/dags/orders_daily", "dag"), ("/dags/orders_daily/tasks/validate_orders/quality", "quality"),
                       ("/variables", "variables"), ("/connections", "connections"),
                       ("/datasets/clean.orders", "dataset"),
                       (hello_run[len(BASE):] + "/tasks/print_env", "task-output"),
                       (hello_run[len(BASE):] + "/tasks/per_region", "mapped-task"),
                       (hello_run[len(BASE):], "run-notifications")]:
        d.set_window_size(width, height)
        d.get(BASE + path)
        shot(d, f"20-{name}-{tag}")
    d.quit()
print("ok:", OUT)
