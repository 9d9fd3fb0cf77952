//! The document tree as HTML, shared by the site, the feeds and the mail.
//! Everything is escaped here, so no channel has to remember to.

use std::fmt::Write;

use crate::doc::{Align, Block, Document, Inline};

/// How to write the HTML.
#[derive(Debug, Clone, Default)]
pub struct HtmlOptions<'a> {
    /// When set, relative URLs are made absolute against it (feeds, mail).
    /// Must end with `/`.
    pub base_url: Option<&'a str>,
    /// The page's own URL, for fragment links (`#fn-1`) in absolute mode.
    pub page_url: Option<&'a str>,
}

/// Escape text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

pub fn escape_into(out: &mut String, s: &str) {
    // Writing to a String cannot fail.
    let _ = write_escaped(out, s);
}

/// Write `s` with the five HTML specials escaped, copying the runs between them whole:
/// every page and template value goes through here. The specials are ASCII, so each
/// index is a character boundary.
pub fn write_escaped(out: &mut impl std::fmt::Write, s: &str) -> std::fmt::Result {
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.write_str(&s[run..i])?;
        out.write_str(entity)?;
        run = i + 1;
    }
    out.write_str(&s[run..])
}

/// Join a possibly relative URL onto a base ending in `/`.
pub fn absolute_url(base: &str, url: &str) -> String {
    if url.contains("://") || url.starts_with("mailto:") || url.starts_with("tel:") {
        return url.to_string();
    }
    if let Some(rest) = url.strip_prefix("//") {
        let scheme = base.split("://").next().unwrap_or("https");
        return format!("{scheme}://{rest}");
    }
    if let Some(path) = url.strip_prefix('/') {
        // Root-relative: keep the base's origin only.
        let origin_end = base
            .find("://")
            .and_then(|i| base[i + 3..].find('/').map(|j| i + 3 + j))
            .unwrap_or(base.len());
        return format!("{}/{}", &base[..origin_end], path);
    }
    format!("{base}{url}")
}

struct Writer<'a> {
    out: String,
    opts: &'a HtmlOptions<'a>,
}

impl Writer<'_> {
    fn url(&self, url: &str) -> String {
        if let Some(frag) = url.strip_prefix('#') {
            return match self.opts.page_url {
                Some(page) if self.opts.base_url.is_some() => format!("{page}#{frag}"),
                _ => url.to_string(),
            };
        }
        match self.opts.base_url {
            Some(base) => absolute_url(base, url),
            None => url.to_string(),
        }
    }

    fn inlines(&mut self, inlines: &[Inline]) {
        for i in inlines {
            self.inline(i);
        }
    }

    fn inline(&mut self, inline: &Inline) {
        match inline {
            Inline::Text(t) => escape_into(&mut self.out, t),
            Inline::Emphasis(c) => self.wrap("em", c),
            Inline::Strong(c) => self.wrap("strong", c),
            Inline::Strikethrough(c) => self.wrap("del", c),
            Inline::Code(t) => {
                self.out.push_str("<code>");
                escape_into(&mut self.out, t);
                self.out.push_str("</code>");
            }
            Inline::Link {
                url,
                title,
                content,
            } => {
                let url = self.url(url);
                self.out.push_str("<a href=\"");
                escape_into(&mut self.out, &url);
                self.out.push('"');
                if !title.is_empty() {
                    self.out.push_str(" title=\"");
                    escape_into(&mut self.out, title);
                    self.out.push('"');
                }
                self.out.push('>');
                self.inlines(content);
                self.out.push_str("</a>");
            }
            Inline::Image { url, alt, title } => {
                let url = self.url(url);
                self.out.push_str("<img src=\"");
                escape_into(&mut self.out, &url);
                self.out.push_str("\" alt=\"");
                escape_into(&mut self.out, alt);
                self.out.push('"');
                if !title.is_empty() {
                    self.out.push_str(" title=\"");
                    escape_into(&mut self.out, title);
                    self.out.push('"');
                }
                self.out.push('>');
            }
            Inline::FootnoteRef { number } => {
                let href = self.url(&format!("#fn-{number}"));
                let _ = write!(
                    self.out,
                    "<sup class=\"fnref\" id=\"fnref-{number}\"><a href=\"{}\">{number}</a></sup>",
                    escape(&href)
                );
            }
            Inline::SoftBreak => self.out.push('\n'),
            Inline::HardBreak => self.out.push_str("<br>\n"),
        }
    }

    fn wrap(&mut self, tag: &str, content: &[Inline]) {
        let _ = write!(self.out, "<{tag}>");
        self.inlines(content);
        let _ = write!(self.out, "</{tag}>");
    }

    fn blocks(&mut self, blocks: &[Block]) {
        for b in blocks {
            self.block(b);
        }
    }

    fn block(&mut self, block: &Block) {
        match block {
            Block::Heading {
                level,
                anchor,
                content,
            } => {
                let _ = write!(self.out, "<h{level} id=\"{}\">", escape(anchor));
                self.inlines(content);
                let _ = writeln!(self.out, "</h{level}>");
            }
            Block::Paragraph(content) => {
                self.out.push_str("<p>");
                self.inlines(content);
                self.out.push_str("</p>\n");
            }
            Block::List { start, items } => {
                match start {
                    Some(1) => self.out.push_str("<ol>\n"),
                    Some(n) => {
                        let _ = writeln!(self.out, "<ol start=\"{n}\">");
                    }
                    None => self.out.push_str("<ul>\n"),
                }
                for item in items {
                    self.out.push_str("<li>");
                    // A tight item is a single paragraph: write it without <p>.
                    match item.as_slice() {
                        [Block::Paragraph(content)] => self.inlines(content),
                        _ => self.blocks(item),
                    }
                    self.out.push_str("</li>\n");
                }
                self.out.push_str(if start.is_some() {
                    "</ol>\n"
                } else {
                    "</ul>\n"
                });
            }
            Block::Quote(blocks) => {
                self.out.push_str("<blockquote>\n");
                self.blocks(blocks);
                self.out.push_str("</blockquote>\n");
            }
            Block::Code { lang, text } => {
                self.out.push_str("<pre><code");
                if let Some(lang) = lang {
                    self.out.push_str(" class=\"language-");
                    escape_into(&mut self.out, lang);
                    self.out.push('"');
                }
                self.out.push('>');
                escape_into(&mut self.out, text);
                self.out.push_str("</code></pre>\n");
            }
            Block::Table { align, head, rows } => {
                self.out.push_str("<table>\n<thead>\n<tr>");
                for (i, cell) in head.iter().enumerate() {
                    self.cell("th scope=\"col\"", "th", align.get(i), cell);
                }
                self.out.push_str("</tr>\n</thead>\n<tbody>\n");
                for row in rows {
                    self.out.push_str("<tr>");
                    for (i, cell) in row.iter().enumerate() {
                        self.cell("td", "td", align.get(i), cell);
                    }
                    self.out.push_str("</tr>\n");
                }
                self.out.push_str("</tbody>\n</table>\n");
            }
            Block::Rule => self.out.push_str("<hr>\n"),
            Block::Html { html, .. } => {
                self.out.push_str(html);
                self.out.push('\n');
            }
        }
    }

    fn cell(&mut self, open: &str, close: &str, align: Option<&Align>, content: &[Inline]) {
        let style = match align {
            Some(Align::Left) => " style=\"text-align:left\"",
            Some(Align::Center) => " style=\"text-align:center\"",
            Some(Align::Right) => " style=\"text-align:right\"",
            _ => "",
        };
        let _ = write!(self.out, "<{open}{style}>");
        self.inlines(content);
        let _ = write!(self.out, "</{close}>");
    }
}

