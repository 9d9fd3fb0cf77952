//! The layout engine: the document tree -> lines and blocks ("flows") -> pages.
//! Structure elements for the tagged PDF are created here, as the content is laid out.

use std::collections::HashMap;

use herald_content::doc::{Align, Block, Document, Inline};
use herald_content::{Config, Statement};
use hyphenation::Standard;

use crate::PdfError;
use crate::fonts::{self, Fonts};
use crate::text::{self, BLACK, Builder, Color, HARD_BREAK, Line, Run, Style};
use herald_content::l10n as i18n;

const ACCENT: Color = [0.0, 0.28, 0.55];
const GREY: Color = [0.38, 0.38, 0.38];
const RULE: Color = [0.72, 0.72, 0.72];
const LEADING: f32 = 1.45;
const INDENT: f32 = 18.0;

/// Page geometry in points (PDF user space, origin bottom left).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub width: f32,
    pub height: f32,
    pub left: f32,
    pub right: f32,
    pub top: f32,
    pub bottom: f32,
}

impl Geometry {
    pub fn text_width(&self) -> f32 {
        self.width - self.left - self.right
    }
    fn text_height(&self) -> f32 {
        self.height - self.top - self.bottom
    }
}

/// A structure element of the tagged PDF.
#[derive(Debug, Clone)]
pub(crate) struct Elem {
    pub tag: &'static str,
    pub parent: Option<usize>,
    pub kids: Vec<Kid>,
    attached: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kid {
    Elem(usize),
    /// Marked content `mcid` on page `page`.
    Mcid {
        page: usize,
        mcid: u32,
    },
    /// The link annotation `annot` (index into the document's annotations).
    Annot {
        page: usize,
        annot: usize,
    },
}

/// The structure tree. Elements join their parent when their first content is
/// drawn, so the order of kids is the reading order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tree {
    pub elems: Vec<Elem>,
}

impl Tree {
    pub fn add(&mut self, tag: &'static str, parent: Option<usize>) -> usize {
        self.elems.push(Elem {
            tag,
            parent,
            kids: Vec::new(),
            attached: parent.is_none(),
        });
        self.elems.len() - 1
    }

    /// Give `elem` a kid, attaching it (and its ancestors) to the tree first.
    pub fn push(&mut self, elem: usize, kid: Kid) {
        let mut e = elem;
        while !self.elems[e].attached {
            self.elems[e].attached = true;
            let Some(p) = self.elems[e].parent else { break };
            self.elems[p].kids.push(Kid::Elem(e));
            e = p;
        }
        self.elems[elem].kids.push(kid);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    Uri(String),
    /// A heading anchor inside the document.
    Anchor(String),
}

#[derive(Debug, Clone)]
pub(crate) struct LinkInfo {
    pub target: Target,
    pub elem: usize,
}

/// Something drawn, relative to its flow's top left (y grows downwards).
#[derive(Debug, Clone)]
enum Draw {
    Text {
        x: f32,
        baseline: f32,
        run: Run,
    },
    Rule {
        x0: f32,
        y0: f32,
        x1: f32,
        y1: f32,
        width: f32,
        color: Color,
    },
}

/// An unbreakable slice of the page: a line, a table row, a rule.
#[derive(Debug, Clone, Default)]
struct Flow {
    height: f32,
    space_before: f32,
    keep_with_next: bool,
    draws: Vec<Draw>,
    /// Baseline of the first line, for list markers.
    baseline: f32,
    /// Heading: (level, text, anchor), for the outline and internal links.
    heading: Option<(u8, String, String)>,
    /// Quote bars to draw at these x positions, spanning the space before too.
    bars: Vec<f32>,
}

/// Something drawn on a page, in PDF coordinates.
#[derive(Debug, Clone)]
pub(crate) enum Placed {
    Text {
        x: f32,
        y: f32,
        run: Run,
        artifact: bool,
    },
    Line {
        x0: f32,
        y0: f32,
        x1: f32,
        y1: f32,
        width: f32,
        color: Color,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct OutlineEntry {
    pub level: u8,
    pub title: String,
    pub page: usize,
    pub y: f32,
}

/// A statement laid out on pages.
pub(crate) struct Laid {
    pub pages: Vec<Vec<Placed>>,
    pub tree: Tree,
    pub links: Vec<LinkInfo>,
    pub outline: Vec<OutlineEntry>,
    pub anchors: HashMap<String, (usize, f32)>,
    /// The structure root (the `Document` element).
    pub root: usize,
}

/// A table cell: its structure element and text.
type Cell = (usize, Vec<(String, Style)>);

struct Ctx<'f, 'a> {
    fonts: &'f mut Fonts<'a>,
    breaks: &'f mut crate::text::FastMap<String, Vec<usize>>,
    words: crate::text::Words,
    hyphenator: Option<&'f Standard>,
    tree: Tree,
    links: Vec<LinkInfo>,
    flows: Vec<Flow>,
    size: f32,
}

fn style(font: usize, size: f32, elem: usize) -> Style {
    Style {
        font,
        size,
        color: BLACK,
        rise: 0.0,
        link: None,
        elem,
    }
}

impl<'a> Ctx<'_, 'a> {
    fn builder<'s>(&'s mut self, max_width: f32, rtl: bool) -> Builder<'s, 'a> {
        Builder {
            fonts: self.fonts,
            breaks: self.breaks,
            words: &mut self.words,
            hyphenator: self.hyphenator,
            rtl,
            max_width,
        }
    }

