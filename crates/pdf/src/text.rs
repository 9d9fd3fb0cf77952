//! Paragraph text: styled spans -> shaped boxes, glue and penalties -> lines chosen
//! by the Knuth–Plass total-fit algorithm, with dictionary hyphenation.

use std::rc::Rc;

use hyphenation::{Hyphenator, Standard};

use crate::PdfError;
use crate::fonts::{Fonts, Glyph};

/// An sRGB colour, 0..=1 per channel.
pub(crate) type Color = [f32; 3];

pub(crate) const BLACK: Color = [0.0, 0.0, 0.0];

/// How a piece of text is drawn and what it belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Style {
    /// Preferred font (index into the chain).
    pub font: usize,
    pub size: f32,
    pub color: Color,
    /// Baseline shift, for footnote markers.
    pub rise: f32,
    /// Index into the document's links.
    pub link: Option<usize>,
    /// Structure element the text is tagged as part of.
    pub elem: usize,
}

/// A hard line break inside a paragraph.
pub(crate) const HARD_BREAK: char = '\u{2028}';

/// Glyphs of one font and style, drawn left to right.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    pub font: usize,
    pub style: Style,
    /// Shared: a word reused from the render's cache is drawn without copying them.
    pub glyphs: Rc<[Glyph]>,
    pub width: f32,
}

#[derive(Debug, Clone)]
pub(crate) enum Item {
    Box {
        width: f32,
        runs: Vec<Run>,
    },
    Glue {
        width: f32,
        stretch: f32,
        shrink: f32,
        /// The space character drawn in the gap, so extracted and tagged text keeps
        /// its word boundaries.
        space: Option<(usize, u16, Style)>,
    },
    Penalty {
        width: f32,
        cost: f32,
        flagged: bool,
        /// Drawn at the end of the line when the break is taken (a hyphen).
        runs: Vec<Run>,
    },
}

const INFINITE: f32 = 10_000.0;
/// Bytes past which a word is not hyphenated or remembered: no language has one.
const LONG_WORD: usize = 256;
/// More characters than fit on any line (6 pt text on the widest page): such a run is
/// cut between characters without being shaped whole first.
const LINE_CHARS: usize = 1_000;
const FILL: f32 = 1.0e6;
const HYPHEN_COST: f32 = 50.0;
const LINE_PENALTY: f32 = 10.0;
const FLAGGED_DEMERITS: f32 = 3000.0;
const FITNESS_DEMERITS: f32 = 100.0;

pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() && !matches!(c, '\u{a0}' | '\u{202f}' | '\u{2007}' | HARD_BREAK)
}

/// Characters that carry no glyph of their own and must not need one: soft hyphen,
/// zero-width space and no-break, direction marks and embeddings (the paragraph's
/// direction comes from its letters), variation selectors.
pub(crate) fn is_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{200b}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'
            | '\u{2066}'..='\u{2069}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
    )
}

/// Words already turned into items in this render, by (preferred font, size bits,
/// right to left, hyphenated, line width bits), then text. Most words recur.
pub(crate) type Words = FastMap<(usize, u32, bool, bool, u32), FastMap<String, Vec<Item>>>;

/// The per-render caches are looked up once per word: SipHash showed in profiles.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// `item` as drawn in `style`: what a word looks like depends only on the cache key,
/// its colour, link and structure element on where it stands.
fn restyle(item: &Item, style: Style) -> Item {
    let runs = |runs: &[Run]| runs.iter().map(|r| Run { style, ..r.clone() }).collect();
    match item {
        Item::Box { width, runs: r } => Item::Box {
            width: *width,
            runs: runs(r),
        },
        Item::Penalty {
            width,
            cost,
            flagged,
            runs: r,
        } => Item::Penalty {
            width: *width,
            cost: *cost,
            flagged: *flagged,
            runs: runs(r),
        },
        Item::Glue {
            width,
            stretch,
            shrink,
            space,
        } => Item::Glue {
            width: *width,
            stretch: *stretch,
            shrink: *shrink,
            space: space.map(|(f, g, _)| (f, g, style)),
        },
    }
}

