//! Text and dates as the feed formats want them.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone};

/// Whether XML 1.0 allows `c` (its `Char` production) and does not discourage it as
/// a control character (C1 controls, which parsers treat as line ends or drop). Rust
/// strings hold no surrogates, so what is left out is C0 and C1 controls other than
/// tab and line ends, and U+FFFE/U+FFFF.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7E}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `s` without the characters XML 1.0 forbids or discourages. Borrows when there
/// are none (the usual case: validation already refuses control characters).
pub fn clean(s: &str) -> Cow<'_, str> {
    if !has_dropped(s) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|c| is_xml_char(*c)).collect())
    }
}

/// Whether `s` holds a character [`is_xml_char`] refuses, looking at UTF-8 bytes:
/// C0 controls and DEL are single bytes, C1 controls `C2 80..9F`, U+FFFE/F `EF BF BE/BF`.
fn has_dropped(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| match c {
        b'\t' | b'\n' | b'\r' => false,
        0x00..=0x1F | 0x7F => true,
        0xC2 => matches!(b.get(i + 1), Some(0x80..=0x9F)),
        0xEF => b.get(i + 1) == Some(&0xBF) && matches!(b.get(i + 2), Some(0xBE | 0xBF)),
        _ => false,
    })
}

/// [`clean`], then without surrounding XML white space, which parsers drop.
pub fn clean_trim(s: &str) -> Cow<'_, str> {
    let xml_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    match clean(s) {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim_matches(xml_space)),
        Cow::Owned(o) => Cow::Owned(o.trim_matches(xml_space).to_string()),
    }
}

/// RFC 3339 as Atom and JSON Feed want it: uppercase `T`, whole seconds, the
/// statement's own offset or `Z`.
pub fn rfc3339<Tz: TimeZone>(d: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    d.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 822 (with four-digit years, as RFC 1123 and the RSS profile ask) and a
/// numeric offset: never `UTC`, which RFC 822 does not know.
pub fn rfc822(d: &DateTime<FixedOffset>) -> String {
    d.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_forbidden() {
        assert_eq!(clean("a\u{0}b\u{1b}c\u{FFFE}d\u{FFFF}"), "abcd");
        assert!(matches!(clean("tab\tnl\n ok ٱ 🎉"), Cow::Borrowed(_)));
        assert_eq!(clean("a\u{7f}\u{85}\u{9f}\u{a0}"), "a\u{a0}");
    }

    #[test]
    fn byte_scan_agrees_with_chars() {
        for c in [
            '\0',
            '\t',
            '\n',
            '\r',
            '\u{1f}',
            ' ',
            '\u{7e}',
            '\u{7f}',
            '\u{80}',
            '\u{85}',
            '\u{9f}',
            '\u{a0}',
            '\u{d7ff}',
            '\u{e000}',
            '\u{fffd}',
            '\u{fffe}',
            '\u{ffff}',
            '\u{10000}',
            '\u{10ffff}',
            'Қ',
            '🎉',
        ] {
            let s = format!("a{c}b");
            assert_eq!(has_dropped(&s), !is_xml_char(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn trims_after_cleaning() {
        assert_eq!(clean_trim("\u{0} x \u{1}\n"), "x");
        assert_eq!(clean_trim("\u{a0}x"), "\u{a0}x");
    }

    #[test]
    fn dates() {
        let d = DateTime::parse_from_rfc3339("2014-07-30T09:00:00+06:00").expect("date");
        assert_eq!(rfc3339(&d), "2014-07-30T09:00:00+06:00");
        assert_eq!(rfc822(&d), "Wed, 30 Jul 2014 09:00:00 +0600");
        let z = DateTime::parse_from_rfc3339("2014-07-30T09:00:00Z").expect("date");
        assert_eq!(rfc3339(&z), "2014-07-30T09:00:00Z");
        assert_eq!(rfc822(&z), "Wed, 30 Jul 2014 09:00:00 +0000");
    }
}