    /// Inline tree -> styled spans. Links become structure elements of their own.
    fn flatten(&mut self, inlines: &[Inline], st: Style, out: &mut Vec<(String, Style)>) {
        for inline in inlines {
            match inline {
                Inline::Text(t) => out.push((t.clone(), st)),
                Inline::Code(t) => out.push((
                    t.clone(),
                    Style {
                        font: fonts::REGULAR,
                        color: [0.15, 0.15, 0.3],
                        ..st
                    },
                )),
                Inline::Emphasis(c) => {
                    let font = if st.font == fonts::BOLD {
                        fonts::BOLD
                    } else {
                        fonts::ITALIC
                    };
                    self.flatten(c, Style { font, ..st }, out);
                }
                Inline::Strong(c) => self.flatten(
                    c,
                    Style {
                        font: fonts::BOLD,
                        ..st
                    },
                    out,
                ),
                Inline::Strikethrough(c) => self.flatten(c, st, out),
                Inline::Link { url, content, .. } => {
                    let elem = self.tree.add("Link", Some(st.elem));
                    let target = match url.strip_prefix('#') {
                        Some(anchor) => Target::Anchor(anchor.to_string()),
                        None => Target::Uri(url.clone()),
                    };
                    self.links.push(LinkInfo { target, elem });
                    let link = Style {
                        link: Some(self.links.len() - 1),
                        elem,
                        color: ACCENT,
                        ..st
                    };
                    self.flatten(content, link, out);
                }
                Inline::Image { alt, .. } => out.push((
                    format!("[{alt}]"),
                    Style {
                        font: fonts::ITALIC,
                        ..st
                    },
                )),
                Inline::FootnoteRef { number } => out.push((
                    number.to_string(),
                    Style {
                        size: st.size * 0.68,
                        rise: st.size * 0.36,
                        font: fonts::REGULAR,
                        ..st
                    },
                )),
                Inline::SoftBreak => out.push((" ".into(), st)),
                Inline::HardBreak => out.push((HARD_BREAK.to_string(), st)),
            }
        }
    }

    /// Break spans into lines of `width`.
    fn lines(
        &mut self,
        spans: &[(String, Style)],
        width: f32,
        justify: bool,
    ) -> Result<(Vec<Line>, bool), PdfError> {
        let rtl = text::paragraph_rtl(spans);
        let mut items = self.builder(width, rtl).items(spans)?;
        if !justify {
            // Ragged lines: a short line costs little, so lines fill up and no single
            // very loose line is forced on a title with few spaces.
            for it in &mut items {
                if let text::Item::Glue { stretch, .. } = it
                    && *stretch < 1.0e5
                {
                    *stretch = width / 3.0;
                }
            }
        }
        let breaks = text::break_lines(&items, width);
        Ok((text::set_lines(&items, &breaks, width, justify, rtl), rtl))
    }

