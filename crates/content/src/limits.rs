//! Limits on one statement, each checked at load time and reported as a diagnostic.
//!
//! They are generous for real statements (the longest of years of UN press releases
//! stay far below each) and far below what would slow a channel down or exhaust a
//! stack: every renderer walks the document tree recursively, and these bound it.
//! docs/content.md lists them; change both together.

/// Largest statement file, in bytes (1 MiB: a long report is about 100 KB).
pub const FILE_BYTES: usize = 1024 * 1024;

/// Longest title, in characters.
pub const TITLE_CHARS: usize = 300;

/// Longest summary, in characters.
pub const SUMMARY_CHARS: usize = 1_000;

/// Longest `place`, `occasion` and issuer, in characters.
pub const FIELD_CHARS: usize = 300;

/// Longest `slug` and topic, in characters.
pub const SLUG_CHARS: usize = 100;

/// Most issuers of one statement.
pub const ISSUERS: usize = 20;

/// Most topics of one statement.
pub const TOPICS: usize = 20;

/// Deepest nesting of lists, block quotes and footnotes inside one another.
pub const BLOCK_DEPTH: usize = 16;

/// Deepest nesting of emphasis, strong, strikethrough, links and images.
pub const INLINE_DEPTH: usize = 16;

/// Deepest nesting of raw HTML elements in one HTML block, counted as start tags
/// not yet closed (an element the parser closes by itself counts until its end tag).
/// The HTML parser's work grows with the square of the depth.
pub const HTML_DEPTH: usize = 256;

/// Elements that never hold content, so never nest.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];

/// The byte offset of the first start tag in `html` that opens an element deeper than
/// [`HTML_DEPTH`], if any. Linear: the tag names are read, nothing else.
pub fn html_too_deep(html: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut from = 0;
    while let Some(off) = html[from..].find('<') {
        let at = from + off;
        let rest = &html[at + 1..];
        if rest.starts_with('/') {
            depth = depth.saturating_sub(1);
        } else if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            let len = rest
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            let name = rest[..len].to_ascii_lowercase();
            if !VOID.contains(&name.as_str()) {
                depth += 1;
                if depth > HTML_DEPTH {
                    return Some(at);
                }
            }
        }
        from = at + 1;
    }
    None
}

/// The longest a single-line front matter field may be, in characters.
pub fn field_chars(key: &str) -> usize {
    match key {
        "title" => TITLE_CHARS,
        "summary" => SUMMARY_CHARS,
        "slug" | "topics" => SLUG_CHARS,
        _ => FIELD_CHARS,
    }
}

/// The first character a single-line field must not hold: a control character
/// (C0, DEL, C1: tab, NUL, escape, CR, LF, NEL...) or a line or paragraph separator.
pub fn bad_in_line(s: &str) -> Option<char> {
    s.chars()
        .find(|&c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
}

/// The first control character a body text must not hold: any but tab, LF and CR.
pub fn bad_in_body(s: &str) -> Option<(usize, char)> {
    s.char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// How a character is named in a message: `U+001B`, with its escape when it has one.
pub fn describe(c: char) -> String {
    let name = match c {
        '\0' => " (NUL)",
        '\t' => " (tab)",
        '\n' => " (line feed)",
        '\r' => " (carriage return)",
        '\u{1b}' => " (escape)",
        '\u{7f}' => " (delete)",
        '\u{85}' => " (next line)",
        '\u{2028}' => " (line separator)",
        '\u{2029}' => " (paragraph separator)",
        _ => "",
    };
    format!("U+{:04X}{name}", c as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_fields_refuse_every_control_and_separator() {
        for c in [
            '\0', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}',
            '\u{2028}', '\u{2029}',
        ] {
            assert_eq!(bad_in_line(&format!("A{c}B")), Some(c), "{c:?}");
        }
        assert_eq!(bad_in_line("Astana — «Жаңа» 😀 \u{a0}"), None);
    }

    #[test]
    fn html_depth_counts_open_elements() {
        let deep = "<div>".repeat(HTML_DEPTH + 1);
        assert_eq!(html_too_deep(&deep), Some(HTML_DEPTH * 5));
        let flat = "<div><br><img src=x>x</div>".repeat(10_000);
        assert_eq!(html_too_deep(&flat), None);
        assert_eq!(html_too_deep(&"<b>".repeat(HTML_DEPTH)), None);
        assert_eq!(html_too_deep("a < b <3 </"), None);
    }

    #[test]
    fn body_keeps_tab_and_line_breaks() {
        assert_eq!(bad_in_body("a\tb\r\nc\n"), None);
        assert_eq!(bad_in_body("ab\u{1b}"), Some((2, '\u{1b}')));
        assert_eq!(describe('\u{85}'), "U+0085 (next line)");
    }
}
