//! The PDF channel's content rule: every character it draws has a glyph in the font
//! chain. herald's `check` runs it on every statement (and on the configured
//! languages), so a render never discovers a missing glyph.

use std::path::Path;

use herald_content::{Config, Statement};
use rustybuzz::Face;

use crate::fonts::{self, LOW};
use crate::text::{HARD_BREAK, is_ignorable, is_space, substitute};
use crate::{PdfError, PdfSettings};
use herald_content::l10n as i18n;

/// The configured font chain (bundled faces, then `[pdf] fonts`), for coverage only:
/// cheap to make (no shaping plans, no hyphenation patterns).
pub struct FontChain {
    faces: Vec<Face<'static>>,
    /// Per face, the glyph of each character below [`LOW`] (0: none).
    low_glyphs: Vec<Vec<u16>>,
}

impl std::fmt::Debug for FontChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FontChain")
            .field("faces", &self.faces.len())
            .finish()
    }
}

/// Characters of one script, enough to tell whether a font chain covers it. Languages
/// not listed are written in a script herald cannot name; their statements are still
/// checked character by character.
fn exemplar(lang: &str) -> &'static str {
    match lang.split('-').next().unwrap_or(lang) {
        "ru" | "uk" | "be" | "bg" | "sr" | "mk" | "ky" | "tg" | "mn" => {
            "абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
        }
        "kk" => "абвгдежзийклмнопрстуфхцчшщъыьэюяәғқңөұүһіӘҒҚҢӨҰҮҺІ",
        "ar" | "fa" | "ur" | "ps" => "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
        "he" | "yi" => "אבגדהוזחטיכלמנסעפצקרשת",
        "el" => "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔ",
        "hy" => "աբգդեզէըթժիլխծկհձղճմյնշոչպջռսվտրցւփքօֆ",
        "ka" => "აბგდევზთიკლმნოპჟრსტუფქღყშჩცძწჭხჯჰ",
        "hi" | "mr" | "ne" | "sa" => "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशषसह",
        "bn" => "অআইঈউঊএঐওঔকখগঘঙচছজঝঞটঠডঢণতথদধনপফবভমযরলশষসহ",
        "ta" => "அஆஇஈஉஊஎஏஐஒஓஔகஙசஞடணதநபமயரலவழளறன",
        "th" => "กขคงจฉชซญดตถทนบปผพฟมยรลวศษสหอฮ",
        "am" | "ti" => "ሀለሐመሠረሰሸቀበተቸኀነኘአከኸወዐዘዠየደጀገጠጨጰጸፀፈፐ",
        "zh" | "ja" => "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
        "ko" => "가나다라마바사아자차카타파하한국어",
        _ => "",
    }
}

impl FontChain {
    /// Load the chain `settings` names (paths relative to the folder of herald.toml).
    pub fn new(config: &Config, settings: &PdfSettings) -> Result<Self, PdfError> {
        let base = config.path.parent().unwrap_or(Path::new("."));
        let sources = fonts::load_sources(base, &settings.fonts)?;
        let faces = fonts::parse_faces(&sources)?;
        Ok(FontChain {
            low_glyphs: fonts::low_glyphs(&faces),
            faces,
        })
    }

    fn has_glyph(&self, c: char) -> bool {
        if (c as u32) < LOW {
            self.low_glyphs.iter().any(|t| t[c as usize] != 0)
        } else {
            self.faces.iter().any(|f| f.glyph_index(c).is_some())
        }
    }

    /// Whether `c` can be drawn where text is shaped as it stands (the running header).
    fn drawable(&self, c: char) -> bool {
        is_ignorable(c) || self.has_glyph(c) || substitute(c).is_some_and(|s| self.has_glyph(s))
    }

    /// Whether `c` can be drawn in a paragraph, where spaces become glue.
    fn drawable_in_text(&self, c: char) -> bool {
        is_space(c) || c == HARD_BREAK || self.drawable(c)
    }

    /// Every character of `statement` the PDF would draw and no font of the chain has,
    /// each once, in order of first appearance: title, place, occasion, issuers, body.
    /// Empty when the statement renders.
    pub fn uncovered(&self, config: &Config, statement: &Statement) -> Vec<char> {
        let mut out: Vec<char> = Vec::new();
        let mut push = |c: char| {
            if !out.contains(&c) {
                out.push(c);
            }
        };
        let org = &config.organization;
        // The title and the organization's short name are also shaped whole in the header.
        for text in [statement.meta.title.as_str(), org.short()] {
            text.chars()
                .filter(|&c| !self.drawable(c))
                .for_each(&mut push);
        }
        let meta = &statement.meta;
        let fields = [org.name.as_str()]
            .into_iter()
            .chain(meta.place.as_deref())
            .chain(meta.occasion.as_deref())
            .chain(meta.issuers.iter().map(String::as_str));
        for text in fields {
            text.chars()
                .filter(|&c| !self.drawable_in_text(c))
                .for_each(&mut push);
        }
        // Every character drawn from the body is in its source, unless a character
        // reference (`&#x1F600;`) wrote it: only then is the body parsed again.
        let body = statement.body();
        let raw_ok = body.chars().all(|c| self.drawable_in_text(c));
        if !raw_ok || body.contains('&') {
            statement
                .document()
                .plain_text()
                .chars()
                .filter(|&c| !self.drawable_in_text(c))
                .for_each(&mut push);
        }
        out
    }