    /// A paragraph as flows, one per line, kept so that no page starts or ends with
    /// a single line of it.
    #[allow(clippy::too_many_arguments)]
    fn paragraph(
        &mut self,
        spans: &[(String, Style)],
        x: f32,
        width: f32,
        justify: bool,
        leading: f32,
        space_before: f32,
    ) -> Result<(), PdfError> {
        let (lines, _) = self.lines(spans, width, justify)?;
        let n = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            let size = if line.size > 0.0 {
                line.size
            } else {
                self.size
            };
            let height = size * leading;
            let baseline = (height - size * 1.36) / 2.0 + size * 1.07;
            let draws = line
                .runs
                .into_iter()
                .map(|(dx, run)| Draw::Text {
                    x: x + dx,
                    baseline,
                    run,
                })
                .collect();
            self.flows.push(Flow {
                height,
                space_before: if i == 0 { space_before } else { 0.0 },
                keep_with_next: n > 1 && (i == 0 || i + 2 == n),
                draws,
                baseline,
                ..Flow::default()
            });
        }
        Ok(())
    }

    fn blocks(
        &mut self,
        blocks: &[Block],
        x: f32,
        width: f32,
        parent: usize,
    ) -> Result<(), PdfError> {
        for b in blocks {
            self.block(b, x, width, parent)?;
        }
        Ok(())
    }

    fn block(&mut self, block: &Block, x: f32, width: f32, parent: usize) -> Result<(), PdfError> {
        let size = self.size;
        let gap = size * 0.6;
        match block {
            Block::Heading {
                level,
                anchor,
                content,
            } => {
                let tag = match level {
                    2 => "H2",
                    3 => "H3",
                    4 => "H4",
                    5 => "H5",
                    _ => "H6",
                };
                let hsize = match level {
                    2 => size * 1.25,
                    3 => size * 1.1,
                    _ => size,
                };
                let elem = self.tree.add(tag, Some(parent));
                let mut spans = Vec::new();
                self.flatten(content, style(fonts::BOLD, hsize, elem), &mut spans);
                let start = self.flows.len();
                self.paragraph(&spans, x, width, false, 1.3, hsize * 1.1)?;
                let title = herald_content::doc::inline_text(content);
                for (i, f) in self.flows[start..].iter_mut().enumerate() {
                    f.keep_with_next = true;
                    if i == 0 {
                        f.heading = Some((*level, title.clone(), anchor.clone()));
                    }
                }
            }
            Block::Paragraph(content) => {
                let elem = self.tree.add("P", Some(parent));
                let mut spans = Vec::new();
                self.flatten(content, style(fonts::REGULAR, size, elem), &mut spans);
                self.paragraph(&spans, x, width, true, LEADING, gap)?;
            }
            Block::Html { text, .. } => {
                let elem = self.tree.add("P", Some(parent));
                let spans = vec![(text.clone(), style(fonts::REGULAR, size, elem))];
                self.paragraph(&spans, x, width, true, LEADING, gap)?;
            }
            Block::Code { text, .. } => {
                let elem = self.tree.add("P", Some(parent));
                let st = Style {
                    color: [0.15, 0.15, 0.3],
                    ..style(fonts::REGULAR, size * 0.88, elem)
                };
                let spans: Vec<(String, Style)> = text
                    .lines()
                    .flat_map(|l| [(l.to_string(), st), (HARD_BREAK.to_string(), st)])
                    .collect();
                self.paragraph(
                    &spans,
                    x + INDENT / 2.0,
                    width - INDENT / 2.0,
                    false,
                    1.3,
                    gap,
                )?;
            }
            Block::List { start, items } => {
                let list = self.tree.add("L", Some(parent));
                for (n, item) in items.iter().enumerate() {
                    let li = self.tree.add("LI", Some(list));
                    let lbl = self.tree.add("Lbl", Some(li));
                    let body = self.tree.add("LBody", Some(li));
                    let marker = match start {
                        Some(s) => format!("{}.", s + n as u64),
                        None => "•".to_string(),
                    };
                    let first = self.flows.len();
                    self.blocks(item, x + INDENT, width - INDENT, body)?;
                    let runs = self
                        .builder(width, false)
                        .runs(&marker, style(fonts::REGULAR, size, lbl))?;
                    if let Some(f) = self.flows.get_mut(first) {
                        let w: f32 = runs.iter().map(|r| r.width).sum();
                        let mut mx = x + INDENT - w - 5.0;
                        // The label comes first in reading order.
                        let mut draws: Vec<Draw> = runs
                            .into_iter()
                            .map(|run| {
                                let d = Draw::Text {
                                    x: mx,
                                    baseline: f.baseline,
                                    run: run.clone(),
                                };
                                mx += run.width;
                                d
                            })
                            .collect();
                        draws.append(&mut f.draws);
                        f.draws = draws;
                        if n > 0 {
                            f.space_before = f.space_before.min(size * 0.3);
                        }
                    }
                }
            }
            Block::Quote(blocks) => {
                let elem = self.tree.add("BlockQuote", Some(parent));
                let first = self.flows.len();
                self.blocks(blocks, x + INDENT, width - INDENT, elem)?;
                for f in &mut self.flows[first..] {
                    f.bars.push(x + 4.0);
                }
            }
            Block::Table { align, head, rows } => {
                self.table(align, head, rows, x, width, parent)?
            }
            Block::Rule => self.flows.push(Flow {
                height: size,
                space_before: gap,
                draws: vec![Draw::Rule {
                    x0: x,
                    y0: size / 2.0,
                    x1: x + width,
                    y1: size / 2.0,
                    width: 0.5,
                    color: RULE,
                }],
                ..Flow::default()
            }),
        }
        Ok(())
    }

