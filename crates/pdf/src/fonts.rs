//! Fonts: the bundled faces, the configured fallback chain, shaping with rustybuzz,
//! and embedding the glyphs a document used as subset CID fonts.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};

use rustybuzz::{Direction, Face, Script, ShapePlan, UnicodeBuffer};

use crate::PdfError;

pub(crate) const REGULAR: usize = 0;
pub(crate) const BOLD: usize = 1;
pub(crate) const ITALIC: usize = 2;
#[cfg(test)]
pub(crate) const ARABIC: usize = 3;

const BUNDLED: [(&str, &[u8]); 4] = [
    (
        "NotoSerif-Regular",
        include_bytes!("../fonts/NotoSerif-Regular.ttf"),
    ),
    (
        "NotoSerif-Bold",
        include_bytes!("../fonts/NotoSerif-Bold.ttf"),
    ),
    (
        "NotoSerif-Italic",
        include_bytes!("../fonts/NotoSerif-Italic.ttf"),
    ),
    (
        "NotoNaskhArabic-Regular",
        include_bytes!("../fonts/NotoNaskhArabic-Regular.ttf"),
    ),
];

/// A font file the renderer may draw with.
#[derive(Debug, Clone)]
pub(crate) struct FontSource {
    /// PostScript name, without a subset tag.
    pub name: String,
    pub data: &'static [u8],
}

/// Fallback font files, loaded once per process and kept for its life: parsed faces
/// borrow them, and a renderer made again (or one per call of `render`) must not
/// load the same file twice.
fn intern(data: Vec<u8>) -> &'static [u8] {
    use sha2::{Digest, Sha256};
    static FILES: OnceLock<Mutex<HashMap<[u8; 32], &'static [u8]>>> = OnceLock::new();
    let key: [u8; 32] = Sha256::digest(&data).into();
    let mut files = FILES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    files
        .entry(key)
        .or_insert_with(|| Box::leak(data.into_boxed_slice()))
}

/// The bundled faces followed by the configured fallbacks, in chain order.
pub(crate) fn load_sources(
    base: &Path,
    fallbacks: &[std::path::PathBuf],
) -> Result<Vec<FontSource>, PdfError> {
    let mut out: Vec<FontSource> = BUNDLED
        .iter()
        .map(|(name, data)| FontSource {
            name: (*name).to_string(),
            data,
        })
        .collect();
    for rel in fallbacks {
        let path = base.join(rel);
        let data = std::fs::read(&path).map_err(|e| PdfError::Font {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let face = Face::from_slice(&data, 0).ok_or_else(|| PdfError::Font {
            path: path.clone(),
            reason: "not a TrueType or OpenType font".into(),
        })?;
        let name = postscript_name(&face).unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "Fallback".into())
        });
        // Only glyph outlines subsetter can embed; CFF2 and bitmap-only fonts cannot be.
        if face.tables().glyf.is_none() && face.tables().cff.is_none() {
            return Err(PdfError::Font {
                path,
                reason: "has neither TrueType nor CFF outlines".into(),
            });
        }
        let name: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        out.push(FontSource {
            name,
            data: intern(data),
        });
    }
    Ok(out)
}

fn postscript_name(face: &Face) -> Option<String> {
    face.names()
        .into_iter()
        .find(|n| n.name_id == rustybuzz::ttf_parser::name_id::POST_SCRIPT_NAME && n.is_unicode())
        .and_then(|n| n.to_string())
}

/// One shaped glyph, in points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Glyph {
    pub gid: u16,
    pub advance: f32,
    pub dx: f32,
    pub dy: f32,
}

/// Parse every face once; shaping plans are built here, which is costly.
pub(crate) fn parse_faces(sources: &[FontSource]) -> Result<Vec<Face<'static>>, PdfError> {
    sources
        .iter()
        .map(|s| {
            Face::from_slice(s.data, 0).ok_or_else(|| PdfError::Font {
                path: s.name.clone().into(),
                reason: "cannot be parsed".into(),
            })
        })
        .collect()
}

