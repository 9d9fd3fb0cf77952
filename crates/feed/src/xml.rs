//! A thin layer over quick-xml's writer: every text and attribute value passes
//! through [`clean`] and is escaped exactly once, here.

use quick_xml::Writer;
use quick_xml::escape::partial_escape;
use quick_xml::events::{BytesDecl, BytesEnd, BytesPI, BytesStart, BytesText, Event};

use crate::text::clean;

pub(crate) type Attrs<'a> = &'a [(&'a str, &'a str)];

pub(crate) struct Xml {
    w: Writer<Vec<u8>>,
}

impl Xml {
    /// A document with the XML declaration and, when given, the XSL stylesheet.
    pub fn new(capacity: usize, stylesheet: Option<&str>) -> std::io::Result<Self> {
        let mut w = Writer::new_with_indent(Vec::with_capacity(capacity), b' ', 2);
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
        if let Some(href) = stylesheet {
            // `"` cannot occur: the URL is built from a checked base_url and a constant.
            let pi = format!(
                "xml-stylesheet type=\"text/xsl\" href=\"{}\"",
                quick_xml::escape::escape(clean(href))
            );
            w.write_event(Event::PI(BytesPI::new(pi)))?;
        }
        Ok(Self { w })
    }

    fn open<'b>(name: &'b str, attrs: Attrs<'_>) -> BytesStart<'b> {
        let mut e = BytesStart::new(name);
        for (k, v) in attrs {
            // quick-xml escapes attribute values (`<`, `&`, quotes, and the whitespace
            // that attribute normalization would otherwise eat).
            e.push_attribute((*k, clean(v).as_ref()));
        }
        e
    }

    pub fn start(&mut self, name: &str, attrs: Attrs<'_>) -> std::io::Result<()> {
        self.w.write_event(Event::Start(Self::open(name, attrs)))
    }

    pub fn end(&mut self, name: &str) -> std::io::Result<()> {
        self.w.write_event(Event::End(BytesEnd::new(name)))
    }

    pub fn empty(&mut self, name: &str, attrs: Attrs<'_>) -> std::io::Result<()> {
        self.w.write_event(Event::Empty(Self::open(name, attrs)))
    }

    /// `<name attrs>text</name>`, the text escaped once (`&`, `<`, `>`).
    pub fn text(&mut self, name: &str, attrs: Attrs<'_>, text: &str) -> std::io::Result<()> {
        self.start(name, attrs)?;
        let cleaned = clean(text);
        self.w
            .write_event(Event::Text(BytesText::from_escaped(partial_escape(
                cleaned.as_ref(),
            ))))?;
        self.end(name)
    }

    pub fn finish(self) -> Vec<u8> {
        let mut bytes = self.w.into_inner();
        bytes.push(b'\n');
        bytes
    }
}