    fn table(
        &mut self,
        align: &[Align],
        head: &[Vec<Inline>],
        rows: &[Vec<Vec<Inline>>],
        x: f32,
        width: f32,
        parent: usize,
    ) -> Result<(), PdfError> {
        let size = self.size * 0.9;
        let pad = 4.0;
        let table = self.tree.add("Table", Some(parent));
        let mut all: Vec<(bool, &[Vec<Inline>])> = Vec::new();
        if !head.is_empty() {
            all.push((true, head));
        }
        all.extend(rows.iter().map(|r| (false, r.as_slice())));
        let cols = all
            .iter()
            .map(|(_, r)| r.len())
            .max()
            .unwrap_or(0)
            .max(align.len());
        if cols == 0 {
            return Ok(());
        }
        // Structure and spans for every cell.
        let mut cells: Vec<(bool, Vec<Cell>)> = Vec::new();
        for (is_head, row) in &all {
            let tr = self.tree.add("TR", Some(table));
            let mut out = Vec::new();
            for cell in row.iter() {
                let elem = self.tree.add(if *is_head { "TH" } else { "TD" }, Some(tr));
                let font = if *is_head {
                    fonts::BOLD
                } else {
                    fonts::REGULAR
                };
                let mut spans = Vec::new();
                self.flatten(cell, style(font, size, elem), &mut spans);
                out.push((elem, spans));
            }
            cells.push((*is_head, out));
        }
        // Natural and minimum widths per column.
        let mut natural = vec![2.0 * pad; cols];
        let mut minimum = vec![2.0 * pad; cols];
        for (_, row) in &cells {
            for (c, (_, spans)) in row.iter().enumerate() {
                let rtl = text::paragraph_rtl(spans);
                let items = self.builder(width - 2.0 * pad, rtl).items(spans)?;
                // Natural width (one line), and the widest word (boxes between glue).
                let (mut nat, mut word, mut min) = (0.0f32, 0.0f32, 0.0f32);
                for it in &items {
                    match it {
                        text::Item::Box { width, .. } => {
                            nat += width;
                            word += width;
                            min = min.max(word);
                        }
                        text::Item::Glue { width, stretch, .. } => {
                            if *stretch < 1.0e5 {
                                nat += width;
                            }
                            word = 0.0;
                        }
                        text::Item::Penalty { .. } => {}
                    }
                }
                natural[c] = natural[c].max((nat + 2.0 * pad).min(width));
                // A very long word may be cut rather than starve the other columns.
                minimum[c] = minimum[c].max((min + 2.0 * pad).min(width / cols as f32));
            }
        }
        let (sum_nat, sum_min): (f32, f32) = (natural.iter().sum(), minimum.iter().sum());
        let widths: Vec<f32> = if sum_nat <= width {
            natural.iter().map(|n| n * width / sum_nat).collect()
        } else if sum_min <= width {
            let extra = (width - sum_min) / (sum_nat - sum_min).max(0.001);
            natural
                .iter()
                .zip(&minimum)
                .map(|(n, m)| m + (n - m) * extra)
                .collect()
        } else {
            minimum.iter().map(|m| m * width / sum_min).collect()
        };
        for (r, (is_head, row)) in cells.iter().enumerate() {
            let mut draws = Vec::new();
            let mut height = 0.0f32;
            let mut cx = x;
            let mut placed = Vec::new();
            for (c, w) in widths.iter().enumerate() {
                if let Some((_, spans)) = row.get(c) {
                    let inner = w - 2.0 * pad;
                    let (lines, rtl) = self.lines(spans, inner, false)?;
                    let lh = size * 1.3;
                    let mut y = pad;
                    for line in lines {
                        let used = line
                            .runs
                            .iter()
                            .map(|(dx, r)| dx + r.width)
                            .fold(0.0f32, f32::max);
                        let shift = match (align.get(c), rtl) {
                            (Some(Align::Right), false) => inner - used,
                            (Some(Align::Center), _) => (inner - used) / 2.0,
                            _ => 0.0,
                        };
                        let baseline = y + (lh - size * 1.36) / 2.0 + size * 1.07;
                        for (dx, run) in line.runs {
                            let shift = if rtl { shift.min(0.0) } else { shift };
                            placed.push((cx + pad + dx + shift, baseline, run));
                        }
                        y += lh;
                    }
                    height = height.max(y + pad);
                }
                cx += w;
            }
            for (x, baseline, run) in placed {
                draws.push(Draw::Text { x, baseline, run });
            }
            let weight = if *is_head { 0.8 } else { 0.4 };
            draws.push(Draw::Rule {
                x0: x,
                y0: height,
                x1: x + width,
                y1: height,
                width: weight,
                color: if *is_head { GREY } else { RULE },
            });
            if r == 0 {
                draws.push(Draw::Rule {
                    x0: x,
                    y0: 0.0,
                    x1: x + width,
                    y1: 0.0,
                    width: 0.8,
                    color: GREY,
                });
            }
            self.flows.push(Flow {
                height,
                space_before: if r == 0 { self.size * 0.8 } else { 0.0 },
                keep_with_next: *is_head,
                draws,
                baseline: pad + size,
                ..Flow::default()
            });
        }
        Ok(())
    }
}

