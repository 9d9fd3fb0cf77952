//! Real PDFs checked with real tools: poppler (pdftotext, pdffonts, pdfinfo) and qpdf,
//! and read back with lopdf. `.ci/setup-pdf.sh` installs the tools.

mod support;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::qpdf_check;

use herald_content::{Corpus, Statement};
use herald_pdf::{PdfSettings, Renderer};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn samples() -> Corpus {
    herald_content::load(&workspace()).expect("sample content loads")
}

fn render(corpus: &Corpus, s: &Statement) -> Vec<u8> {
    let settings = PdfSettings::from_config(&corpus.config).expect("settings");
    Renderer::new(&corpus.config, &settings)
        .expect("renderer")
        .render(&corpus.config, s)
        .expect("render")
}

/// Run a tool on the PDF, return stdout (asserting success).
fn tool(bytes: &[u8], program: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.pdf");
    std::fs::write(&path, bytes).expect("write");
    let out = Command::new(program)
        .args(args)
        .arg(&path)
        .args(if program == "pdftotext" {
            &["-"][..]
        } else {
            &[][..]
        })
        .output()
        .unwrap_or_else(|e| panic!("{program} not installed (run .ci/setup-pdf.sh): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Letters and digits only, lowercased: extraction differs from the source in
/// spacing, hyphens at line ends and punctuation spacing, not in words.
fn letters(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Every word of the body appears in the extracted text, in order.
fn assert_words_in_order(source: &str, extracted: &str) {
    let hay = letters(extracted);
    let mut at = 0;
    for word in source.split_whitespace() {
        let w = letters(word);
        if w.is_empty() {
            continue;
        }
        match hay[at..].find(&w) {
            Some(i) => at += i + w.len(),
            None => {
                let next: String = hay[at..].chars().take(120).collect();
                panic!(
                    "word {word:?} missing or out of order; next comes {next:?} in:\n{extracted}"
                )
            }
        }
    }
}

fn statement<'a>(corpus: &'a Corpus, id: &str, lang: &str) -> &'a Statement {
    corpus.get(id, lang).expect("sample statement")
}

#[test]
fn sample_text_extracts_in_order_in_every_language() {
    let corpus = samples();
    for lang in ["en", "ru", "kk"] {
        let s = statement(&corpus, "2014/world-day-against-trafficking", lang);
        let pdf = render(&corpus, s);
        let text = tool(&pdf, "pdftotext", &["-enc", "UTF-8"]);
        assert_words_in_order(&s.meta.title, &text);
        assert_words_in_order(&s.document().plain_text(), &text);
    }
}

#[test]
fn kazakh_letters_survive_extraction() {
    let corpus = samples();
    let s = statement(&corpus, "2014/world-day-against-trafficking", "kk");
    let text = tool(&render(&corpus, s), "pdftotext", &["-enc", "UTF-8"]);
    for c in "әғқңөұүһі".chars() {
        assert!(text.contains(c), "{c} missing from:\n{text}");
    }
}

#[test]
fn fonts_are_embedded_and_subset() {
    let corpus = samples();
    let s = statement(&corpus, "2014/world-day-against-trafficking", "ru");
    let out = tool(&render(&corpus, s), "pdffonts", &[]);
    let rows: Vec<&str> = out.lines().skip(2).collect();
    assert!(rows.len() >= 3, "regular, bold and italic expected:\n{out}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        // name type encoding emb sub uni object ID
        assert!(
            cols[0].len() > 7 && cols[0].as_bytes()[6] == b'+',
            "subset tag: {row}"
        );
        let n = cols.len();
        assert_eq!(
            &cols[n - 5..n - 2],
            &["yes", "yes", "yes"],
            "emb sub uni: {row}"
        );
    }
}

#[test]
fn qpdf_finds_nothing_wrong() {
    let corpus = samples();
    for s in &corpus.statements {
        qpdf_check(&render(&corpus, s), &s.id);
    }
}

#[test]
fn pdfinfo_shows_title_pages_and_tagging() {
    let corpus = samples();
    let s = statement(&corpus, "2014/world-day-against-trafficking", "kk");
    let info = tool(&render(&corpus, s), "pdfinfo", &["-enc", "UTF-8"]);
    let field = |k: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("{k} missing in:\n{info}"))
    };
    assert_eq!(field("Title:"), s.meta.title);
    assert_eq!(field("Author:"), s.meta.issuers.join("; "));
    assert_eq!(field("Keywords:"), s.meta.topics.join(", "));
    assert_eq!(field("Tagged:"), "yes");
    assert_eq!(field("Pages:"), "1");
    assert!(field("CreationDate:").contains("2014"), "{info}");
}