pub(crate) struct Builder<'f, 'a> {
    pub fonts: &'f mut Fonts<'a>,
    /// Dictionary breaks of words already seen in this render.
    pub breaks: &'f mut FastMap<String, Vec<usize>>,
    pub words: &'f mut Words,
    pub hyphenator: Option<&'f Standard>,
    pub rtl: bool,
    /// The widest a box may be; longer words are cut.
    pub max_width: f32,
}

impl Builder<'_, '_> {
    /// Shape text of one style into runs, one per font of the fallback chain it needs.
    pub fn runs(&mut self, text: &str, style: Style) -> Result<Vec<Run>, PdfError> {
        let covered = |c: char| is_ignorable(c) || self.fonts.font_for(c, style.font).is_some();
        let text: std::borrow::Cow<str> = if text.chars().all(covered) {
            text.into()
        } else {
            text.chars()
                .map(|c| match substitute(c) {
                    Some(s) if !covered(c) => s,
                    _ => c,
                })
                .collect::<String>()
                .into()
        };
        let text = text.as_ref();
        let mut runs = Vec::new();
        let mut start = 0;
        let mut current: Option<usize> = None;
        for (i, c) in text.char_indices() {
            if is_ignorable(c) {
                continue;
            }
            // Marks and joiners stay with the base they belong to.
            let keep = current.is_some()
                && (is_mark(c) || c == '\u{200d}' || c == '\u{200c}')
                && current.is_some_and(|f| self.fonts.glyph(f, c).is_some());
            if keep {
                continue;
            }
            let font = self
                .fonts
                .font_for(c, style.font)
                .ok_or(PdfError::MissingGlyph { character: c })?;
            if current != Some(font) {
                if let Some(f) = current {
                    self.push_run(&mut runs, f, &text[start..i], style);
                }
                current = Some(font);
                start = i;
            }
        }
        if let Some(f) = current {
            self.push_run(&mut runs, f, &text[start..], style);
        }
        if self.rtl {
            runs.reverse();
        }
        Ok(runs)
    }

    fn push_run(&mut self, runs: &mut Vec<Run>, font: usize, text: &str, style: Style) {
        let clean: String = text.chars().filter(|c| !is_ignorable(*c)).collect();
        let rtl = clean.chars().any(is_rtl);
        let (glyphs, width) = self.fonts.shape(font, &clean, style.size, rtl);
        runs.push(Run {
            font,
            style,
            glyphs,
            width,
        });
    }

    /// The items of a paragraph, ending with a forced break.
    pub fn items(&mut self, spans: &[(String, Style)]) -> Result<Vec<Item>, PdfError> {
        let mut items = Vec::new();
        let mut word: Vec<(String, Style)> = Vec::new();
        let mut pending_space: Option<Style> = None;
        for (text, style) in spans {
            for c in text.chars() {
                if is_space(c) || c == HARD_BREAK {
                    if !word.is_empty() {
                        self.word(&mut items, &word)?;
                        word.clear();
                    }
                    if c == HARD_BREAK {
                        pending_space = None;
                        if !items.is_empty() {
                            items.push(fill());
                            items.push(forced());
                        }
                    } else if items.last().is_some_and(|i| matches!(i, Item::Box { .. })) {
                        pending_space = Some(*style);
                    }
                    continue;
                }
                if let Some(s) = pending_space.take() {
                    items.push(self.space(s));
                }
                match word.last_mut() {
                    Some((t, s)) if s == style => t.push(c),
                    _ => word.push((c.to_string(), *style)),
                }
            }
        }
        if !word.is_empty() {
            self.word(&mut items, &word)?;
        }
        items.push(fill());
        items.push(forced());
        Ok(items)
    }