/// What the layout needs to know besides the statement.
pub(crate) struct Job<'s> {
    pub config: &'s Config,
    pub statement: &'s Statement,
    pub document: &'s Document,
    pub geometry: Geometry,
    pub size: f32,
}

/// Lay a statement out on pages.
pub(crate) fn lay_out(
    job: &Job,
    fonts: &mut Fonts,
    hyphenator: Option<&Standard>,
    breaks: &mut crate::text::FastMap<String, Vec<usize>>,
) -> Result<Laid, PdfError> {
    let mut tree = Tree::default();
    let root = tree.add("Document", None);
    let mut ctx = Ctx {
        fonts,
        breaks,
        words: Default::default(),
        hyphenator,
        tree,
        links: Vec::new(),
        flows: Vec::new(),
        size: job.size,
    };
    let g = job.geometry;
    let width = g.text_width();
    let meta = &job.statement.meta;
    let lang = job.statement.lang.as_str();
    let size = job.size;

    // Title block.
    let org = ctx.tree.add("P", Some(root));
    let spans = vec![(
        job.config.organization.name.clone(),
        Style {
            color: ACCENT,
            ..style(fonts::BOLD, size * 0.9, org)
        },
    )];
    ctx.paragraph(&spans, g.left, width, false, 1.3, 0.0)?;
    let h1 = ctx.tree.add("H1", Some(root));
    let spans = vec![(meta.title.clone(), style(fonts::BOLD, size * 1.75, h1))];
    ctx.paragraph(&spans, g.left, width, false, 1.22, size * 0.5)?;
    let mut lines: Vec<(String, usize)> = Vec::new();
    let when = i18n::long_date(lang, &meta.date);
    lines.push((
        match &meta.place {
            Some(p) => format!("{p}, {when}"),
            None => when,
        },
        fonts::ITALIC,
    ));
    if let Some(o) = &meta.occasion {
        lines.push((o.clone(), fonts::ITALIC));
    }
    for issuer in &meta.issuers {
        lines.push((issuer.clone(), fonts::REGULAR));
    }
    if let Some(u) = meta.updated {
        lines.push((
            format!("{} {}", i18n::updated(lang), i18n::long_date(lang, &u)),
            fonts::ITALIC,
        ));
    }
    for (i, (text, font)) in lines.into_iter().enumerate() {
        let p = ctx.tree.add("P", Some(root));
        let spans = vec![(
            text,
            Style {
                color: GREY,
                ..style(font, size * 0.95, p)
            },
        )];
        ctx.paragraph(
            &spans,
            g.left,
            width,
            false,
            1.35,
            if i == 0 { size * 0.6 } else { 0.0 },
        )?;
    }
    for f in &mut ctx.flows {
        f.keep_with_next = true;
    }
    ctx.flows.push(Flow {
        height: size,
        space_before: size * 0.4,
        draws: vec![Draw::Rule {
            x0: g.left,
            y0: size * 0.5,
            x1: g.left + width,
            y1: size * 0.5,
            width: 0.8,
            color: ACCENT,
        }],
        ..Flow::default()
    });

    ctx.blocks(&job.document.blocks, g.left, width, root)?;

    if !job.document.footnotes.is_empty() {
        let notes = ctx.tree.add("H2", Some(root));
        let mut spans = Vec::new();
        ctx.flatten(
            &[Inline::Text(i18n::notes(lang).into())],
            style(fonts::BOLD, size * 1.1, notes),
            &mut spans,
        );
        let start = ctx.flows.len();
        ctx.paragraph(&spans, g.left, width, false, 1.3, size * 1.4)?;
        for f in &mut ctx.flows[start..] {
            f.keep_with_next = true;
        }
        for note in &job.document.footnotes {
            let elem = ctx.tree.add("Note", Some(root));
            let first = ctx.flows.len();
            let saved = ctx.size;
            ctx.size = size * 0.9;
            ctx.blocks(&note.blocks, g.left + INDENT, width - INDENT, elem)?;
            ctx.size = saved;
            let label = format!("{}.", note.number);
            let runs = ctx
                .builder(width, false)
                .runs(&label, style(fonts::REGULAR, size * 0.9, elem))?;
            if let Some(f) = ctx.flows.get_mut(first) {
                let mut mx = g.left;
                let mut draws: Vec<Draw> = runs
                    .into_iter()
                    .map(|run| {
                        let d = Draw::Text {
                            x: mx,
                            baseline: f.baseline,
                            run: run.clone(),
                        };
                        mx += run.width;
                        d
                    })
                    .collect();
                draws.append(&mut f.draws);
                f.draws = draws;
            }
        }
    }

    let Ctx {
        tree, links, flows, ..
    } = ctx;
    Ok(paginate(flows, g, tree, links, root))
}