/// The faces of one render, and what it used of each.
pub(crate) struct Fonts<'a> {
    pub sources: &'a [FontSource],
    pub faces: &'a [Face<'static>],
    /// Per font: glyph id -> the text it stands for (for ToUnicode).
    pub used: Vec<BTreeMap<u16, String>>,
    /// Per font: (ascender, descender) as a fraction of the size.
    pub metrics: Vec<(f32, f32)>,
    /// Shaping plans made by the renderer for the usual scripts.
    shared: &'a Plans,
    /// Per font: the glyph of every character below [`LOW`] (0: none), from [`low_glyphs`].
    low: &'a [Vec<u16>],
    /// Plans for other scripts, made during this render.
    plans: Plans,
    /// Text already shaped, by this render or an earlier one (see [`ShapeMemo`]).
    pub shaped: ShapeMemo,
}

/// Shaped text by (font, size bits, right to left), then text. Shaping depends on
/// nothing else, so the memo outlives a render: words recur across statements.
pub(crate) type ShapeMemo =
    crate::text::FastMap<(usize, u32, bool), crate::text::FastMap<String, Shaped>>;

/// One shaped text, and what each glyph stands for, to record it again in the
/// render that reuses it (so every render's ToUnicode map is its own).
pub(crate) struct Shaped {
    /// A Vec, not the `Rc<[Glyph]>` runs hold: memos pass between threads.
    glyphs: Vec<Glyph>,
    width: f32,
    /// Per glyph, in order: the byte range of the text it stands for (empty after
    /// the first glyph of a cluster).
    texts: Vec<(u32, u32)>,
}

/// Glyph `gid` is used, standing for `text` unless something was recorded before.
fn record(used: &mut BTreeMap<u16, String>, gid: u16, text: &str) {
    let entry = used.entry(gid).or_default();
    if entry.is_empty() && !text.is_empty() {
        *entry = text.to_string();
    }
}

/// Shaping plans are costly to build: one per font, direction and script.
pub(crate) type Plans = HashMap<(usize, bool, Script), ShapePlan>;

/// Characters below this (Latin, Greek, Cyrillic, Arabic) are looked up in a table:
/// the cmap's binary search, once per character of every word, was a tenth of a render.
pub(crate) const LOW: u32 = 0x800;