    /// Characters of `lang`'s script, and of the words the PDF itself writes in
    /// `lang` (dates, "Page X of Y", "Notes"), that no font of the chain has.
    pub fn uncovered_language(&self, lang: &str) -> Vec<char> {
        let d =
            chrono::DateTime::parse_from_rfc3339("2014-09-30T09:00:00+06:00").unwrap_or_default();
        let mut own = String::from(exemplar(lang));
        for month in 1..=12 {
            if let Some(d) = chrono::Datelike::with_month(&d, month) {
                own.push_str(&i18n::long_date(lang, &d));
            }
        }
        own.push_str(&i18n::page_of(lang, 1, 2));
        own.push_str(i18n::notes(lang));
        own.push_str(i18n::updated(lang));
        let mut out: Vec<char> = Vec::new();
        for c in own.chars().filter(|&c| !self.drawable_in_text(c)) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use herald_content::statement::parse_file;

    use super::FontChain;
    use crate::{PdfSettings, Renderer};

    fn config(langs: &str) -> herald_content::Config {
        let src = format!(
            "title = \"T\"\nbase_url = \"https://ex.org/\"\nlanguages = [{langs}]\ndefault_language = \"en\"\ntime_zone = \"UTC\"\n[organization]\nname = \"Org\"\n"
        );
        herald_content::Config::parse(Path::new("content/herald.toml"), &src).expect("config")
    }

    fn statement(config: &herald_content::Config, text: &str) -> herald_content::Statement {
        parse_file(
            config,
            Path::new("2014/a.en.md"),
            Path::new("content/statements/2014/a.en.md"),
            text.as_bytes(),
        )
        .expect("valid statement")
    }

    #[test]
    fn uncovered_characters_are_found_where_the_pdf_draws_them() {
        let config = config("\"en\"");
        let r = FontChain::new(&config, &PdfSettings::default()).expect("fonts");
        let fm =
            "+++\ntitle = \"Title 😀\"\ndate = 2014-07-30T09:00:00Z\nplace = \"Astana ✈\"\n+++\n";
        let s = statement(
            &config,
            &format!("{fm}Body 🙂 and 😀, «Жаңа» عربي \u{200f}.\n"),
        );
        assert_eq!(r.uncovered(&config, &s), vec!['😀', '✈', '🙂']);
        // A character reference is found too; spaces of every kind are not glyphs.
        let s = statement(&config, &format!("{fm}x &#x1F680; \u{2003}\u{1680} y\n"));
        assert_eq!(r.uncovered(&config, &s), vec!['😀', '✈', '🚀']);
        let clean =
            "+++\ntitle = \"T − 1\"\ndate = 2014-07-30T09:00:00Z\n+++\nText &amp; more\u{ad}.\n";
        assert!(r.uncovered(&config, &statement(&config, clean)).is_empty());
    }

    #[test]
    fn what_uncovered_accepts_renders() {
        let config = config("\"en\"");
        let r = FontChain::new(&config, &PdfSettings::default()).expect("fonts");
        let text = "+++\ntitle = \"A\u{2003}title \u{2212} \u{200e}x\u{fe0f}\"\ndate = 2014-07-30T09:00:00Z\n+++\nBody\u{2009}x \u{1680} y \u{202b}عربي\u{202c}.\n";
        let s = statement(&config, text);
        assert!(r.uncovered(&config, &s).is_empty());
        let renderer = Renderer::new(&config, &PdfSettings::default()).expect("renderer");
        renderer.render(&config, &s).expect("renders");
    }

    #[test]
    fn languages_of_bundled_scripts_are_covered_and_others_named() {
        let config = config("\"en\", \"ru\", \"kk\", \"ar\", \"zh\"");
        let r = FontChain::new(&config, &PdfSettings::default()).expect("fonts");
        for lang in ["en", "ru", "kk", "uk", "fr", "es", "de", "ar"] {
            assert!(r.uncovered_language(lang).is_empty(), "{lang}");
        }
        let zh = r.uncovered_language("zh");
        assert!(zh.contains(&'的'), "{zh:?}");
    }
}