/// Fill pages top to bottom, honouring keeps: a chain of flows that must stay
/// together moves to the next page whole, unless it alone fills a page.
fn paginate(flows: Vec<Flow>, g: Geometry, tree: Tree, links: Vec<LinkInfo>, root: usize) -> Laid {
    let avail = g.text_height();
    // Per page: indices of flows and their top offsets.
    let mut pages: Vec<Vec<(usize, f32)>> = vec![Vec::new()];
    let mut y = 0.0;
    let mut page_start = 0;
    let mut i = 0;
    while i < flows.len() {
        let f = &flows[i];
        let current = pages.len() - 1;
        let empty = pages[current].is_empty();
        let sb = if empty { 0.0 } else { f.space_before };
        if empty || y + sb + f.height <= avail + 0.01 {
            pages[current].push((i, y + sb));
            y += sb + f.height;
            i += 1;
            continue;
        }
        let mut j = i;
        while j > page_start && flows[j - 1].keep_with_next {
            j -= 1;
        }
        if j > page_start {
            pages[current].retain(|&(k, _)| k < j);
            i = j;
        }
        pages.push(Vec::new());
        page_start = i;
        y = 0.0;
    }
    let mut outline = Vec::new();
    let mut anchors = HashMap::new();
    let mut placed_pages = Vec::with_capacity(pages.len());
    let mut flows: Vec<Option<Flow>> = flows.into_iter().map(Some).collect();
    for (p, page) in pages.iter().enumerate() {
        let mut placed = Vec::new();
        for (n, &(i, top)) in page.iter().enumerate() {
            let Some(f) = flows[i].take() else { continue };
            let top_y = g.height - g.top - top;
            if let Some((level, title, anchor)) = f.heading {
                outline.push(OutlineEntry {
                    level,
                    title,
                    page: p,
                    y: top_y + f.space_before.min(12.0),
                });
                anchors.insert(anchor, (p, top_y + 12.0));
            }
            for x in f.bars {
                let up = if n == 0 { 0.0 } else { f.space_before };
                placed.push(Placed::Line {
                    x0: x,
                    y0: top_y + up,
                    x1: x,
                    y1: top_y - f.height,
                    width: 2.0,
                    color: RULE,
                });
            }
            for d in f.draws {
                placed.push(match d {
                    Draw::Text { x, baseline, run } => Placed::Text {
                        x,
                        y: top_y - baseline,
                        run,
                        artifact: false,
                    },
                    Draw::Rule {
                        x0,
                        y0,
                        x1,
                        y1,
                        width,
                        color,
                    } => Placed::Line {
                        x0,
                        y0: top_y - y0,
                        x1,
                        y1: top_y - y1,
                        width,
                        color,
                    },
                });
            }
        }
        placed_pages.push(placed);
    }
    Laid {
        pages: placed_pages,
        tree,
        links,
        outline,
        anchors,
        root,
    }
}

