//! Markdown (CommonMark + tables, footnotes, strikethrough) to the document tree.

use std::collections::HashMap;
use std::ops::Range;

use pulldown_cmark::{Alignment, CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use crate::doc::{Align, Block, Document, Footnote, Inline};
use crate::limits;

/// Something in the body that parses but must not be published as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyIssue {
    /// Byte range in the body text.
    pub span: Range<usize>,
    pub code: &'static str,
    pub message: String,
    pub hint: String,
}

/// The most problems one body reports.
const MAX_ISSUES: usize = 50;

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_STRIKETHROUGH
}

/// Parse a statement body. Never fails: problems are returned beside the tree.
///
/// Nesting deeper than [`limits::BLOCK_DEPTH`] or [`limits::INLINE_DEPTH`] stops the
/// parse at the first level too deep: the tree is never built deeper than the limits,
/// so nothing that walks it (drop included) can exhaust a stack.
pub fn parse(body: &str) -> (Document, Vec<BodyIssue>) {
    let mut b = Builder::default();
    for (event, range) in Parser::new_ext(body, options()).into_offset_iter() {
        b.controls(body, &event, &range);
        b.event(event, range);
        if b.stopped {
            break;
        }
    }
    b.finish()
}

#[derive(Default)]
struct Builder {
    /// Open containers; the bottom one is the document itself.
    stack: Vec<Frame>,
    blocks: Vec<Block>,
    footnotes: Vec<Footnote>,
    note_numbers: HashMap<String, usize>,
    note_defs: HashMap<String, Vec<Block>>,
    anchors: HashMap<String, usize>,
    issues: Vec<BodyIssue>,
    /// The sanitized HTML block being gathered, and where it starts.
    html: Option<(String, Range<usize>)>,
    /// Open lists, quotes and footnote definitions.
    block_depth: usize,
    /// Open emphasis, strong, strikethrough, links and images.
    inline_depth: usize,
    /// A limit was crossed: the remaining events are not read.
    stopped: bool,
    /// A decoded control character was reported (one per body is enough).
    control_reported: bool,
}

enum Frame {
    Inlines(Vec<Inline>),
    Heading(u8, Vec<Inline>),
    Item(Vec<Block>),
    List(Option<u64>, Vec<Vec<Block>>),
    Quote(Vec<Block>),
    Code(Option<String>, String),
    Table(Vec<Align>, Vec<Vec<Inline>>, Vec<Vec<Vec<Inline>>>, bool),
    Row(Vec<Vec<Inline>>),
    Cell(Vec<Inline>),
    Span(SpanKind, Vec<Inline>),
    Link(String, String, Vec<Inline>),
    Image(String, String, String),
    Note(String, Vec<Block>),
}

#[derive(Clone, Copy)]
enum SpanKind {
    Emphasis,
    Strong,
    Strike,
}

/// Only schemes a reader can safely follow survive; anything else (javascript:,
/// data:, vbscript:, ...) turns the link into plain text.
pub fn safe_url(url: &str) -> Option<String> {
    let trimmed = url.trim();
    let lower: String = trimmed
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    match lower.find(':') {
        Some(colon) if !lower[..colon].contains(['/', '?', '#']) => {
            let scheme = &lower[..colon];
            matches!(scheme, "http" | "https" | "mailto" | "tel").then(|| trimmed.to_string())
        }
        _ => Some(trimmed.to_string()),
    }
}

fn slugify(text: &str) -> String {
    let mut s = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() { "section".into() } else { s }
}

fn align(a: &Alignment) -> Align {
    match a {
        Alignment::None => Align::None,
        Alignment::Left => Align::Left,
        Alignment::Center => Align::Center,
        Alignment::Right => Align::Right,
    }
}

