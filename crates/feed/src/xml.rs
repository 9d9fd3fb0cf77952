//! A thin layer over quick-xml's writer: every text and attribute value passes
//! through [`clean`] and is escaped exactly once, here. Element text, the bulk of
//! a feed, is escaped and cleaned in one pass straight into the output.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesPI, BytesStart, Event};

use crate::text::clean;

pub(crate) type Attrs<'a> = &'a [(&'a str, &'a str)];

pub(crate) struct Xml {
    w: Writer<Vec<u8>>,
    depth: usize,
}

impl Xml {
    /// A document with the XML declaration and, when given, the XSL stylesheet.
    pub fn new(capacity: usize, stylesheet: Option<&str>) -> std::io::Result<Self> {
        let mut w = Writer::new(Vec::with_capacity(capacity));
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
        w.get_mut().push(b'\n');
        if let Some(href) = stylesheet {
            let pi = format!(
                "xml-stylesheet type=\"text/xsl\" href=\"{}\"",
                quick_xml::escape::escape(clean(href))
            );
            w.write_event(Event::PI(BytesPI::new(pi)))?;
            w.get_mut().push(b'\n');
        }
        Ok(Self { w, depth: 0 })
    }

    /// A line break and indentation before a tag: never inside text, so it
    /// changes no element's content.
    fn indent(&mut self) {
        if self.depth > 0 {
            let buf = self.w.get_mut();
            buf.push(b'\n');
            for _ in 0..self.depth {
                buf.extend_from_slice(b"  ");
            }
        }
    }

    fn open<'b>(name: &'b str, attrs: Attrs<'_>) -> BytesStart<'b> {
        let mut e = BytesStart::new(name);
        for (k, v) in attrs {
            // quick-xml escapes attribute values (`<`, `&`, quotes).
            e.push_attribute((*k, clean(v).as_ref()));
        }
        e
    }

    pub fn start(&mut self, name: &str, attrs: Attrs<'_>) -> std::io::Result<()> {
        self.indent();
        self.w.write_event(Event::Start(Self::open(name, attrs)))?;
        self.depth += 1;
        Ok(())
    }

    pub fn end(&mut self, name: &str) -> std::io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.w.write_event(Event::End(BytesEnd::new(name)))
    }

    pub fn empty(&mut self, name: &str, attrs: Attrs<'_>) -> std::io::Result<()> {
        self.indent();
        self.w.write_event(Event::Empty(Self::open(name, attrs)))
    }

    /// `<name attrs>text</name>`, the text cleaned and escaped once.
    pub fn text(&mut self, name: &str, attrs: Attrs<'_>, text: &str) -> std::io::Result<()> {
        self.indent();
        self.w.write_event(Event::Start(Self::open(name, attrs)))?;
        escape_text_into(self.w.get_mut(), text);
        self.w.write_event(Event::End(BytesEnd::new(name)))
    }

    pub fn finish(self) -> Vec<u8> {
        let mut bytes = self.w.into_inner();
        bytes.push(b'\n');
        bytes
    }
}

/// The bytes [`escape_text_into`] looks at more closely: markup, `\r`, the
/// controls it drops, and the lead bytes of the characters it drops.
static ATTENTION: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = b != 0x09 && b != 0x0A;
        b += 1;
    }
    t[b'&' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[0x7F] = true;
    t[0xC2] = true;
    t[0xEF] = true;
    t
};

/// Append `s` as XML element text: `&`, `<`, `>` escaped, `\r` as `&#13;` (which XML
/// would otherwise turn into `\n`), and the characters [`clean`] drops dropped. One
/// pass over the bytes; runs of ordinary text are copied whole.
pub(crate) fn escape_text_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + bytes.len() / 8);
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Ordinary bytes are skipped by a table look-up: the escaped HTML of the
        // entries is most of a feed's bytes.
        if !ATTENTION[usize::from(bytes[i])] {
            i += 1;
            continue;
        }
        let b = bytes[i];
        // (replacement, bytes consumed); most bytes need neither.
        let special: Option<(&[u8], usize)> = match b {
            b'&' => Some((b"&amp;", 1)),
            b'<' => Some((b"&lt;", 1)),
            b'>' => Some((b"&gt;", 1)),
            b'\r' => Some((b"&#13;", 1)),
            b'\t' | b'\n' => None,
            0x00..=0x1F | 0x7F => Some((b"", 1)),
            // U+0080..U+009F (C1 controls) are 0xC2 0x80..=0x9F in UTF-8.
            0xC2 if matches!(bytes.get(i + 1), Some(0x80..=0x9F)) => Some((b"", 2)),
            // U+FFFE and U+FFFF are 0xEF 0xBF 0xBE/0xBF.
            0xEF if bytes.get(i + 1) == Some(&0xBF)
                && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) =>
            {
                Some((b"", 3))
            }
            _ => None,
        };
        match special {
            Some((with, len)) => {
                out.extend_from_slice(&bytes[run..i]);
                out.extend_from_slice(with);
                i += len;
                run = i;
            }
            None => i += 1,
        }
    }
    out.extend_from_slice(&bytes[run..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::clean;

    fn esc(s: &str) -> String {
        let mut v = Vec::new();
        escape_text_into(&mut v, s);
        String::from_utf8(v).expect("valid UTF-8")
    }

    #[test]
    fn escapes_once_and_cleans() {
        assert_eq!(
            esc("a & b < c > d ]]> &amp;"),
            "a &amp; b &lt; c &gt; d ]]&gt; &amp;amp;"
        );
        assert_eq!(esc("x\r\ny\tz"), "x&#13;\ny\tz");
        assert_eq!(
            esc("\u{0}a\u{1f}\u{7f}\u{85}\u{9f}b\u{a0}\u{fffe}\u{ffff}\u{fffd}🎉"),
            "ab\u{a0}\u{fffd}🎉"
        );
    }

    #[test]
    fn agrees_with_clean_and_quick_xml() {
        let s = "Қазақстан & \u{202e}مرحبا\u{0} e\u{301} <p>\u{85}\u{ffff}</p>\r";
        let expected = quick_xml::escape::partial_escape(clean(s).as_ref()).into_owned();
        assert_eq!(esc(s), expected);
    }
}
