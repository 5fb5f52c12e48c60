//! Terminal colours in logs (ANSI SGR escapes) as HTML spans, so a log reads
//! as it did in a terminal and stays plain text for the browser's search.

/// `text` escaped for HTML, with SGR colour and bold escapes turned into
/// `<span class="ansi-…">`; every other escape sequence is dropped.
pub fn to_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut open = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() != Some(&'[') {
                continue;
            }
            chars.next();
            let mut params = String::new();
            let mut last = None;
            for p in chars.by_ref() {
                if p.is_ascii_alphabetic() || p == '~' {
                    last = Some(p);
                    break;
                }
                params.push(p);
            }
            if last != Some('m') {
                continue;
            }
            if open {
                out.push_str("</span>");
                open = false;
            }
            let classes = classes(&params);
            if !classes.is_empty() {
                out.push_str("<span class=\"");
                out.push_str(&classes.join(" "));
                out.push_str("\">");
                open = true;
            }
            continue;
        }
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    if open {
        out.push_str("</span>");
    }
    out
}

/// The classes of one SGR sequence (`1;31` → bold, red).
fn classes(params: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in params.split(';') {
        match p.parse::<u8>().unwrap_or(0) {
            1 => out.push("ansi-bold".to_owned()),
            n @ 30..=37 => out.push(format!("ansi-fg{}", n - 30)),
            n @ 90..=97 => out.push(format!("ansi-fg{}", n - 90 + 8)),
            n @ 40..=47 => out.push(format!("ansi-bg{}", n - 40)),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_html;

    #[test]
    fn colours_become_spans_and_markup_is_escaped() {
        assert_eq!(
            to_html("\u{1b}[1;31mERROR\u{1b}[0m <b>&"),
            "<span class=\"ansi-bold ansi-fg1\">ERROR</span> &lt;b&gt;&amp;"
        );
    }

    #[test]
    fn other_escapes_are_dropped_and_an_open_span_is_closed() {
        assert_eq!(
            to_html("\u{1b}[2Kx\u{1b}[92my"),
            "x<span class=\"ansi-fg10\">y</span>"
        );
        assert!(to_html("\u{1b}[32mgreen").ends_with("</span>"));
    }
}