/// Plain text of sanitized HTML, for channels that cannot show HTML.
fn html_text(html: &str) -> String {
    let text = ammonia::Builder::empty().clean(html).to_string();
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

impl Builder {
    /// A control character written as a character reference (`&#27;`) is decoded by the
    /// parser, so the raw-text scan of the file cannot see it: look at decoded text.
    fn controls(&mut self, body: &str, event: &Event<'_>, range: &Range<usize>) {
        if self.control_reported {
            return;
        }
        let decoded: [&str; 2] = match event {
            Event::Text(t) => [t.as_ref(), ""],
            Event::Start(Tag::Link {
                dest_url, title, ..
            })
            | Event::Start(Tag::Image {
                dest_url, title, ..
            }) => [dest_url.as_ref(), title.as_ref()],
            _ => return,
        };
        let raw = body.get(range.clone()).unwrap_or("");
        for text in decoded {
            // A raw control character is reported by the file scan already.
            if let Some((_, c)) = limits::bad_in_body(text).filter(|(_, c)| !raw.contains(*c)) {
                self.control_issue(range.clone(), c);
                return;
            }
        }
    }

    fn control_issue(&mut self, span: Range<usize>, c: char) {
        self.control_reported = true;
        self.issues.push(BodyIssue {
            span,
            code: "control-char",
            message: format!(
                "control character {} in the text (written as a character reference)",
                limits::describe(c)
            ),
            hint: "delete the reference: the character is invisible and breaks pages, feeds, PDFs and mail".into(),
        });
    }

    /// Count one more level of nesting; past the limit, report it and stop reading.
    fn deeper(&mut self, block: bool, range: &Range<usize>) {
        let (depth, limit, what) = if block {
            (
                &mut self.block_depth,
                limits::BLOCK_DEPTH,
                "lists, quotes and footnotes",
            )
        } else {
            (
                &mut self.inline_depth,
                limits::INLINE_DEPTH,
                "emphasis, links and images",
            )
        };
        *depth += 1;
        if *depth > limit {
            self.stopped = true;
            self.issues.push(BodyIssue {
                span: range.start..range.start + 1,
                code: "nesting",
                message: format!("{what} are nested more than {limit} levels deep here"),
                hint: format!(
                    "flatten the structure: at most {limit} levels of {what} inside one another (see docs/content.md, Limits)"
                ),
            });
        }
    }

    fn push_inline(&mut self, inline: Inline) {
        match self.stack.last_mut() {
            Some(
                Frame::Inlines(v)
                | Frame::Heading(_, v)
                | Frame::Cell(v)
                | Frame::Span(_, v)
                | Frame::Link(_, _, v),
            ) => {
                // Merge adjacent text so channels see whole runs.
                if let (Some(Inline::Text(prev)), Inline::Text(t)) = (v.last_mut(), &inline) {
                    prev.push_str(t);
                } else {
                    v.push(inline);
                }
            }
            Some(Frame::Image(_, alt, _)) => {
                let mut s = String::new();
                inline.push_text(&mut s);
                alt.push_str(&s);
            }
            Some(Frame::Code(_, text)) => {
                if let Inline::Text(t) = inline {
                    text.push_str(&t);
                }
            }
            // Tight list items hold inlines directly: gather them into a paragraph.
            _ => self.stack.push(Frame::Inlines(vec![inline])),
        }
    }

    /// Close a pending tight-item paragraph before a nested block starts or the item ends.
    fn flush_loose_inlines(&mut self) {
        if let Some(Frame::Inlines(_)) = self.stack.last()
            && let Some(Frame::Inlines(v)) = self.stack.pop()
        {
            self.push_block(Block::Paragraph(v));
        }
    }

    fn push_block(&mut self, block: Block) {
        match self.stack.last_mut() {
            Some(Frame::Item(v) | Frame::Quote(v) | Frame::Note(_, v)) => v.push(block),
            _ => self.blocks.push(block),
        }
    }

    fn event(&mut self, event: Event<'_>, range: Range<usize>) {
        match event {
            Event::Start(tag) => self.start(tag, range),
            Event::End(end) => self.end(end),
            Event::Text(t) => self.push_inline(Inline::Text(t.into_string())),
            Event::Code(t) => self.push_inline(Inline::Code(t.into_string())),
            Event::SoftBreak => self.push_inline(Inline::SoftBreak),
            Event::HardBreak => self.push_inline(Inline::HardBreak),
            Event::Rule => {
                self.flush_loose_inlines();
                self.push_block(Block::Rule)
            }
            Event::Html(h) => {
                if let Some((buf, _)) = self.html.as_mut() {
                    buf.push_str(&h);
                }
            }
            Event::InlineHtml(h) => {
                // Inline tags are dropped (their text stays); a line break survives.
                let tag = h.trim().to_ascii_lowercase();
                if tag.starts_with("<br") {
                    self.push_inline(Inline::HardBreak);
                }
            }
            Event::FootnoteReference(label) => {
                let next = self.note_numbers.len() + 1;
                let number = *self.note_numbers.entry(label.into_string()).or_insert(next);
                self.push_inline(Inline::FootnoteRef { number });
            }
            Event::TaskListMarker(done) => {
                self.push_inline(Inline::Text(if done { "☑ " } else { "☐ " }.into()))
            }
            Event::InlineMath(t) | Event::DisplayMath(t) => {
                self.push_inline(Inline::Code(t.into_string()))
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>, range: Range<usize>) {
        match &tag {
            Tag::BlockQuote(_) | Tag::List(_) | Tag::FootnoteDefinition(_) => {
                self.deeper(true, &range)
            }
            Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Link { .. }
            | Tag::Image { .. } => self.deeper(false, &range),
            _ => {}
        }
        if self.stopped {
            return;
        }
        match tag {
            Tag::Paragraph => {
                self.flush_loose_inlines();
                self.stack.push(Frame::Inlines(Vec::new()))
            }
            Tag::Heading { level, .. } => {
                self.flush_loose_inlines();
                let level = level as u8;
                // Enough to show the pattern; a body of thousands is not reported line by line.
                if level == 1 && self.issues.len() < MAX_ISSUES {
                    self.issues.push(BodyIssue {
                        span: range,
                        code: "heading-level",
                        message: "a level-1 heading in the body".into(),
                        hint: "the title is the page's only level-1 heading; start body headings at `##`".into(),
                    });
                }
                self.stack.push(Frame::Heading(level.max(2), Vec::new()))
            }
            Tag::BlockQuote(_) => {
                self.flush_loose_inlines();
                self.stack.push(Frame::Quote(Vec::new()))
            }
            Tag::CodeBlock(kind) => {
                self.flush_loose_inlines();
                let lang = match kind {
                    CodeBlockKind::Fenced(l) if !l.is_empty() => Some(l.into_string()),
                    _ => None,
                };
                self.stack.push(Frame::Code(lang, String::new()))
            }
            Tag::HtmlBlock => {
                self.flush_loose_inlines();
                self.html = Some((String::new(), range))
            }
            Tag::List(start) => {
                self.flush_loose_inlines();
                self.stack.push(Frame::List(start, Vec::new()))
            }
            Tag::Item => self.stack.push(Frame::Item(Vec::new())),
            Tag::FootnoteDefinition(label) => {
                self.flush_loose_inlines();
                self.stack
                    .push(Frame::Note(label.into_string(), Vec::new()))
            }
            Tag::Table(aligns) => {
                self.flush_loose_inlines();
                self.stack.push(Frame::Table(
                    aligns.iter().map(align).collect(),
                    Vec::new(),
                    Vec::new(),
                    false,
                ))
            }
            Tag::TableHead | Tag::TableRow => self.stack.push(Frame::Row(Vec::new())),
            Tag::TableCell => self.stack.push(Frame::Cell(Vec::new())),
            Tag::Emphasis => self.stack.push(Frame::Span(SpanKind::Emphasis, Vec::new())),
            Tag::Strong => self.stack.push(Frame::Span(SpanKind::Strong, Vec::new())),
            Tag::Strikethrough => self.stack.push(Frame::Span(SpanKind::Strike, Vec::new())),
            Tag::Link {
                dest_url, title, ..
            } => self.stack.push(Frame::Link(
                dest_url.into_string(),
                title.into_string(),
                Vec::new(),
            )),
            Tag::Image {
                dest_url, title, ..
            } => self.stack.push(Frame::Image(
                dest_url.into_string(),
                String::new(),
                title.into_string(),
            )),
            // Not enabled, but keep their text if they ever appear.
            _ => self.stack.push(Frame::Span(SpanKind::Emphasis, Vec::new())),
        }
    }

    fn end(&mut self, end: TagEnd) {
        match end {
            TagEnd::BlockQuote(_) | TagEnd::List(_) | TagEnd::FootnoteDefinition => {
                self.block_depth = self.block_depth.saturating_sub(1)
            }
            TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Link
            | TagEnd::Image => self.inline_depth = self.inline_depth.saturating_sub(1),
            _ => {}
        }
        if matches!(end, TagEnd::HtmlBlock) {
            if let Some((raw, range)) = self.html.take() {
                // The sanitizer's parser slows with the square of the depth: refuse
                // absurd nesting before it reads a byte.
                if let Some(at) = limits::html_too_deep(&raw) {
                    self.stopped = true;
                    self.issues.push(BodyIssue {
                        span: range.start + at..range.start + at + 1,
                        code: "nesting",
                        message: format!(
                            "raw HTML elements are nested more than {} levels deep here",
                            limits::HTML_DEPTH
                        ),
                        hint: "close the HTML elements you open, or write the structure in Markdown (see docs/content.md, Limits)".into(),
                    });
                    return;
                }
                let html = ammonia::clean(&raw);
                let text = html_text(&html);
                // The sanitizer decodes character references: `&#27;` is a control now.
                if let Some((_, c)) = limits::bad_in_body(&html).filter(|(_, c)| !raw.contains(*c))
                    && !self.control_reported
                {
                    self.control_issue(range, c);
                }
                if !html.trim().is_empty() {
                    self.push_block(Block::Html { html, text });
                }
            }
            return;
        }
        if matches!(
            end,
            TagEnd::Item | TagEnd::BlockQuote(_) | TagEnd::FootnoteDefinition
        ) {
            self.flush_loose_inlines();
        }
        let Some(frame) = self.stack.pop() else {
            return;
        };
        match frame {
            Frame::Inlines(v) => self.push_block(Block::Paragraph(v)),
            Frame::Heading(level, content) => {
                let base = slugify(&crate::doc::inline_text(&content));
                let n = self.anchors.entry(base.clone()).or_insert(0);
                *n += 1;
                let anchor = if *n == 1 { base } else { format!("{base}-{n}") };
                self.push_block(Block::Heading {
                    level,
                    anchor,
                    content,
                })
            }
            Frame::Quote(v) => self.push_block(Block::Quote(v)),
            Frame::Code(lang, text) => self.push_block(Block::Code { lang, text }),
            Frame::List(start, items) => self.push_block(Block::List { start, items }),
            Frame::Item(blocks) => {
                if let Some(Frame::List(_, items)) = self.stack.last_mut() {
                    items.push(blocks);
                }
            }
            Frame::Note(label, blocks) => {
                self.note_defs.insert(label, blocks);
            }
            Frame::Table(align, head, rows, _) => {
                self.push_block(Block::Table { align, head, rows })
            }
            Frame::Row(cells) => {
                if let Some(Frame::Table(_, head, rows, seen_head)) = self.stack.last_mut() {
                    if *seen_head {
                        rows.push(cells);
                    } else {
                        *head = cells;
                        *seen_head = true;
                    }
                }
            }
            Frame::Cell(v) => {
                if let Some(Frame::Row(cells)) = self.stack.last_mut() {
                    cells.push(v);
                }
            }
            Frame::Span(kind, v) => self.push_inline(match kind {
                SpanKind::Emphasis => Inline::Emphasis(v),
                SpanKind::Strong => Inline::Strong(v),
                SpanKind::Strike => Inline::Strikethrough(v),
            }),
            Frame::Link(url, title, content) => match safe_url(&url) {
                Some(url) => self.push_inline(Inline::Link {
                    url,
                    title,
                    content,
                }),
                None => content.into_iter().for_each(|i| self.push_inline(i)),
            },
            Frame::Image(url, alt, title) => {
                if let Some(url) = safe_url(&url) {
                    self.push_inline(Inline::Image { url, alt, title })
                } else {
                    self.push_inline(Inline::Text(alt))
                }
            }
        }
    }

    fn finish(mut self) -> (Document, Vec<BodyIssue>) {
        while !self.stack.is_empty() {
            self.flush_loose_inlines();
            self.stack.pop();
        }
        let mut numbered: Vec<(String, usize)> = self.note_numbers.into_iter().collect();
        numbered.sort_by_key(|(_, n)| *n);
        for (label, number) in numbered {
            let blocks = self.note_defs.remove(&label).unwrap_or_default();
            self.footnotes.push(Footnote {
                label,
                number,
                blocks,
            });
        }
        (
            Document {
                blocks: self.blocks,
                footnotes: self.footnotes,
            },
            self.issues,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::inline_text;

    #[test]
    fn tables_lists_footnotes() {
        let (doc, issues) = parse(
            "Intro with a note.[^a]\n\n## Figures\n\n| Year | Cases |\n|---|--:|\n| 2013 | 12 |\n\n- one\n- two\n\n1. first\n\n[^a]: The note.\n",
        );
        assert!(issues.is_empty());
        assert_eq!(doc.footnotes.len(), 1);
        assert_eq!(doc.footnotes[0].number, 1);
        assert!(
            matches!(&doc.blocks[1], Block::Heading { level: 2, anchor, .. } if anchor == "figures")
        );
        let Block::Table { align, head, rows } = &doc.blocks[2] else {
            panic!("no table: {:?}", doc.blocks)
        };
        assert_eq!(align, &[Align::None, Align::Right]);
        assert_eq!(inline_text(&head[1]), "Cases");
        assert_eq!(inline_text(&rows[0][0]), "2013");
        let Block::List { start, items } = &doc.blocks[3] else {
            panic!("no list")
        };
        assert_eq!(*start, None);
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[0][0], Block::Paragraph(p) if inline_text(p) == "one"));
        assert!(matches!(&doc.blocks[4], Block::List { start: Some(1), .. }));
        assert_eq!(doc.plain_text().matches("The note.").count(), 1);
    }

    #[test]
    fn scripts_and_javascript_links_never_survive() {
        let (doc, _) = parse(
            "[click](javascript:alert(1)) and [ok](https://example.org)\n\n<div onclick=\"x()\">hi<script>alert(1)</script></div>\n",
        );
        let Block::Paragraph(p) = &doc.blocks[0] else {
            panic!()
        };
        assert_eq!(p[0], Inline::Text("click and ".into()));
        assert!(matches!(&p[1], Inline::Link { url, .. } if url == "https://example.org"));
        let Block::Html { html, text } = &doc.blocks[1] else {
            panic!("{:?}", doc.blocks)
        };
        assert!(
            !html.contains("script") && !html.contains("onclick"),
            "{html}"
        );
        assert_eq!(text, "hi");
    }

    #[test]
    fn level_one_heading_is_reported() {
        let (_, issues) = parse("text\n\n# Big\n");
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].span.start, 6);
    }

    #[test]
    fn unique_anchors() {
        let (doc, _) = parse("## Итоги\n\n## Итоги\n");
        let h = doc.headings();
        assert_eq!(h[0].1, "итоги");
        assert_eq!(h[1].1, "итоги-2");
    }

    #[test]
    fn nesting_stops_at_the_limit_without_building_deeper() {
        for (unit, count) in [("> ", 2_000), ("- ", 100_000), ("> 1. ", 5_000)] {
            let body = format!("{}deep\n", unit.repeat(count));
            let (_, issues) = parse(&body);
            assert_eq!(issues.len(), 1, "{unit:?}: {issues:?}");
            assert_eq!(issues[0].code, "nesting");
            // The level past the limit is where the report points.
            let level = limits::BLOCK_DEPTH;
            let at = if unit == "> 1. " {
                // A quote and a list per unit: the 17th level is the 9th unit's quote.
                level / 2 * unit.len()
            } else {
                level * unit.len()
            };
            assert_eq!(issues[0].span.start, at, "{unit:?}");
        }
        let ok = format!("{}deep\n", "> ".repeat(limits::BLOCK_DEPTH));
        assert!(parse(&ok).1.is_empty());
        let (_, issues) = parse(&format!("{}x{}\n", "*a ".repeat(40), " b*".repeat(40)));
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].span.start, 3 * limits::INLINE_DEPTH);
        let ok = format!("{}x{}\n", "*a ".repeat(16), " b*".repeat(16));
        assert!(parse(&ok).1.is_empty());
        let deep = format!("<div>\n{}x\n", "<div>".repeat(100_000));
        let (_, issues) = parse(&deep);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].span.start, 6 + 255 * 5);
    }

    #[test]
    fn control_characters_written_as_references_are_reported_once() {
        let (_, issues) = parse("a &#27; b &#x85; c [l](https://x.org \"&#7;\")\n");
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!((issues[0].code, issues[0].span.start), ("control-char", 2));
        assert!(issues[0].message.contains("U+001B"));
        let (_, issues) = parse("[l](https://x.org \"&#7;\")\n");
        assert!(issues[0].message.contains("U+0007"), "{issues:?}");
        // HTML maps &#x80;..&#x9F; to Windows-1252 letters; other controls stay controls.
        let (_, issues) = parse("<div>x &#27; y</div>\n");
        assert!(issues[0].message.contains("U+001B"), "{issues:?}");
        // Raw ones are the file scan's to report; tab, LF and CR are text.
        assert!(parse("a \u{1b} b\n").1.is_empty());
        assert!(parse("a &#9; b &#10; c &#13;\n").1.is_empty());
    }

    #[test]
    fn url_filter() {
        assert!(safe_url(" JaVa\tscript:alert(1)").is_none());
        assert!(safe_url("data:text/html,x").is_none());
        assert_eq!(safe_url("/a/b?x=1:2").as_deref(), Some("/a/b?x=1:2"));
        assert_eq!(safe_url("#fn1").as_deref(), Some("#fn1"));
        assert!(safe_url("mailto:a@b.org").is_some());
    }
}
