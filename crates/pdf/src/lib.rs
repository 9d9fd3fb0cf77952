//! herald-pdf: one PDF per statement and language.
//!
//! A small layout engine over herald-content's document tree (Knuth–Plass line
//! breaking with hyphenation, keeps against widows, orphans and lonely headings),
//! text shaped with rustybuzz in bundled Noto fonts plus a configurable fallback
//! chain, written with lopdf as a tagged PDF/A-2b file with subset fonts. The same
//! input always gives the same bytes: nothing reads the clock or draws randomness.
//!
//! ```no_run
//! # fn demo(corpus: &herald_content::Corpus) -> Result<(), herald_pdf::PdfError> {
//! let settings = herald_pdf::PdfSettings::from_config(&corpus.config)?;
//! let renderer = herald_pdf::Renderer::new(&corpus.config, &settings)?;
//! for statement in &corpus.statements {
//!     let bytes = renderer.render(&corpus.config, statement)?;
//!     // write `bytes` to herald_content::urls::pdf(statement)
//! #   let _ = bytes;
//! }
//! # Ok(()) }
//! ```

mod coverage;
mod fonts;
mod layout;
pub mod sign;
mod text;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use coverage::FontChain;
use herald_content::{Config, Diagnostic, Statement};
use hyphenation::{Language, Load, Standard};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Paper sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Paper {
    /// 210 × 297 mm.
    #[default]
    A4,
    /// 8.5 × 11 in.
    Letter,
}

/// `[pdf]` in herald.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PdfSettings {
    /// Render PDFs (default true). When false, pages and feeds link no PDF.
    pub enabled: bool,
    /// `"a4"` (default) or `"letter"`.
    pub paper: Paper,
    /// Body text size in points (6 to 24; default 10.5).
    pub font_size: f32,
    /// Font files tried, in order, for characters the bundled fonts lack
    /// (relative to the folder of herald.toml).
    pub fonts: Vec<PathBuf>,
    /// Hyphenate where patterns exist for the language (default true).
    pub hyphenate: bool,
    /// `[pdf.signing]`: sign every PDF (PAdES) with this key and certificate.
    pub signing: Option<sign::SigningSettings>,
}

impl Default for PdfSettings {
    fn default() -> Self {
        PdfSettings {
            enabled: true,
            paper: Paper::A4,
            font_size: 10.5,
            fonts: Vec::new(),
            hyphenate: true,
            signing: None,
        }
    }
}