    fn space(&mut self, style: Style) -> Item {
        let font = self.fonts.font_for(' ', style.font).unwrap_or(style.font);
        let gid = self.fonts.glyph(font, ' ').unwrap_or(0);
        let width = self.fonts.advance_milli(font, gid) * style.size / 1000.0;
        self.fonts.used[font].insert(gid, " ".to_string());
        Item::Glue {
            width,
            stretch: width * 0.6,
            shrink: width * 0.35,
            space: Some((font, gid, style)),
        }
    }

    /// One word: boxes between its break opportunities.
    fn word(&mut self, items: &mut Vec<Item>, parts: &[(String, Style)]) -> Result<(), PdfError> {
        let [(text, style)] = parts else {
            return self.word_uncached(items, parts);
        };
        let key = (
            style.font,
            style.size.to_bits(),
            self.rtl,
            self.hyphenator.is_some(),
            self.max_width.to_bits(),
        );
        if let Some(made) = self.words.get(&key).and_then(|m| m.get(text.as_str())) {
            items.extend(made.iter().map(|i| restyle(i, *style)));
            return Ok(());
        }
        let start = items.len();
        self.word_uncached(items, parts)?;
        // A word longer than any dictionary's does not recur: keeping it would only
        // copy it (a 1 MB word is 1 MB of key and its items again).
        if text.len() <= LONG_WORD {
            let made = items[start..].to_vec();
            self.words
                .entry(key)
                .or_default()
                .insert(text.clone(), made);
        }
        Ok(())
    }

    fn word_uncached(
        &mut self,
        items: &mut Vec<Item>,
        parts: &[(String, Style)],
    ) -> Result<(), PdfError> {
        let full: String = parts.iter().map(|(t, _)| t.as_str()).collect();
        let breaks = self.breaks(&full);
        // Cut the word's parts at the break offsets.
        let mut segments: Vec<Vec<(&str, Style)>> = vec![Vec::new()];
        let mut offset = 0;
        let mut bi = 0;
        for (text, style) in parts {
            let mut local = 0;
            while bi < breaks.len() && breaks[bi].0 < offset + text.len() {
                let cut = breaks[bi].0 - offset;
                if let (true, Some(seg)) = (cut > local, segments.last_mut()) {
                    seg.push((&text[local..cut], *style));
                }
                segments.push(Vec::new());
                local = cut;
                bi += 1;
            }
            if let (true, Some(seg)) = (local < text.len(), segments.last_mut()) {
                seg.push((&text[local..], *style));
            }
            offset += text.len();
        }
        let mut seg_breaks = breaks.iter();
        let count = segments.len();
        for (n, seg) in segments.into_iter().enumerate() {
            // A segment of more characters than any line holds is cut at once: shaping
            // it whole only to learn that it does not fit would shape it twice.
            let chars: usize = seg.iter().map(|(t, _)| t.chars().count()).sum();
            if chars > LINE_CHARS {
                self.cut(items, &seg)?;
            } else {
                let mut runs = Vec::new();
                for (text, style) in &seg {
                    runs.extend(self.runs(text, *style)?);
                }
                if self.rtl {
                    runs.reverse();
                }
                let width: f32 = runs.iter().map(|r| r.width).sum();
                if width > self.max_width {
                    self.cut(items, &seg)?;
                } else {
                    items.push(Item::Box { width, runs });
                }
            }
            if n + 1 < count {
                let Some(&(_, hyphen)) = seg_breaks.next() else {
                    break;
                };
                let style = seg.last().map(|(_, s)| *s);
                match (hyphen, style) {
                    (true, Some(style)) => {
                        let runs = self.runs("-", style)?;
                        items.push(Item::Penalty {
                            width: runs.iter().map(|r| r.width).sum(),
                            cost: HYPHEN_COST,
                            flagged: true,
                            runs,
                        });
                    }
                    _ => items.push(Item::Penalty {
                        width: 0.0,
                        cost: HYPHEN_COST,
                        flagged: true,
                        runs: Vec::new(),
                    }),
                }
            }
        }
        Ok(())
    }

