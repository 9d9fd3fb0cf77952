//! herald-preview: the link-preview image of a statement (1200×630 PNG, as
//! OpenGraph and Twitter cards show it): the issuing organizations, the title
//! and the date, set in the fonts herald's PDFs bundle (Noto Serif for Latin,
//! Cyrillic and Kazakh; Noto Naskh Arabic).
//!
//! A card is an SVG document laid out here (lines broken by the fonts' own
//! advance widths), shaped and rasterized by resvg (usvg + rustybuzz +
//! tiny-skia), and written as an 8-bit RGB PNG at a fast deflate level. The
//! font database is loaded once per [`Renderer`] and shared by every render
//! (`Renderer` is `Sync`). Same card, same style, same bytes: nothing reads
//! the clock, the system fonts or any randomness.

use std::sync::Arc;

use resvg::tiny_skia;
use resvg::usvg::{self, fontdb};

/// The image's size in pixels (the size OpenGraph and X recommend).
pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 630;

/// Changes whenever the drawing changes, so old images are not kept as current.
const LAYOUT_VERSION: u64 = 1;

const SERIF: &[u8] = include_bytes!("../../pdf/fonts/NotoSerif-Regular.ttf");
const SERIF_BOLD: &[u8] = include_bytes!("../../pdf/fonts/NotoSerif-Bold.ttf");
const NASKH: &[u8] = include_bytes!("../../pdf/fonts/NotoNaskhArabic-Regular.ttf");

const MARGIN: f32 = 80.0;
const LOGO_BOX: f32 = 112.0;
const TITLE_TOP: f32 = 200.0;
const TITLE_BOTTOM: f32 = 500.0;
/// Title sizes tried in turn until the title fits in its box.
const TITLE_SIZES: [f32; 5] = [68.0, 60.0, 52.0, 46.0, 40.0];
const LINE_HEIGHT: f32 = 1.22;
const SMALL: f32 = 30.0;

/// Colours and logo of every card.
#[derive(Debug, Clone)]
pub struct Style {
    pub background: [u8; 3],
    pub text: [u8; 3],
    pub accent: [u8; 3],
    pub logo: Option<Logo>,
}

/// A logo file's bytes: drawn in the top right corner, scaled into a square.
#[derive(Debug, Clone)]
pub enum Logo {
    Svg(Vec<u8>),
    Png(Vec<u8>),
}

/// What one card shows. Texts are as readers of `lang` write them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Card<'a> {
    /// BCP 47 language of the texts.
    pub lang: &'a str,
    /// The issuing organizations (or the site's organization), one line.
    pub organization: &'a str,
    pub title: &'a str,
    /// The date as text, with the place if any: "30 July 2014 · Astana".
    pub date: &'a str,
    /// Right to left (Arabic, Persian, Hebrew...).
    pub rtl: bool,
}