impl PdfSettings {
    /// Read and check `[pdf]`.
    pub fn from_config(config: &Config) -> Result<Self, PdfError> {
        let s: PdfSettings = config
            .section("pdf")
            .map_err(|d| PdfError::Settings(Box::new(d)))?;
        if !(6.0..=24.0).contains(&s.font_size) {
            return Err(PdfError::FontSize(s.font_size));
        }
        Ok(s)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("{0}")]
    Settings(Box<Diagnostic>),
    #[error("[pdf] font_size = {0} is out of range: use 6 to 24 points")]
    FontSize(f32),
    #[error("font {}: {reason}", path.display())]
    Font { path: PathBuf, reason: String },
    #[error(
        "no font has a glyph for {character:?} (U+{:04X}): add a font that has it to `fonts` under [pdf] in herald.toml",
        u32::from(*character)
    )]
    MissingGlyph { character: char },
    #[error("hyphenation patterns for {lang:?} cannot be loaded: {reason}")]
    Hyphenation { lang: String, reason: String },
    #[error("{}: {source}", path.display())]
    Statement {
        path: PathBuf,
        #[source]
        source: Box<PdfError>,
    },
    #[error("cannot write the PDF: {0}")]
    Pdf(#[from] lopdf::Error),
    #[error("[pdf.signing] {0}")]
    Signing(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Hyphenation patterns for a language code, where the `hyphenation` crate has them.
fn patterns(lang: &str) -> Option<Language> {
    Some(match lang {
        "en-GB" => Language::EnglishGB,
        _ => match lang.split('-').next().unwrap_or(lang) {
            "en" => Language::EnglishUS,
            "ru" => Language::Russian,
            "uk" => Language::Ukrainian,
            "de" => Language::German1996,
            "fr" => Language::French,
            "es" => Language::Spanish,
            "it" => Language::Italian,
            "pt" => Language::Portuguese,
            "pl" => Language::Polish,
            _ => return None,
        },
    })
}

/// Parsed fonts and hyphenation patterns, made once and shared: `Sync`, so the
/// pipeline can render statements in parallel.
pub struct Renderer {
    sources: Vec<fonts::FontSource>,
    faces: Vec<rustybuzz::Face<'static>>,
    plans: fonts::Plans,
    low_glyphs: Vec<Vec<u16>>,
    hyphenators: HashMap<String, Standard>,
    settings: PdfSettings,
    signer: Option<sign::Signer>,
    /// One memo per render running at once, taken for a render and given back.
    memos: Mutex<Vec<Memo>>,
}

/// What a render learns that does not depend on the statement: text shaped in a
/// font and size, and dictionary breaks per language. Words recur across statements,
/// so reusing it saves most of the shaping and hyphenation; the output is the same
/// bytes either way.
#[derive(Default)]
struct Memo {
    shaped: fonts::ShapeMemo,
    /// Language -> letters -> break offsets.
    breaks: text::FastMap<String, text::FastMap<String, Vec<usize>>>,
}

/// A memo holding more words than this is emptied before its next render, so
/// memory stays flat however many statements one process renders.
const MEMO_WORDS: usize = 50_000;

impl Memo {
    fn words(&self) -> usize {
        self.shaped.values().map(|m| m.len()).sum::<usize>()
            + self.breaks.values().map(|m| m.len()).sum::<usize>()
    }
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field(
                "fonts",
                &self.sources.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .field("hyphenation", &self.hyphenators.keys().collect::<Vec<_>>())
            .field("settings", &self.settings)
            .finish()
    }
}

impl Renderer {
    /// Load the fallback fonts named in `settings` and the hyphenation patterns of
    /// the languages in `config`.
    pub fn new(config: &Config, settings: &PdfSettings) -> Result<Self, PdfError> {
        let base = config.path.parent().unwrap_or(Path::new("."));
        let sources = fonts::load_sources(base, &settings.fonts)?;
        let mut hyphenators = HashMap::new();
        if settings.hyphenate {
            for lang in &config.languages {
                if let Some(language) = patterns(lang) {
                    let dict =
                        Standard::from_embedded(language).map_err(|e| PdfError::Hyphenation {
                            lang: lang.clone(),
                            reason: e.to_string(),
                        })?;
                    hyphenators.insert(lang.clone(), dict);
                }
            }
        }
        let faces = fonts::parse_faces(&sources)?;
        let signer = match &settings.signing {
            Some(s) => Some(sign::Signer::load(base, s)?),
            None => None,
        };
        Ok(Renderer {
            signer,
            plans: fonts::common_plans(&faces),
            low_glyphs: fonts::low_glyphs(&faces),
            faces,
            sources,
            hyphenators,
            settings: settings.clone(),
            memos: Mutex::new(Vec::new()),
        })
    }

    /// The signer of `[pdf.signing]`, when set.
    pub fn signer(&self) -> Option<&sign::Signer> {
        self.signer.as_ref()
    }

    /// The PDF of one statement in its language.
    pub fn render(&self, config: &Config, statement: &Statement) -> Result<Vec<u8>, PdfError> {
        // A memo is out of the pool while it is used, so a render that panics
        // loses its memo but never leaves a half-updated one behind.
        let taken = self.memos.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut memo = taken
            .filter(|m| m.words() <= MEMO_WORDS)
            .unwrap_or_default();
        let result = self.render_inner(config, statement, &mut memo);
        self.memos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(memo);
        result.map_err(|e| PdfError::Statement {
            path: statement.path.clone(),
            source: Box::new(e),
        })
    }

    fn render_inner(
        &self,
        config: &Config,
        statement: &Statement,
        memo: &mut Memo,
    ) -> Result<Vec<u8>, PdfError> {
        let document = statement.document();
        let (width, height) = match self.settings.paper {
            Paper::A4 => (595.276, 841.89),
            Paper::Letter => (612.0, 792.0),
        };
        let job = layout::Job {
            config,
            statement,
            document,
            geometry: layout::Geometry {
                width,
                height,
                left: 68.0,
                right: 68.0,
                top: 72.0,
                bottom: 72.0,
            },
            size: self.settings.font_size,
        };
        let mut fonts = fonts::Fonts::new(
            &self.sources,
            &self.faces,
            &self.plans,
            &self.low_glyphs,
            std::mem::take(&mut memo.shaped),
        );
        let hyphenator = self.hyphenators.get(&statement.lang);
        let breaks = memo.breaks.entry(statement.lang.clone()).or_default();
        let laid = layout::lay_out(&job, &mut fonts, hyphenator, breaks)
            .and_then(|mut laid| layout::chrome(&job, &mut fonts, &mut laid).map(|()| laid));
        memo.shaped = std::mem::take(&mut fonts.shaped);
        let mut laid = laid?;
        let embedded = fonts::embed(&fonts)?;
        let meta = &statement.meta;
        let mut h = Sha256::new();
        for part in [
            statement.digest.as_str(),
            statement.lang.as_str(),
            config.source(),
            &format!("{:?}", self.settings),
            env!("CARGO_PKG_VERSION"),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&h.finalize()[..16]);
        let info = write::Info {
            title: &meta.title,
            author: if meta.issuers.is_empty() {
                config.organization.name.clone()
            } else {
                meta.issuers.join("; ")
            },
            subject: &meta.summary,
            keywords: meta.topics.join(", "),
            lang: &statement.lang,
            created: meta.date,
            modified: statement.modified(),
            id,
            // The version's publication: the embargo's end, or the correction.
            signature: self.signer.as_ref().map(|s| {
                let published = meta
                    .updated
                    .map_or(meta.publish_at, |u| u.max(meta.publish_at));
                (s, published)
            }),
        };
        write::write(&job, &fonts, &embedded, &mut laid, &info)
    }
}

/// Render one statement with a fresh [`Renderer`]. To render many, make one
/// `Renderer` and reuse it.
pub fn render(
    config: &Config,
    statement: &Statement,
    settings: &PdfSettings,
) -> Result<Vec<u8>, PdfError> {
    Renderer::new(config, settings)?.render(config, statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let src = format!(
            "title = \"T\"\nbase_url = \"https://ex.org/\"\nlanguages = [\"en\"]\ndefault_language = \"en\"\ntime_zone = \"UTC\"\n[organization]\nname = \"Org\"\n{extra}"
        );
        Config::parse(Path::new("content/herald.toml"), &src).expect("config")
    }

    #[test]
    fn settings_default_and_parse() {
        assert_eq!(
            PdfSettings::from_config(&config("")).expect("ok"),
            PdfSettings::default()
        );
        let s = PdfSettings::from_config(&config("[pdf]\npaper = \"letter\"\nfont_size = 11\n"))
            .expect("ok");
        assert_eq!(s.paper, Paper::Letter);
        assert_eq!(s.font_size, 11.0);
    }

    #[test]
    fn bad_settings_are_errors() {
        let e =
            PdfSettings::from_config(&config("[pdf]\npaper = \"a5\"\n")).expect_err("bad paper");
        assert!(e.to_string().contains("a5"), "{e}");
        let e = PdfSettings::from_config(&config("[pdf]\ncolour = 1\n")).expect_err("unknown key");
        assert!(e.to_string().contains("colour"), "{e}");
        let e = PdfSettings::from_config(&config("[pdf]\nfont_size = 100\n")).expect_err("size");
        assert!(e.to_string().contains("100"), "{e}");
    }

    #[test]
    fn renderer_is_sync() {
        fn sync<T: Sync + Send>() {}
        sync::<Renderer>();
    }
}
