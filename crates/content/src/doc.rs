//! The document tree: Markdown parsed once, rendered by every channel.
//!
//! The tree is deliberately small: what a statement needs, nothing a channel
//! would have to guess about. Raw HTML never reaches a channel unsanitized.

/// A parsed statement body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document {
    pub blocks: Vec<Block>,
    /// Footnote definitions, numbered in order of first reference.
    pub footnotes: Vec<Footnote>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// `level` is 2..=6 in a body: the statement title is the only level 1.
    Heading {
        level: u8,
        /// Stable anchor (slug of the text, unique within the document).
        anchor: String,
        content: Vec<Inline>,
    },
    Paragraph(Vec<Inline>),
    List {
        /// `Some(start)` for a numbered list.
        start: Option<u64>,
        items: Vec<Vec<Block>>,
    },
    Quote(Vec<Block>),
    Code {
        lang: Option<String>,
        text: String,
    },
    Table {
        align: Vec<Align>,
        head: Vec<Vec<Inline>>,
        rows: Vec<Vec<Vec<Inline>>>,
    },
    Rule,
    /// A raw HTML block from the Markdown, already sanitized (no scripts,
    /// event handlers or `javascript:` links). `text` is its plain text for
    /// channels that cannot show HTML.
    Html {
        html: String,
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    None,
    Left,
    Center,
    Right,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inline {
    Text(String),
    Emphasis(Vec<Inline>),
    Strong(Vec<Inline>),
    Strikethrough(Vec<Inline>),
    Code(String),
    /// `url` is safe: only http(s), mailto, tel, relative and fragment URLs survive.
    Link {
        url: String,
        title: String,
        content: Vec<Inline>,
    },
    Image {
        url: String,
        alt: String,
        title: String,
    },
    /// Reference to `Document::footnotes[number - 1]`.
    FootnoteRef {
        number: usize,
    },
    SoftBreak,
    HardBreak,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Footnote {
    pub label: String,
    /// 1-based, in order of first reference.
    pub number: usize,
    pub blocks: Vec<Block>,
}

impl Inline {
    /// Plain text of the inline, as a reader would read it aloud.
    pub fn push_text(&self, out: &mut String) {
        match self {
            Inline::Text(t) | Inline::Code(t) => out.push_str(t),
            Inline::Emphasis(c) | Inline::Strong(c) | Inline::Strikethrough(c) => {
                c.iter().for_each(|i| i.push_text(out))
            }
            Inline::Link { content, .. } => content.iter().for_each(|i| i.push_text(out)),
            Inline::Image { alt, .. } => out.push_str(alt),
            Inline::FootnoteRef { number } => out.push_str(&format!("[{number}]")),
            Inline::SoftBreak | Inline::HardBreak => out.push(' '),
        }
    }
}

/// Plain text of a run of inlines.
pub fn inline_text(inlines: &[Inline]) -> String {
    let mut s = String::new();
    inlines.iter().for_each(|i| i.push_text(&mut s));
    s
}

impl Block {
    /// Plain text of the block, paragraphs separated by blank lines.
    pub fn push_text(&self, out: &mut String) {
        match self {
            Block::Heading { content, .. } | Block::Paragraph(content) => {
                content.iter().for_each(|i| i.push_text(out));
                out.push_str("\n\n");
            }
            Block::List { items, .. } => {
                for item in items {
                    item.iter().for_each(|b| b.push_text(out));
                }
            }
            Block::Quote(blocks) => blocks.iter().for_each(|b| b.push_text(out)),
            Block::Code { text, .. } | Block::Html { text, .. } => {
                out.push_str(text);
                out.push_str("\n\n");
            }
            Block::Table { head, rows, .. } => {
                for row in std::iter::once(head).chain(rows) {
                    let cells: Vec<String> = row.iter().map(|c| inline_text(c)).collect();
                    out.push_str(&cells.join("\t"));
                    out.push('\n');
                }
                out.push('\n');
            }
            Block::Rule => {}
        }
    }
}

impl Document {
    /// Plain text of the whole body, footnotes last.
    pub fn plain_text(&self) -> String {
        let mut s = String::new();
        self.blocks.iter().for_each(|b| b.push_text(&mut s));
        for note in &self.footnotes {
            s.push_str(&format!("[{}] ", note.number));
            note.blocks.iter().for_each(|b| b.push_text(&mut s));
        }
        s.trim_end().to_string()
    }

    /// Headings in order, for outlines and tables of contents: (level, anchor, text).
    pub fn headings(&self) -> Vec<(u8, &str, String)> {
        self.blocks
            .iter()
            .filter_map(|b| match b {
                Block::Heading {
                    level,
                    anchor,
                    content,
                } => Some((*level, anchor.as_str(), inline_text(content))),
                _ => None,
            })
            .collect()
    }

    /// Number of words in the body, for reading-time estimates and benches.
    pub fn word_count(&self) -> usize {
        self.plain_text().split_whitespace().count()
    }
}