    /// A segment wider than a line: cut it between characters, as little as needed.
    fn cut(&mut self, items: &mut Vec<Item>, seg: &[(&str, Style)]) -> Result<(), PdfError> {
        let mut line: Vec<(String, Style)> = Vec::new();
        let mut width = 0.0;
        let mut first = true;
        // A long segment repeats few characters: measure each once.
        let mut widths: FastMap<(char, usize, u32), f32> = FastMap::default();
        for (text, style) in seg {
            for c in text.chars() {
                let key = (c, style.font, style.size.to_bits());
                let w = match widths.get(&key) {
                    Some(&w) => w,
                    None => {
                        let w: f32 = self
                            .runs(c.encode_utf8(&mut [0; 4]), *style)?
                            .iter()
                            .map(|r| r.width)
                            .sum();
                        widths.insert(key, w);
                        w
                    }
                };
                if width + w > self.max_width && !line.is_empty() {
                    self.push_cut(items, &line, &mut first)?;
                    line.clear();
                    width = 0.0;
                }
                width += w;
                match line.last_mut() {
                    Some((t, s)) if s == style => t.push(c),
                    _ => line.push((c.to_string(), *style)),
                }
            }
        }
        if !line.is_empty() {
            self.push_cut(items, &line, &mut first)?;
        }
        Ok(())
    }

    fn push_cut(
        &mut self,
        items: &mut Vec<Item>,
        parts: &[(String, Style)],
        first: &mut bool,
    ) -> Result<(), PdfError> {
        if !*first {
            items.push(Item::Penalty {
                width: 0.0,
                cost: INFINITE / 2.0,
                flagged: false,
                runs: Vec::new(),
            });
        }
        *first = false;
        let mut runs = Vec::new();
        for (t, s) in parts {
            runs.extend(self.runs(t, *s)?);
        }
        let width = runs.iter().map(|r| r.width).sum();
        items.push(Item::Box { width, runs });
        Ok(())
    }

    /// Break opportunities inside a word: (byte offset, draws a hyphen).
    fn breaks(&mut self, word: &str) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        // After an explicit hyphen or dash between letters.
        for w in chars.windows(3) {
            let [(_, a), (i, c), (_, b)] = [w[0], w[1], w[2]];
            if matches!(c, '-' | '\u{2010}' | '\u{2013}' | '\u{2014}' | '/')
                && a.is_alphanumeric()
                && b.is_alphanumeric()
            {
                out.push((i + c.len_utf8(), false));
            }
        }
        if let Some(h) = self.hyphenator {
            // Dictionary breaks inside each run of letters.
            let mut start = None;
            for (k, &(i, c)) in chars.iter().enumerate() {
                let letter = c.is_alphabetic();
                if letter && start.is_none() {
                    start = Some(i);
                }
                let end = if !letter {
                    Some(i)
                } else if k + 1 == chars.len() {
                    Some(word.len())
                } else {
                    None
                };
                if let (Some(s), Some(e)) = (start, end) {
                    let run = &word[s..e];
                    // No dictionary has a word of hundreds of letters; hyphenating one
                    // costs time and a memo entry of its size for nothing.
                    if run.chars().count() >= 5 && run.len() <= LONG_WORD {
                        let found = self
                            .breaks
                            .entry(run.to_string())
                            .or_insert_with(|| h.hyphenate(run).breaks);
                        out.extend(found.iter().map(|b| (s + b, true)));
                    }
                    start = None;
                }
            }
        }
        out.sort_unstable();
        out.dedup_by_key(|b| b.0);
        out.retain(|&(b, _)| b > 0 && b < word.len() && word.is_char_boundary(b));
        out
    }
}

fn space_run((font, gid, style): (usize, u16, Style), width: f32) -> Run {
    Run {
        font,
        style,
        glyphs: Rc::new([Glyph {
            gid,
            advance: width,
            dx: 0.0,
            dy: 0.0,
        }]),
        width,
    }
}