impl<'a> Card<'a> {
    /// `org` as the organization line when the card has none.
    pub fn with_default_org(mut self, org: &'a str) -> Card<'a> {
        if self.organization.trim().is_empty() {
            self.organization = org;
        }
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(
        "the preview logo is not a usable {kind} file: {detail}; give an SVG or PNG logo in [site.preview] logo"
    )]
    Logo { kind: &'static str, detail: String },
    #[error("preview image of {title:?}: {detail}")]
    Render { title: String, detail: String },
}

enum LogoImage {
    Svg(Box<usvg::Tree>),
    Png(tiny_skia::Pixmap),
}

/// Draws cards. Build one per run; render from any number of threads.
pub struct Renderer {
    fontdb: Arc<fontdb::Database>,
    regular: ttf_parser::Face<'static>,
    bold: ttf_parser::Face<'static>,
    naskh: ttf_parser::Face<'static>,
    style: Style,
    logo: Option<LogoImage>,
    /// Digest of the style and logo, part of every card's key.
    style_key: u64,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("style", &self.style)
            .finish_non_exhaustive()
    }
}

fn face(data: &'static [u8]) -> ttf_parser::Face<'static> {
    // The bundled fonts are parsed by herald-pdf's tests too; a broken one is a
    // build defect, not an input error.
    #[allow(clippy::expect_used)]
    ttf_parser::Face::parse(data, 0).expect("bundled font parses")
}

fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// Text for SVG character data and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters never reach a statement; be safe in XML anyway.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

impl Renderer {
    pub fn new(style: Style) -> Result<Renderer, PreviewError> {
        let mut db = fontdb::Database::new();
        for data in [SERIF, SERIF_BOLD, NASKH] {
            db.load_font_source(fontdb::Source::Binary(Arc::new(data)));
        }
        let logo = match &style.logo {
            None => None,
            Some(Logo::Svg(bytes)) => {
                let opt = usvg::Options {
                    fontdb: Arc::new(db.clone()),
                    ..usvg::Options::default()
                };
                let tree = usvg::Tree::from_data(bytes, &opt).map_err(|e| PreviewError::Logo {
                    kind: "SVG",
                    detail: e.to_string(),
                })?;
                Some(LogoImage::Svg(Box::new(tree)))
            }
            Some(Logo::Png(bytes)) => {
                let pixmap =
                    tiny_skia::Pixmap::decode_png(bytes).map_err(|e| PreviewError::Logo {
                        kind: "PNG",
                        detail: e.to_string(),
                    })?;
                Some(LogoImage::Png(pixmap))
            }
        };
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&LAYOUT_VERSION.to_le_bytes());
        h.update(&style.background);
        h.update(&style.text);
        h.update(&style.accent);
        match &style.logo {
            None => h.update(b"-"),
            Some(Logo::Svg(b)) => {
                h.update(b"svg");
                h.update(b);
            }
            Some(Logo::Png(b)) => {
                h.update(b"png");
                h.update(b);
            }
        }
        Ok(Renderer {
            fontdb: Arc::new(db),
            regular: face(SERIF),
            bold: face(SERIF_BOLD),
            naskh: face(NASKH),
            style_key: h.digest(),
            style,
            logo,
        })
    }

    /// A digest of everything the card's image depends on: equal keys, equal
    /// bytes. The pipeline names the file by it, so an unchanged card is kept.
    pub fn key(&self, card: &Card<'_>) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&self.style_key.to_le_bytes());
        for part in [card.lang, card.organization, card.title, card.date] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update(&[u8::from(card.rtl)]);
        h.digest()
    }

    /// Width of `text` at `size` px in `face`, Arabic letters measured in Naskh.
    fn width(&self, face: &ttf_parser::Face<'_>, text: &str, size: f32) -> f32 {
        let mut units = 0.0f32;
        for c in text.chars() {
            let (f, g) = match face.glyph_index(c) {
                Some(g) => (face, g),
                None => match self.naskh.glyph_index(c) {
                    Some(g) => (&self.naskh, g),
                    None => (face, ttf_parser::GlyphId(0)),
                },
            };
            let adv = f32::from(f.glyph_hor_advance(g).unwrap_or(0));
            units += adv / f32::from(f.units_per_em()) * f32::from(face.units_per_em());
        }
        units * size / f32::from(face.units_per_em())
    }

    /// Break `text` into lines no wider than `max` (at spaces; a word wider than
    /// a line is cut). `None` when more than `lines` lines are needed.
    fn wrap(
        &self,
        face: &ttf_parser::Face<'_>,
        text: &str,
        size: f32,
        max: f32,
        lines: usize,
    ) -> Option<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut line = String::new();
        for word in text.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if self.width(face, &candidate, size) <= max {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                out.push(std::mem::take(&mut line));
            }
            // A word longer than a line: cut it where it overflows.
            let mut rest = word.to_string();
            while self.width(face, &rest, size) > max {
                let mut cut = String::new();
                for c in rest.chars() {
                    cut.push(c);
                    if self.width(face, &cut, size) > max {
                        cut.pop();
                        break;
                    }
                }
                if cut.is_empty() {
                    return None;
                }
                rest = rest[cut.len()..].to_string();
                out.push(cut);
            }
            line = rest;
        }
        if !line.is_empty() {
            out.push(line);
        }
        (out.len() <= lines).then_some(out)
    }

    /// One line: `text`, cut with an ellipsis where it would pass `max`.
    fn one_line(&self, face: &ttf_parser::Face<'_>, text: &str, size: f32, max: f32) -> String {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if self.width(face, &text, size) <= max {
            return text;
        }
        let mut out = String::new();
        for c in text.chars() {
            out.push(c);
            if self.width(face, &format!("{out}…"), size) > max {
                out.pop();
                break;
            }
        }
        format!("{}…", out.trim_end())
    }

    /// The title's lines and size: the largest size at which it fits; at the
    /// smallest, cut with an ellipsis.
    fn title_lines(&self, title: &str, max: f32) -> (Vec<String>, f32) {
        for size in TITLE_SIZES {
            let lines = ((TITLE_BOTTOM - TITLE_TOP) / (size * LINE_HEIGHT)).floor() as usize;
            if let Some(l) = self.wrap(&self.bold, title, size, max, lines.max(1)) {
                return (l, size);
            }
        }
        let size = TITLE_SIZES[TITLE_SIZES.len() - 1];
        let lines = (((TITLE_BOTTOM - TITLE_TOP) / (size * LINE_HEIGHT)).floor() as usize).max(1);
        let mut out = self
            .wrap(&self.bold, title, size, max, usize::MAX)
            .unwrap_or_default();
        out.truncate(lines);
        if let Some(last) = out.last_mut() {
            *last = self.one_line(&self.bold, &format!("{last} …"), size, max);
            if !last.ends_with('…') {
                last.push('…');
            }
        }
        (out, size)
    }

    /// The card as an SVG document.
    pub fn svg(&self, card: &Card<'_>) -> String {
        let w = WIDTH as f32;
        let h = HEIGHT as f32;
        let text_width = w - 2.0 * MARGIN;
        let org_width = if self.logo.is_some() {
            text_width - LOGO_BOX - 24.0
        } else {
            text_width
        };
        let (x, anchor, dir) = if card.rtl {
            (w - MARGIN, "end", "rtl")
        } else {
            (MARGIN, "start", "ltr")
        };
        let org = self.one_line(&self.regular, card.organization, SMALL, org_width);
        let date = self.one_line(&self.regular, card.date, SMALL, text_width);
        let (lines, size) = self.title_lines(card.title, text_width);
        let bg = hex(self.style.background);
        let fg = hex(self.style.text);
        let accent = hex(self.style.accent);
        let family = "Noto Serif, Noto Naskh Arabic";
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\">\
<rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"{bg}\"/>\
<rect x=\"{MARGIN}\" y=\"{top}\" width=\"96\" height=\"6\" fill=\"{accent}\"{rtl_rule}/>",
            top = 150.0,
            rtl_rule = if card.rtl {
                format!(" transform=\"translate({} 0)\"", w - 2.0 * MARGIN - 96.0)
            } else {
                String::new()
            },
        );
        let lang = xml_escape(card.lang);
        svg.push_str(&format!(
            "<text x=\"{x}\" y=\"{y}\" font-family=\"{family}\" font-size=\"{SMALL}\" fill=\"{accent}\" text-anchor=\"{anchor}\" direction=\"{dir}\" xml:lang=\"{lang}\">{}</text>",
            xml_escape(&org),
            y = MARGIN + SMALL,
        ));
        // The title's block is centred vertically in its box.
        let block = lines.len() as f32 * size * LINE_HEIGHT;
        let first = TITLE_TOP + ((TITLE_BOTTOM - TITLE_TOP) - block) / 2.0 + size;
        for (i, line) in lines.iter().enumerate() {
            svg.push_str(&format!(
                "<text x=\"{x}\" y=\"{y:.1}\" font-family=\"{family}\" font-weight=\"700\" font-size=\"{size}\" fill=\"{fg}\" text-anchor=\"{anchor}\" direction=\"{dir}\" xml:lang=\"{lang}\">{}</text>",
                xml_escape(line),
                y = first + i as f32 * size * LINE_HEIGHT,
            ));
        }
        svg.push_str(&format!(
            "<text x=\"{x}\" y=\"{y}\" font-family=\"{family}\" font-size=\"{SMALL}\" fill=\"{accent}\" text-anchor=\"{anchor}\" direction=\"{dir}\" xml:lang=\"{lang}\">{}</text></svg>",
            xml_escape(&date),
            y = h - MARGIN + 8.0,
        ));
        svg
    }

    /// The card's pixels (opaque, premultiplied RGBA).
    pub fn pixmap(&self, card: &Card<'_>) -> Result<tiny_skia::Pixmap, PreviewError> {
        let err = |detail: String| PreviewError::Render {
            title: card.title.to_string(),
            detail,
        };
        let opt = usvg::Options {
            fontdb: Arc::clone(&self.fontdb),
            font_family: "Noto Serif".into(),
            languages: vec![card.lang.to_string()],
            ..usvg::Options::default()
        };
        let tree = usvg::Tree::from_str(&self.svg(card), &opt).map_err(|e| err(e.to_string()))?;
        let mut pixmap =
            tiny_skia::Pixmap::new(WIDTH, HEIGHT).ok_or_else(|| err("no pixmap".into()))?;
        resvg::render(
            &tree,
            tiny_skia::Transform::identity(),
            &mut pixmap.as_mut(),
        );
        if let Some(logo) = &self.logo {
            self.draw_logo(logo, card.rtl, &mut pixmap);
        }
        Ok(pixmap)
    }

    fn draw_logo(&self, logo: &LogoImage, rtl: bool, pixmap: &mut tiny_skia::Pixmap) {
        let (lw, lh) = match logo {
            LogoImage::Svg(t) => (t.size().width(), t.size().height()),
            LogoImage::Png(p) => (p.width() as f32, p.height() as f32),
        };
        if lw <= 0.0 || lh <= 0.0 {
            return;
        }
        let scale = (LOGO_BOX / lw).min(LOGO_BOX / lh);
        let (dw, dh) = (lw * scale, lh * scale);
        // Top right (top left for right-to-left cards), centred in its box.
        let bx = if rtl {
            MARGIN
        } else {
            WIDTH as f32 - MARGIN - LOGO_BOX
        };
        let x = bx + (LOGO_BOX - dw) / 2.0;
        let y = MARGIN - 24.0 + (LOGO_BOX - dh) / 2.0;
        let t = tiny_skia::Transform::from_row(scale, 0.0, 0.0, scale, x, y);
        match logo {
            LogoImage::Svg(tree) => resvg::render(tree, t, &mut pixmap.as_mut()),
            LogoImage::Png(p) => pixmap.draw_pixmap(
                0,
                0,
                p.as_ref(),
                &tiny_skia::PixmapPaint {
                    quality: tiny_skia::FilterQuality::Bicubic,
                    ..tiny_skia::PixmapPaint::default()
                },
                t,
                None,
            ),
        }
    }

    /// The card as PNG bytes.
    pub fn render(&self, card: &Card<'_>) -> Result<Vec<u8>, PreviewError> {
        let pixmap = self.pixmap(card)?;
        encode(&pixmap).map_err(|detail| PreviewError::Render {
            title: card.title.to_string(),
            detail,
        })
    }
}

/// An opaque pixmap as an 8-bit RGB PNG, fast deflate. The background is opaque,
/// so premultiplied and straight colour are the same.
fn encode(pixmap: &tiny_skia::Pixmap) -> Result<Vec<u8>, String> {
    let mut rgb = Vec::with_capacity((WIDTH * HEIGHT * 3) as usize);
    for px in pixmap.data().chunks_exact(4) {
        rgb.extend_from_slice(&px[..3]);
    }
    let mut out = Vec::with_capacity(64 * 1024);
    let mut enc = png::Encoder::new(&mut out, pixmap.width(), pixmap.height());
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests;