/// Per face, the glyph of each character below [`LOW`], 0 where it has none. Made once.
pub(crate) fn low_glyphs(faces: &[Face<'static>]) -> Vec<Vec<u16>> {
    faces
        .iter()
        .map(|face| {
            (0..LOW)
                .map(|u| {
                    char::from_u32(u)
                        .and_then(|c| face.glyph_index(c))
                        .map_or(0, |g| g.0)
                })
                .collect()
        })
        .collect()
}

/// Plans for the scripts statements are usually written in, made once.
pub(crate) fn common_plans(faces: &[Face<'static>]) -> Plans {
    use rustybuzz::script;
    let mut plans = HashMap::new();
    for (font, face) in faces.iter().enumerate() {
        for (rtl, script) in [
            (false, script::LATIN),
            (false, script::CYRILLIC),
            (false, script::COMMON),
            (true, script::ARABIC),
            (true, script::COMMON),
        ] {
            let direction = if rtl {
                Direction::RightToLeft
            } else {
                Direction::LeftToRight
            };
            plans.insert(
                (font, rtl, script),
                ShapePlan::new(face, direction, Some(script), None, &[]),
            );
        }
    }
    plans
}

impl<'a> Fonts<'a> {
    pub fn new(
        sources: &'a [FontSource],
        faces: &'a [Face<'static>],
        shared: &'a Plans,
        low: &'a [Vec<u16>],
        shaped: ShapeMemo,
    ) -> Self {
        let metrics = faces
            .iter()
            .map(|face| {
                let upem = face.units_per_em() as f32;
                (
                    f32::from(face.ascender()) / upem,
                    f32::from(face.descender()) / upem,
                )
            })
            .collect();
        Fonts {
            sources,
            used: vec![BTreeMap::new(); faces.len()],
            faces,
            metrics,
            shared,
            low,
            plans: HashMap::new(),
            shaped,
        }
    }

    /// The glyph of `c` in `font`, if it has one.
    pub fn glyph(&self, font: usize, c: char) -> Option<u16> {
        match self.low.get(font).and_then(|t| t.get(c as usize)) {
            Some(0) => None,
            Some(&gid) => Some(gid),
            None => self.faces[font].glyph_index(c).map(|g| g.0),
        }
    }

    /// The first font in the chain, starting with `preferred`, that has a glyph for `c`.
    pub fn font_for(&self, c: char, preferred: usize) -> Option<usize> {
        let has = |i: usize| self.glyph(i, c).is_some();
        if has(preferred) {
            return Some(preferred);
        }
        (0..self.faces.len()).find(|&i| i != preferred && has(i))
    }

    /// Shape `text` with one font. Records the glyphs used and what text each maps to.
    pub fn shape(&mut self, font: usize, text: &str, size: f32, rtl: bool) -> (Rc<[Glyph]>, f32) {
        let key = (font, size.to_bits(), rtl);
        if let Some(hit) = self.shaped.get(&key).and_then(|m| m.get(text)) {
            let used = &mut self.used[font];
            for (g, &(start, end)) in hit.glyphs.iter().zip(&hit.texts) {
                let part = text.get(start as usize..end as usize).unwrap_or("");
                record(used, g.gid, part);
            }
            return (Rc::from(hit.glyphs.as_slice()), hit.width);
        }
        let out = self.shape_uncached(font, text, size, rtl);
        let result = (Rc::from(out.glyphs.as_slice()), out.width);
        self.shaped
            .entry(key)
            .or_default()
            .insert(text.to_string(), out);
        result
    }

    fn shape_uncached(&mut self, font: usize, text: &str, size: f32, rtl: bool) -> Shaped {
        let face = &self.faces[font];
        let mut buf = UnicodeBuffer::new();
        buf.push_str(text);
        buf.guess_segment_properties();
        buf.set_direction(if rtl {
            Direction::RightToLeft
        } else {
            Direction::LeftToRight
        });
        let script = buf.script();
        let key = (font, rtl, script);
        let plan = match self.shared.get(&key) {
            Some(plan) => plan,
            None => self.plans.entry(key).or_insert_with(|| {
                let direction = if rtl {
                    Direction::RightToLeft
                } else {
                    Direction::LeftToRight
                };
                ShapePlan::new(face, direction, Some(script), None, &[])
            }),
        };
        let shaped = rustybuzz::shape_with_plan(face, plan, buf);
        let scale = size / face.units_per_em() as f32;
        let infos = shaped.glyph_infos();
        let positions = shaped.glyph_positions();
        // Cluster starts, to find where each cluster's text ends.
        let mut starts: Vec<usize> = infos.iter().map(|i| i.cluster as usize).collect();
        starts.sort_unstable();
        starts.dedup();
        let used = &mut self.used[font];
        let mut glyphs = Vec::with_capacity(infos.len());
        let mut texts = Vec::with_capacity(infos.len());
        let mut width = 0.0;
        let mut last_cluster = usize::MAX;
        for (info, pos) in infos.iter().zip(positions) {
            let gid = u16::try_from(info.glyph_id).unwrap_or(0);
            let start = info.cluster as usize;
            let end = match starts.binary_search(&start) {
                Ok(i) => starts.get(i + 1).copied().unwrap_or(text.len()),
                Err(_) => text.len(),
            };
            let range = if start != last_cluster && text.get(start..end).is_some() {
                start..end
            } else {
                0..0
            };
            last_cluster = start;
            record(used, gid, &text[range.clone()]);
            // Statement texts shaped here are words, far below 4 GB.
            texts.push((range.start as u32, range.end as u32));
            let g = Glyph {
                gid,
                advance: pos.x_advance as f32 * scale,
                dx: pos.x_offset as f32 * scale,
                dy: pos.y_offset as f32 * scale,
            };
            width += g.advance;
            glyphs.push(g);
        }
        Shaped {
            glyphs,
            width,
            texts,
        }
    }

    /// The horizontal advance of a glyph in its font, in thousandths of the size.
    pub fn advance_milli(&self, font: usize, gid: u16) -> f32 {
        let face = &self.faces[font];
        let adv = face
            .glyph_hor_advance(rustybuzz::ttf_parser::GlyphId(gid))
            .unwrap_or(0);
        f32::from(adv) * 1000.0 / face.units_per_em() as f32
    }
}

/// A font as embedded: the subset program and the old -> new glyph ids.
pub(crate) struct Embedded {
    pub font: usize,
    pub remap: subsetter::GlyphRemapper,
    pub program: Vec<u8>,
    /// Subset tag + PostScript name.
    pub base_name: String,
}

/// Subset each font that was used. Glyph ids are remapped in sorted order, so the
/// same glyphs always give the same subset.
pub(crate) fn embed(fonts: &Fonts) -> Result<Vec<Embedded>, PdfError> {
    let mut out = Vec::new();
    for (font, used) in fonts.used.iter().enumerate() {
        if used.is_empty() {
            continue;
        }
        let mut remap = subsetter::GlyphRemapper::new();
        for gid in used.keys() {
            remap.remap(*gid);
        }
        let source = &fonts.sources[font];
        let program = subsetter::subset(source.data, 0, &remap).map_err(|e| PdfError::Font {
            path: source.name.clone().into(),
            reason: format!("cannot be subset: {e}"),
        })?;
        out.push(Embedded {
            font,
            base_name: format!("{}+{}", subset_tag(&source.name, used), source.name),
            remap,
            program,
        });
    }
    Ok(out)
}

/// Six capital letters derived from the glyph set, as PDF asks of subset fonts.
fn subset_tag(name: &str, used: &BTreeMap<u16, String>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    for gid in used.keys() {
        h.update(gid.to_be_bytes());
    }
    h.finalize()
        .iter()
        .take(6)
        .map(|b| char::from(b'A' + b % 26))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_fonts_cover_kazakh_and_arabic() {
        let sources = load_sources(Path::new("."), &[]).expect("bundled");
        let faces = parse_faces(&sources).expect("parse");
        let plans = Plans::new();
        let low = low_glyphs(&faces);
        let fonts = Fonts::new(&sources, &faces, &plans, &low, ShapeMemo::default());
        let none: Vec<Vec<u16>> = Vec::new();
        let uncached = Fonts::new(&sources, &faces, &plans, &none, ShapeMemo::default());
        // The table agrees with the font's own cmap, below and above its limit.
        for c in ('\0'..='\u{900}').chain("😀ﻻ€".chars()) {
            for font in 0..faces.len() {
                assert_eq!(fonts.glyph(font, c), uncached.glyph(font, c), "{c:?}");
            }
        }
        for c in "әғқңөұүһіӘҒҚҢӨҰҮҺІ".chars() {
            assert_eq!(fonts.font_for(c, REGULAR), Some(REGULAR), "{c}");
            assert_eq!(fonts.font_for(c, BOLD), Some(BOLD), "{c}");
        }
        assert_eq!(fonts.font_for('ب', REGULAR), Some(ARABIC));
        assert_eq!(fonts.font_for('😀', REGULAR), None);
    }

    #[test]
    fn arabic_is_shaped_into_joining_forms() {
        let sources = load_sources(Path::new("."), &[]).expect("bundled");
        let faces = parse_faces(&sources).expect("parse");
        let plans = common_plans(&faces);
        let low = low_glyphs(&faces);
        let mut fonts = Fonts::new(&sources, &faces, &plans, &low, ShapeMemo::default());
        let (isolated, _) = fonts.shape(ARABIC, "ب", 10.0, true);
        let (joined, _) = fonts.shape(ARABIC, "ببب", 10.0, true);
        assert_eq!(joined.len(), 3);
        // Initial, medial and final forms differ from the isolated letter.
        assert!(joined.iter().all(|g| g.gid != isolated[0].gid));
        // Every glyph maps back to the letter for text extraction.
        assert!(joined.iter().all(|g| fonts.used[ARABIC][&g.gid] == "ب"));
    }

    #[test]
    fn missing_fallback_is_a_clear_error() {
        let e = load_sources(Path::new("/nonexistent"), &["x.ttf".into()]).expect_err("missing");
        assert!(e.to_string().contains("x.ttf"), "{e}");
    }
}