/// Inline content as HTML (for titles with emphasis and the like).
pub fn inlines_to_html(inlines: &[Inline], opts: &HtmlOptions<'_>) -> String {
    let mut w = Writer {
        out: String::new(),
        opts,
    };
    w.inlines(inlines);
    w.out
}

/// The whole body as HTML, footnotes in a closing section.
pub fn to_html(doc: &Document, opts: &HtmlOptions<'_>) -> String {
    let mut w = Writer {
        out: String::with_capacity(4096),
        opts,
    };
    w.blocks(&doc.blocks);
    if !doc.footnotes.is_empty() {
        w.out
            .push_str("<section class=\"footnotes\" role=\"doc-endnotes\">\n<hr>\n<ol>\n");
        for note in &doc.footnotes {
            let _ = write!(w.out, "<li id=\"fn-{}\">", note.number);
            w.blocks(&note.blocks);
            let back = w.url(&format!("#fnref-{}", note.number));
            let _ = writeln!(
                w.out,
                "<a href=\"{}\" class=\"fnback\" aria-label=\"Back to text\">↩</a></li>",
                escape(&back)
            );
        }
        w.out.push_str("</ol>\n</section>\n");
    }
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markdown::parse;

    #[test]
    fn escape_keeps_every_other_character() {
        assert_eq!(
            escape("Қазақ <b>&amp;</b> \"ә\" 'ü' — 😀&"),
            "Қазақ &lt;b&gt;&amp;amp;&lt;/b&gt; &quot;ә&quot; &#39;ü&#39; — 😀&amp;"
        );
        assert_eq!(escape(""), "");
        assert_eq!(escape("<"), "&lt;");
        assert_eq!(escape("простой текст"), "простой текст");
    }

    #[test]
    fn escapes_and_absolutizes() {
        let (doc, _) = parse("A & B 1 < 2 [l](/a/b) [r](c.html)[^1]\n\n[^1]: n\n");
        let rel = to_html(&doc, &HtmlOptions::default());
        assert!(rel.contains("A &amp; B 1 &lt; 2"), "{rel}");
        assert!(rel.contains("href=\"/a/b\""));
        let abs = to_html(
            &doc,
            &HtmlOptions {
                base_url: Some("https://ex.org/news/"),
                page_url: Some("https://ex.org/news/en/2014/x/"),
            },
        );
        assert!(abs.contains("href=\"https://ex.org/a/b\""), "{abs}");
        assert!(abs.contains("href=\"https://ex.org/news/c.html\""), "{abs}");
        assert!(
            abs.contains("href=\"https://ex.org/news/en/2014/x/#fn-1\""),
            "{abs}"
        );
    }

    #[test]
    fn table_has_header_scope() {
        let (doc, _) = parse("| a | b |\n|:-|:-:|\n| 1 | 2 |\n");
        let html = to_html(&doc, &HtmlOptions::default());
        assert!(
            html.contains("<th scope=\"col\" style=\"text-align:left\">a</th>"),
            "{html}"
        );
        assert!(
            html.contains("<td style=\"text-align:center\">2</td>"),
            "{html}"
        );
    }
}