#[test]
fn same_input_same_bytes() {
    let corpus = samples();
    let s = statement(&corpus, "2014/world-day-against-trafficking", "en");
    let a = render(&corpus, s);
    let b = render(&corpus, s);
    assert!(a == b, "two renders differ");
    let other = render(
        &corpus,
        statement(&corpus, "2014/world-day-against-trafficking", "ru"),
    );
    assert!(a != other);
}

/// A renderer remembers shaped words between renders: what one statement leaves
/// behind must not change another's bytes, in whatever order they come.
#[test]
fn a_reused_renderer_gives_each_statement_its_own_bytes() {
    let corpus = samples();
    let fresh: Vec<Vec<u8>> = corpus
        .statements
        .iter()
        .map(|s| render(&corpus, s))
        .collect();
    let settings = PdfSettings::from_config(&corpus.config).expect("settings");
    let shared = Renderer::new(&corpus.config, &settings).expect("renderer");
    let order: Vec<usize> = (0..corpus.statements.len())
        .chain((0..corpus.statements.len()).rev())
        .collect();
    for i in order {
        let s = &corpus.statements[i];
        let again = shared.render(&corpus.config, s).expect("render");
        assert!(
            again == fresh[i],
            "{} differs after other renders",
            s.path.display()
        );
    }
}

#[test]
fn xmp_and_output_intent_read_back() {
    let corpus = samples();
    let s = statement(&corpus, "2014/world-day-against-trafficking", "ru");
    let pdf = render(&corpus, s);
    let doc = lopdf::Document::load_mem(&pdf).expect("lopdf parses it");
    let catalog = doc.catalog().expect("catalog");
    // XMP: well-formed packet with the PDF/A-2b claim and the title.
    let meta_ref = catalog
        .get(b"Metadata")
        .and_then(|o| o.as_reference())
        .expect("Metadata");
    let stream = doc
        .get_object(meta_ref)
        .and_then(|o| o.as_stream())
        .expect("stream");
    assert_eq!(
        stream
            .dict
            .get(b"Subtype")
            .and_then(|o| o.as_name())
            .expect("subtype"),
        b"XML"
    );
    let xmp = String::from_utf8(stream.content.clone()).expect("utf-8 XMP");
    assert!(xmp.starts_with("<?xpacket begin="), "{xmp}");
    let fields = xmp_fields(&xmp);
    let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(field("pdfaid:part"), Some("2"));
    assert_eq!(field("pdfaid:conformance"), Some("B"));
    assert_eq!(field("xmp:CreateDate"), Some("2014-07-30T09:00:00+06:00"));
    assert_eq!(
        field("pdf:Keywords"),
        Some("trafficking, migration, human-rights")
    );
    assert!(xmp.contains(&s.meta.title), "{xmp}");
    assert!(xmp.contains("2014-07-30T09:00:00+06:00"), "{xmp}");
    // Output intent: GTS_PDFA1 with an RGB ICC profile.
    let intents = catalog
        .get(b"OutputIntents")
        .and_then(|o| o.as_array())
        .expect("OutputIntents");
    assert_eq!(intents.len(), 1);
    let intent = intents[0].as_dict().expect("intent dict");
    assert_eq!(
        intent.get(b"S").and_then(|o| o.as_name()).expect("S"),
        b"GTS_PDFA1"
    );
    let icc_ref = intent
        .get(b"DestOutputProfile")
        .and_then(|o| o.as_reference())
        .expect("profile");
    let icc = doc
        .get_object(icc_ref)
        .and_then(|o| o.as_stream())
        .expect("icc stream");
    assert_eq!(icc.dict.get(b"N").and_then(|o| o.as_i64()).expect("N"), 3);
    let profile = icc.decompressed_content().expect("inflate");
    assert_eq!(&profile[36..40], b"acsp", "ICC signature");
    assert_eq!(&profile[16..20], b"RGB ", "RGB colour space");
    // Tagged: MarkInfo, a structure tree, the language.
    assert!(catalog.get(b"StructTreeRoot").is_ok());
    assert_eq!(
        catalog.get(b"Lang").and_then(|o| o.as_str()).expect("Lang"),
        b"ru"
    );
}