/// A look-alike for characters the bundled fonts lack but statements use.
pub(crate) fn substitute(c: char) -> Option<char> {
    Some(match c {
        '\u{2212}' | '\u{2010}' | '\u{2011}' => '-',
        '\u{2009}' | '\u{200a}' | '\u{2002}' | '\u{2003}' => ' ',
        _ => return None,
    })
}

fn fill() -> Item {
    Item::Glue {
        width: 0.0,
        stretch: FILL,
        shrink: 0.0,
        space: None,
    }
}

fn forced() -> Item {
    Item::Penalty {
        width: 0.0,
        cost: -INFINITE,
        flagged: false,
        runs: Vec::new(),
    }
}

/// Right-to-left scripts: Hebrew, Arabic, Syriac, Thaana, N'Ko and their presentation forms.
pub(crate) fn is_rtl(c: char) -> bool {
    matches!(c as u32, 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF)
}

fn is_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05C7 | 0x0610..=0x061A | 0x064B..=0x065F | 0x0670 | 0x06D6..=0x06ED | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// The direction of a paragraph: that of its first strong character.
pub(crate) fn paragraph_rtl(spans: &[(String, Style)]) -> bool {
    spans
        .iter()
        .flat_map(|(t, _)| t.chars())
        .find(|c| c.is_alphabetic())
        .is_some_and(is_rtl)
}

#[derive(Debug, Clone, Copy)]
struct Node {
    pos: usize,
    fitness: u8,
    flagged: bool,
    width: f32,
    stretch: f32,
    shrink: f32,
    demerits: f32,
    prev: Option<usize>,
}

/// Optimal breakpoints (indices into `items`) for lines of `width`: Knuth and Plass's
/// total-fit algorithm. Every feasible line is allowed (no tolerance pass), so it
/// always finds breaks; an unavoidably overfull line is taken only as a last resort.
pub(crate) fn break_lines(items: &[Item], width: f32) -> Vec<usize> {
    // A first pass keeps only reasonably tight lines active, which is much faster;
    // when that finds no way through, every feasible line is allowed.
    total_fit(items, width, Some(3.0))
        .unwrap_or_else(|| total_fit(items, width, None).unwrap_or_default())
}