/// The title, or its start when even the sum of its characters' own widths passes
/// twice the room: the loop that trims the header title shapes it again for every
/// word or character it drops, so it must start from a text of about a line, not
/// from a title of thousands of characters (which took minutes and gigabytes).
fn header_title(b: &mut Builder, title: &str, st: Style, room: f32) -> Result<String, PdfError> {
    let mut width = 0.0;
    for (i, c) in title.char_indices() {
        width += b
            .runs(c.encode_utf8(&mut [0; 4]), st)?
            .iter()
            .map(|r| r.width)
            .sum::<f32>();
        if width > 2.0 * room + st.size {
            return Ok(format!("{}…", &title[..i]));
        }
    }
    Ok(title.to_string())
}

/// Running header and "Page X of Y" footer, drawn as artifacts.
pub(crate) fn chrome(job: &Job, fonts: &mut Fonts, laid: &mut Laid) -> Result<(), PdfError> {
    let g = job.geometry;
    let width = g.text_width();
    let size = job.size * 0.78;
    let total = laid.pages.len();
    let lang = job.statement.lang.as_str();
    let mut breaks = crate::text::FastMap::default();
    let mut words = crate::text::Words::default();
    let mut b = Builder {
        fonts,
        breaks: &mut breaks,
        words: &mut words,
        hyphenator: None,
        rtl: false,
        max_width: width,
    };
    let st = Style {
        color: GREY,
        ..style(fonts::REGULAR, size, 0)
    };
    let org = b.runs(job.config.organization.short(), st)?;
    let org_w: f32 = org.iter().map(|r| r.width).sum();
    // The short title: cut at a word, then a character, until it fits.
    let room = (width - org_w - 24.0).max(0.0);
    let mut title = header_title(&mut b, &job.statement.meta.title, st, room)?;
    let mut runs = b.runs(&title, st)?;
    while runs.iter().map(|r| r.width).sum::<f32>() > room && !title.is_empty() {
        let cut = title.trim_end_matches('…');
        let shorter = match cut.rfind(' ') {
            Some(i) if cut.len() > 40 => cut[..i].trim_end_matches([',', ';', ':']).to_string(),
            _ => {
                let mut s = cut.to_string();
                s.pop();
                s
            }
        };
        title = format!("{shorter}…");
        if shorter.is_empty() {
            title.clear();
        }
        runs = b.runs(&title, st)?;
    }
    let title_w: f32 = runs.iter().map(|r| r.width).sum();
    let header_y = g.height - g.top + 22.0;
    for (p, page) in laid.pages.iter_mut().enumerate() {
        if p > 0 {
            let mut x = g.left;
            for run in &org {
                page.push(Placed::Text {
                    x,
                    y: header_y,
                    run: run.clone(),
                    artifact: true,
                });
                x += run.width;
            }
            let mut x = g.width - g.right - title_w;
            for run in &runs {
                page.push(Placed::Text {
                    x,
                    y: header_y,
                    run: run.clone(),
                    artifact: true,
                });
                x += run.width;
            }
            page.push(Placed::Line {
                x0: g.left,
                y0: header_y - 6.0,
                x1: g.width - g.right,
                y1: header_y - 6.0,
                width: 0.4,
                color: RULE,
            });
        }
        let footer = b.runs(&i18n::page_of(lang, p + 1, total), st)?;
        let w: f32 = footer.iter().map(|r| r.width).sum();
        let mut x = (g.width - w) / 2.0;
        for run in footer {
            x += run.width;
            page.push(Placed::Text {
                x: x - run.width,
                y: g.bottom - 30.0,
                run,
                artifact: true,
            });
        }
    }
    Ok(())
}