/// Parse the XMP with a real XML parser (end tags are checked); returns
/// (element, text) pairs.
fn xmp_fields(xml: &str) -> Vec<(String, String)> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut out = Vec::new();
    loop {
        match reader.read_event().expect("well-formed XMP") {
            Event::Start(e) => stack.push(e.name().as_ref().to_string()),
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => {
                let text = t.xml10_content();
                match (text.trim(), stack.last()) {
                    ("", _) | (_, None) => {}
                    (text, Some(top)) => out.push((top.clone(), text.to_string())),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    out
}

/// Write a corpus of our own to a temporary folder.
fn corpus_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Corpus) {
    let dir = tempfile::tempdir().expect("tempdir");
    let content = dir.path().join("content");
    std::fs::create_dir_all(content.join("statements/2020")).expect("mkdir");
    std::fs::write(
        content.join("herald.toml"),
        "title = \"T\"\nbase_url = \"https://ex.org/\"\nlanguages = [\"en\", \"ar\"]\ndefault_language = \"en\"\ntime_zone = \"UTC\"\n[organization]\nname = \"United Nations Country Team\"\nshort_name = \"UNCT\"\n",
    )
    .expect("config");
    for (name, text) in files {
        std::fs::write(content.join("statements/2020").join(name), text).expect("statement");
    }
    let corpus = herald_content::load(dir.path()).expect("corpus loads");
    (dir, corpus)
}

const ARABIC: &str = "+++
title = \"بيان مشترك بمناسبة اليوم العالمي لمكافحة الاتجار بالأشخاص\"
date = 2020-07-30T09:00:00+06:00
issuers = [\"فريق الأمم المتحدة القطري\"]
+++
يحتفل العالم اليوم باليوم العالمي لمكافحة الاتجار بالأشخاص. نحن ندعو جميع الشركاء إلى العمل معا من أجل حماية الضحايا.

## الوقاية والحماية

لا يمكن لأي منظمة أن توقف الاتجار بالبشر وحدها. نجدد اليوم التزامنا بالعمل المشترك.
";

#[test]
fn arabic_is_shaped_and_extracts_in_order() {
    let (_dir, corpus) = corpus_with(&[("arabic.ar.md", ARABIC)]);
    let s = &corpus.statements[0];
    let pdf = render(&corpus, s);
    let text = tool(&pdf, "pdftotext", &["-enc", "UTF-8"]);
    assert_words_in_order(&s.meta.title, &text);
    assert_words_in_order(&s.document().plain_text(), &text);
    let fonts = tool(&pdf, "pdffonts", &[]);
    assert!(fonts.contains("NotoNaskhArabic"), "{fonts}");
}

/// A statement that tries hard to break the layout.
fn long_statement() -> String {
    let mut md = String::from(
        "+++\ntitle = \"A very long statement that goes on and on to test the page layout of herald\"\ndate = 2020-01-01T00:00:00+00:00\nissuers = [\"One\", \"Two\"]\nplace = \"Astana\"\n+++\n",
    );
    let words = [
        "international",
        "cooperation",
        "against",
        "trafficking",
        "requires",
        "sustained",
        "commitment",
        "from",
        "governments",
        "employers",
        "and",
        "communities",
        "alike",
        "to",
        "protect",
        "the",
        "rights",
        "of",
        "migrants",
    ];
    md.push_str("Supercalifragilisticexpialidocious");
    md.push_str(&"x".repeat(300));
    md.push_str(" is a very long word.\n\n");
    for section in 0..12 {
        md.push_str(&format!("## Section {section}\n\n"));
        for p in 0..4 {
            let para: Vec<&str> = (0..90)
                .map(|i| words[(i * 7 + p + section) % words.len()])
                .collect();
            md.push_str(&para.join(" "));
            md.push_str(" [a link](https://example.org/a/very/long/path).[^n]\n\n");
        }
        md.push_str("- first item of a list\n- second item, **bold**, *italic*\n  1. nested numbered\n\n> A quotation that is indented and has a bar beside it.\n\n");
    }
    md.push_str("| Column one | Column two | Column three | Column four | Column five | Column six |\n|---|---|---|---|---|---|\n");
    for r in 0..5 {
        md.push_str(&format!(
            "| row {r} | {} | value | another value | yet another longer value in this cell | {} |\n",
            "wide".repeat(40),
            "end of the row"
        ));
    }
    md.push('\n');
    let huge: Vec<&str> = (0..2000).map(|i| words[i % words.len()]).collect();
    md.push_str(&huge.join(" "));
    md.push_str("\n\n[^n]: A footnote, shown at the end.\n");
    md
}

#[test]
fn long_statement_stays_inside_the_margins() {
    let md = long_statement();
    let (_dir, corpus) = corpus_with(&[("long.en.md", &md)]);
    let s = &corpus.statements[0];
    let pdf = render(&corpus, s);
    let info = tool(&pdf, "pdfinfo", &[]);
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("pages");
    assert!(pages >= 15, "{pages} pages");
    // Every word box inside the page, minus a small margin (header and footer sit
    // in the page margins, but never past 36 pt from the edge).
    let bbox = tool(&pdf, "pdftotext", &["-bbox"]);
    let attr = |tag: &str, key: &str| -> f32 {
        let pat = format!("{key}=\"");
        let i = tag.find(&pat).expect("attribute") + pat.len();
        tag[i..]
            .split('"')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("number")
    };
    let mut words = 0;
    let mut page_w = 0.0;
    let mut page_h = 0.0;
    for line in bbox.lines() {
        let line = line.trim();
        if line.starts_with("<page") {
            page_w = attr(line, "width");
            page_h = attr(line, "height");
        } else if line.starts_with("<word") {
            words += 1;
            let (x0, y0, x1, y1) = (
                attr(line, "xMin"),
                attr(line, "yMin"),
                attr(line, "xMax"),
                attr(line, "yMax"),
            );
            assert!(
                x0 >= 67.0 && x1 <= page_w - 67.0,
                "outside left/right margins: {line}"
            );
            assert!(
                y0 >= 36.0 && y1 <= page_h - 36.0,
                "outside top/bottom: {line}"
            );
        }
    }
    assert!(words > 6000, "{words} words");
    // Content-stream order: the wide table's columns confuse poppler's layout analysis.
    let text = tool(&pdf, "pdftotext", &["-enc", "UTF-8", "-raw"]);
    assert!(text.contains(&format!("Page {pages} of {pages}")), "footer");
    // Running headers and footers are artifacts between the body's words: drop them.
    let body: String = text
        .lines()
        .filter(|l| !(l.starts_with("UNCT ") || (l.starts_with("Page ") && l.contains(" of "))))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("UNCT ")).count(),
        pages - 1,
        "a header from page 2 on"
    );
    assert_words_in_order(&s.document().plain_text(), &body);
    qpdf_check(&pdf, "long");
}

#[test]
fn a_missing_glyph_is_a_clear_error() {
    let md = "+++\ntitle = \"Emoji\"\ndate = 2020-01-01T00:00:00+00:00\n+++\nA smile 😀 here.\n";
    let (_dir, corpus) = corpus_with(&[("emoji.en.md", md)]);
    let settings = PdfSettings::from_config(&corpus.config).expect("settings");
    let e = Renderer::new(&corpus.config, &settings)
        .expect("renderer")
        .render(&corpus.config, &corpus.statements[0])
        .expect_err("no font has the emoji");
    let msg = e.to_string();
    assert!(
        msg.contains("U+1F600") && msg.contains("emoji.en.md"),
        "{msg}"
    );
}