fn total_fit(items: &[Item], width: f32, tolerance: Option<f32>) -> Option<Vec<usize>> {
    let mut nodes = vec![Node {
        pos: 0,
        fitness: 1,
        flagged: false,
        width: 0.0,
        stretch: 0.0,
        shrink: 0.0,
        demerits: 0.0,
        prev: None,
    }];
    let mut active: Vec<usize> = vec![0];
    let (mut sum_w, mut sum_y, mut sum_z) = (0.0f32, 0.0f32, 0.0f32);
    for (i, item) in items.iter().enumerate() {
        let (breakable, pw, cost, flagged) = match item {
            Item::Box { width, .. } => {
                sum_w += width;
                (false, 0.0, 0.0, false)
            }
            Item::Glue { .. } => (
                i > 0 && matches!(items[i - 1], Item::Box { .. }),
                0.0,
                0.0,
                false,
            ),
            Item::Penalty {
                width,
                cost,
                flagged,
                ..
            } => (*cost < INFINITE, *width, *cost, *flagged),
        };
        if breakable {
            let mut best: [Option<(f32, usize)>; 4] = [None; 4];
            let mut removed_best: Option<(f32, usize)> = None;
            active.retain(|&a| {
                let node = &nodes[a];
                let len = sum_w - node.width + pw;
                let ratio = if len < width {
                    let y = sum_y - node.stretch;
                    if y > 0.0 { (width - len) / y } else { INFINITE }
                } else if len > width {
                    let z = sum_z - node.shrink;
                    if z > 0.0 {
                        (width - len) / z
                    } else {
                        -INFINITE
                    }
                } else {
                    0.0
                };
                let keep = ratio >= -1.0 && cost > -INFINITE;
                if ratio >= -1.0 && tolerance.is_none_or(|t| ratio <= t) {
                    let badness = (100.0 * ratio.abs().powi(3)).min(INFINITE);
                    let mut d = (LINE_PENALTY + badness).powi(2);
                    if cost >= 0.0 {
                        d += cost * cost;
                    } else if cost > -INFINITE {
                        d -= cost * cost;
                    }
                    if flagged && node.flagged {
                        d += FLAGGED_DEMERITS;
                    }
                    let fitness: u8 = if ratio < -0.5 {
                        0
                    } else if ratio <= 0.5 {
                        1
                    } else if ratio <= 1.0 {
                        2
                    } else {
                        3
                    };
                    if fitness.abs_diff(node.fitness) > 1 {
                        d += FITNESS_DEMERITS;
                    }
                    d += node.demerits;
                    let slot = &mut best[usize::from(fitness)];
                    if slot.is_none_or(|(bd, _)| d < bd) {
                        *slot = Some((d, a));
                    }
                } else if removed_best.is_none_or(|(bd, _)| node.demerits < bd) {
                    removed_best = Some((node.demerits + INFINITE * INFINITE, a));
                }
                keep
            });
            if best.iter().all(Option::is_none) && active.is_empty() {
                if tolerance.is_some() {
                    return None;
                }
                // Nothing fits: take the least bad overfull line rather than fail.
                if let Some(b) = removed_best {
                    best[1] = Some(b);
                }
            }
            // Totals after the break: discardable items that follow are skipped.
            let (mut tw, mut ty, mut tz) = (sum_w, sum_y, sum_z);
            for next in &items[i..] {
                match next {
                    Item::Box { .. } => break,
                    Item::Glue {
                        width,
                        stretch,
                        shrink,
                        ..
                    } => {
                        tw += width;
                        ty += stretch;
                        tz += shrink;
                    }
                    Item::Penalty { cost, .. }
                        if *cost <= -INFINITE && !std::ptr::eq(next, item) =>
                    {
                        break;
                    }
                    Item::Penalty { .. } => {}
                }
            }
            for (fitness, b) in best.iter().enumerate() {
                if let Some((d, prev)) = *b {
                    nodes.push(Node {
                        pos: i,
                        fitness: fitness as u8,
                        flagged,
                        width: tw,
                        stretch: ty,
                        shrink: tz,
                        demerits: d,
                        prev: Some(prev),
                    });
                    active.push(nodes.len() - 1);
                }
            }
        }
        if let Item::Glue {
            width,
            stretch,
            shrink,
            ..
        } = item
        {
            sum_w += width;
            sum_y += stretch;
            sum_z += shrink;
        }
    }
    // The final forced break is among the last nodes created.
    let last = items.len().saturating_sub(1);
    let end = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.pos == last && n.prev.is_some())
        .min_by(|a, b| a.1.demerits.total_cmp(&b.1.demerits))
        .map(|(i, _)| i);
    let mut breaks = Vec::new();
    let mut at = end;
    while let Some(i) = at {
        if nodes[i].prev.is_some() {
            breaks.push(nodes[i].pos);
        }
        at = nodes[i].prev;
    }
    breaks.reverse();
    if end.is_none() && tolerance.is_some() {
        return None;
    }
    if breaks.is_empty() && !items.is_empty() {
        breaks.push(last);
    }
    Some(breaks)
}

/// A set line: runs with their x offsets from the line's start edge (left).
#[derive(Debug, Clone, Default)]
pub(crate) struct Line {
    pub runs: Vec<(f32, Run)>,
    /// Largest font size on the line.
    pub size: f32,
}

/// Turn breakpoints into lines of `width`. `justify` stretches glue to fill the line;
/// otherwise glue only shrinks when it must. Right-to-left lines are mirrored.
pub(crate) fn set_lines(
    items: &[Item],
    breaks: &[usize],
    width: f32,
    justify: bool,
    rtl: bool,
) -> Vec<Line> {
    let mut lines = Vec::with_capacity(breaks.len());
    let mut start = 0;
    for &b in breaks {
        while start < b && !matches!(items[start], Item::Box { .. }) {
            start += 1;
        }
        let slice = &items[start..b];
        let (mut len, mut y, mut z) = (0.0, 0.0, 0.0);
        for it in slice {
            match it {
                Item::Box { width, .. } => len += width,
                Item::Glue {
                    width,
                    stretch,
                    shrink,
                    ..
                } => {
                    len += width;
                    y += stretch;
                    z += shrink;
                }
                Item::Penalty { .. } => {}
            }
        }
        let tail: &[Run] = match items.get(b) {
            Some(Item::Penalty { runs, width: w, .. }) => {
                len += w;
                runs
            }
            _ => &[],
        };
        let mut ratio = if len < width && y > 0.0 {
            (width - len) / y
        } else if len > width && z > 0.0 {
            ((width - len) / z).max(-1.0)
        } else {
            0.0
        };
        if !justify {
            ratio = ratio.min(0.0);
        }
        let mut line = Line::default();
        let mut x = 0.0;
        // The glyphs of the line's last run while runs join it, made shared once
        // it is complete (joining shared slices one by one would copy them again each time).
        let mut open: Option<Vec<Glyph>> = None;
        let close = |open: &mut Option<Vec<Glyph>>, line: &mut Line| {
            if let (Some(glyphs), Some((_, last))) = (open.take(), line.runs.last_mut()) {
                last.glyphs = glyphs.into();
            }
        };
        let mut place = |x: &mut f32, run: &Run, line: &mut Line| {
            line.size = line.size.max(run.style.size);
            // Left to right, a run that continues the last one in the same font joins it:
            // fewer text objects, and the spaces stay inside the words' run.
            if let Some((at, last)) = line.runs.last_mut()
                && !rtl
                && last.font == run.font
                && last.style == run.style
                && (*at + last.width - *x).abs() < 0.01
            {
                open.get_or_insert_with(|| last.glyphs.to_vec())
                    .extend_from_slice(&run.glyphs);
                last.width += run.width;
                *x += run.width;
                return;
            }
            close(&mut open, line);
            let at = if rtl { width - *x - run.width } else { *x };
            line.runs.push((at, run.clone()));
            *x += run.width;
        };
        for it in slice {
            match it {
                Item::Box { runs, .. } => runs.iter().for_each(|r| place(&mut x, r, &mut line)),
                Item::Glue {
                    width,
                    stretch,
                    shrink,
                    space,
                } => {
                    let w = width
                        + if ratio > 0.0 {
                            ratio * stretch
                        } else {
                            ratio * shrink
                        };
                    match space {
                        Some(sp) => place(&mut x, &space_run(*sp, w), &mut line),
                        None => x += w,
                    }
                }
                Item::Penalty { .. } => {}
            }
        }
        tail.iter().for_each(|r| place(&mut x, r, &mut line));
        // The space at a line break is kept too, with no width.
        if let Some(Item::Glue {
            space: Some(sp), ..
        }) = items.get(b)
        {
            place(&mut x, &space_run(*sp, 0.0), &mut line);
        }
        close(&mut open, &mut line);
        lines.push(line);
        start = b + 1;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(w: f32) -> Item {
        Item::Box {
            width: w,
            runs: Vec::new(),
        }
    }
    fn glue() -> Item {
        Item::Glue {
            width: 3.0,
            stretch: 2.0,
            shrink: 1.0,
            space: None,
        }
    }

    #[test]
    fn total_fit_balances_lines() {
        // Two words fit a line; three do not (too little shrink).
        let mut items = Vec::new();
        for w in [30.0, 30.0, 30.0, 30.0] {
            if !items.is_empty() {
                items.push(glue());
            }
            items.push(boxed(w));
        }
        items.push(fill());
        items.push(forced());
        let breaks = break_lines(&items, 66.0);
        assert_eq!(breaks, vec![3, 8]);
    }

    #[test]
    fn overfull_box_still_breaks() {
        let items = vec![boxed(200.0), glue(), boxed(10.0), fill(), forced()];
        let breaks = break_lines(&items, 100.0);
        assert_eq!(breaks, vec![1, 4]);
    }
}
