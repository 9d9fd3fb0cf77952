//! The fuzz harness: what one fuzz input does, shared by the cargo-fuzz targets
//! (`fuzz/`, nightly) and the regression tests that replay their findings on stable.
//!
//! An input is one statement file with its path in front: the first line is the
//! path below `content/statements/` (e.g. `2014/world-day.en.md`), the rest is the
//! file's bytes. Both harnesses panic on any broken promise, so a fuzzer reports it
//! as a crash and a test as a failure.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use herald::channels::Settings;
use herald_content::html::{HtmlOptions, to_html};
use herald_content::{Config, Corpus, FeedKind, MemorySink, Statement, urls};

/// The project configuration every input is checked and rendered under: the
/// three languages the sample content uses, a sender for mail, a subscribe form.
pub const HERALD_TOML: &str = r#"title = "Fuzz — Official Statements"
base_url = "https://statements.example.org/"
languages = ["en", "ru", "kk"]
default_language = "en"
time_zone = "Asia/Almaty"

[organization]
name = "United Nations Country Team in Kazakhstan"
short_name = "UN Kazakhstan"
email = "press@statements.example.org"
url = "https://statements.example.org/"
address = "Astana, Kazakhstan"

[serve]
public_url = "https://statements.example.org/"
"#;

/// An input split into the statement's path (below `statements/`) and its bytes.
pub fn split_input(data: &[u8]) -> (String, &[u8]) {
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    (
        String::from_utf8_lossy(first)
            .trim_end_matches('\r')
            .to_string(),
        rest,
    )
}

/// The path as a relative path that stays inside `statements/`, if it is one.
fn contained(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !path.contains('\0')
        && p.components().count() <= 4
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then(|| p.to_path_buf())
}

fn config() -> Config {
    Config::parse(Path::new("content/herald.toml"), HERALD_TOML).expect("the fuzz herald.toml")
}

/// Parse one statement file as `herald check` does (front matter, validation,
/// Markdown), then use the document every way the channels do. Promises: no
/// panic; a refusal has at least one diagnostic, each pointing inside the file;
/// an accepted statement's tree renders to HTML and text.
pub fn parse(data: &[u8]) {
    thread_local!(static CONFIG: Config = config());
    let (path, bytes) = split_input(data);
    let rel = PathBuf::from(&path);
    let shown = Path::new("content/statements").join(&rel);
    let result = CONFIG.with(|c| herald_content::statement::parse_file(c, &rel, &shown, bytes));
    match result {
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty(), "refused without a diagnostic");
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
            for d in &diagnostics {
                assert!(
                    d.line <= lines,
                    "diagnostic {} points at line {} of a {lines}-line file",
                    d.code,
                    d.line
                );
                assert!(
                    (d.line == 0) == (d.column == 0),
                    "diagnostic {} has line {} but column {}",
                    d.code,
                    d.line,
                    d.column
                );
                assert!(!d.to_string().is_empty());
            }
        }
        Ok(s) => {
            let doc = s.document();
            let _ = doc.plain_text();
            let _ = doc.headings();
            let _ = doc.word_count();
            let _ = to_html(
                doc,
                &HtmlOptions {
                    base_url: Some("https://statements.example.org/"),
                    page_url: Some("https://statements.example.org/en/2024/x/"),
                },
            );
        }
    }
}

/// What [`render`] did with an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    /// The path is not a file below `statements/`: nothing to check.
    Skipped,
    /// `herald check` refused it (with this message).
    Refused(String),
    /// Checked and rendered by every channel; the number of files and messages made.
    Published(usize),
}

/// A project folder reused by every input of this thread.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let content = dir.path().join("content");
        fs::create_dir_all(&content).expect("mkdir content");
        fs::write(content.join("herald.toml"), HERALD_TOML).expect("write herald.toml");
        Project { dir }
    }
}

/// The contract of `herald check`: if it accepts the statement, every channel
/// renders it (PDF, feeds, site, mail bulletin, correction and digest), and what
/// they make is well-formed (XML feeds, JSON Feed, PDF, pages and mail without
/// control characters, one header of each kind). Panics where that fails.
pub fn render(data: &[u8]) -> Rendered {
    thread_local!(static PROJECT: RefCell<Option<Project>> = const { RefCell::new(None) });
    let (path, bytes) = split_input(data);
    let Some(rel) = contained(&path) else {
        return Rendered::Skipped;
    };
    PROJECT.with(|p| {
        let mut p = p.borrow_mut();
        let project = p.get_or_insert_with(Project::new);
        let root = project.dir.path();
        let statements = root.join("content/statements");
        if statements.exists() {
            fs::remove_dir_all(&statements).expect("clear statements");
        }
        let file = statements.join(&rel);
        // A name the file system refuses (too long, say) is no statement anyone has.
        let written = fs::create_dir_all(file.parent().expect("a parent"))
            .and_then(|()| fs::write(&file, bytes));
        if written.is_err() {
            return Rendered::Skipped;
        }
        match herald::check(root) {
            Err(e) => {
                assert_eq!(
                    e.exit_code(),
                    herald::exit::INVALID,
                    "check refused a statement without a content diagnostic: {e}"
                );
                Rendered::Refused(e.to_string())
            }
            Ok(corpus) => Rendered::Published(publish_all(&corpus)),
        }
    })
}

/// Render every statement of `corpus` through every channel, as a publish at a
/// moment when all of them are due would. Returns the number of outputs made.
fn publish_all(corpus: &Corpus) -> usize {
    let settings = Settings::load(corpus).expect("check accepted settings that do not load");
    // Drafts and embargoes decide *when*, not *whether*: render as if due.
    let mut corpus = corpus.clone();
    for s in &mut corpus.statements {
        s.meta.draft = false;
    }
    let now: DateTime<Utc> = corpus
        .statements
        .iter()
        .map(|s| s.meta.publish_at.max(s.meta.date).with_timezone(&Utc))
        .max()
        .unwrap_or_default()
        + Duration::seconds(1);
    let due: Vec<&Statement> = corpus.statements.iter().collect();
    let mut made = 0;

    // PDF. A failed render is reported after the other channels have run, so
    // one channel's known failure does not hide another's.
    let renderer = herald_pdf::Renderer::new(&corpus.config, &settings.pdf)
        .unwrap_or_else(|e| panic!("check accepted, the PDF renderer failed: {e}"));
    let mut pdf_sizes = herald_content::fast::HashMap::default();
    let mut pdf_failure = None;
    for s in &due {
        match renderer.render(&corpus.config, s) {
            Ok(bytes) => {
                lopdf::Document::load_mem(&bytes)
                    .unwrap_or_else(|e| panic!("the PDF does not load: {e}"));
                pdf_sizes.insert(urls::pdf(s), bytes.len() as u64);
                made += 1;
            }
            Err(e) => pdf_failure = Some(e.to_string()),
        }
    }

    // Feeds.
    let entries = due
        .iter()
        .map(|s| herald_feed::FeedEntry {
            statement: s,
            tag: herald_feed::tag_uri(&settings.authority, now, &s.id, &s.lang),
            first_published: now,
            pdf_length: pdf_sizes.get(&urls::pdf(s)).copied(),
        })
        .collect();
    let input = herald_feed::FeedInput {
        settings: None,
        corpus: &corpus,
        now,
        entries,
    };
    let sink = MemorySink::default();
    herald_feed::render(&input, &sink)
        .unwrap_or_else(|e| panic!("check accepted, the feed channel failed: {e}"));
    let files = sink.into_files();
    made += files.len();
    for (path, bytes) in &files {
        if path.ends_with(".json") {
            serde_json::from_slice::<serde_json::Value>(bytes)
                .unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
        } else if path.ends_with(".xml") || path.ends_with(".xsl") {
            well_formed_xml(path, bytes);
        }
    }

    // Site.
    let form = herald_site::SubscribeForm {
        action: "/subscribe".into(),
        languages: corpus.config.languages.clone(),
        topics: due.iter().flat_map(|s| s.meta.topics.clone()).collect(),
    };
    let input = herald_site::SiteInput {
        settings: None,
        corpus: &corpus,
        published: &due,
        pdfs: herald_site::PdfLinks::Sizes(&pdf_sizes),
        feeds: &FeedKind::ALL,
        subscribe: Some(&form),
        integrity: Default::default(),
        previews: None,
    };
    let sink = MemorySink::default();
    herald_site::render(&input, &sink)
        .unwrap_or_else(|e| panic!("check accepted, the site channel failed: {e}"));
    let files = sink.into_files();
    made += files.len();
    for (path, bytes) in &files {
        if path.ends_with(".html") {
            let text =
                std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{path} is not UTF-8: {e}"));
            no_controls(path, text, &['\t', '\n', '\x0c', '\r']);
        } else if path.ends_with(".xml") {
            well_formed_xml(path, bytes);
        }
    }

    // Mail: the bulletin, its correction and a digest, each to one subscriber.
    let mut mail = settings.mail.clone();
    mail.pdf_links = settings.pdf.enabled;
    let secret = herald_mail::Secret::from_bytes(&[7; 32]).expect("a secret");
    let composer = herald_mail::Composer::new(&corpus, &mail, &secret)
        .unwrap_or_else(|e| panic!("check accepted, the mail composer failed: {e}"));
    let to = herald_mail::compose::Recipient {
        bulletin_id: 0,
        subscriber_id: 1,
        token_key: 1,
        address: "desk@example.org",
        name: "Desk",
    };
    let mut prepared = Vec::new();
    for s in &due {
        for p in [composer.prepare(s), composer.prepare_correction(s)] {
            prepared.push(
                p.unwrap_or_else(|e| panic!("check accepted, the mail bulletin failed: {e}")),
            );
        }
    }
    let mut by_lang: BTreeMap<&str, Vec<&Statement>> = BTreeMap::new();
    for s in &due {
        by_lang.entry(s.lang.as_str()).or_default().push(s);
    }
    for (lang, list) in &by_lang {
        prepared.push(
            composer
                .prepare_digest("fuzz-digest", lang, list)
                .unwrap_or_else(|e| panic!("check accepted, the mail digest failed: {e}")),
        );
    }
    for p in &prepared {
        let message_id = herald_mail::compose::message_id(
            &p.statement_id,
            "v1",
            to.subscriber_id,
            "statements.example.org",
        );
        let composed = composer
            .compose(p, to, &message_id, now)
            .unwrap_or_else(|e| panic!("check accepted, mail composition failed: {e}"));
        one_header_each(&composed.bytes);
        made += 1;
    }
    if let Some(e) = pdf_failure {
        panic!("check accepted, the PDF channel failed: {e}");
    }
    made
}

/// XML 1.0 characters only, and every element closed.
fn well_formed_xml(path: &str, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{path} is not UTF-8: {e}"));
    if let Some(c) = text.chars().find(|&c| {
        !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    }) {
        panic!("{path} holds {c:?} (U+{:04X}), not allowed in XML", c as u32);
    }
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!(
                "{path} is not well-formed XML at byte {}: {e}",
                reader.buffer_position()
            ),
        }
    }
}

/// No control character but those in `allowed`.
fn no_controls(path: &str, text: &str, allowed: &[char]) {
    if let Some((i, c)) = text
        .char_indices()
        .find(|(_, c)| c.is_control() && !allowed.contains(c))
    {
        panic!(
            "{path} holds the control character U+{:04X} at byte {i}",
            c as u32
        );
    }
}

/// A message's header has exactly one of each field a statement's text reaches
/// (a field smuggled in through a title would make two), and no bare CR or LF.
fn one_header_each(message: &[u8]) {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a message has a header");
    let header = &message[..end + 2];
    for (i, &b) in header.iter().enumerate() {
        let crlf = (b == b'\r' && header.get(i + 1) == Some(&b'\n'))
            || (b == b'\n' && i > 0 && header[i - 1] == b'\r');
        assert!(
            !(b == b'\r' || b == b'\n') || crlf,
            "a bare CR or LF in the message header at byte {i}"
        );
    }
    let text = String::from_utf8_lossy(header);
    for name in [
        "From",
        "To",
        "Subject",
        "Message-ID",
        "Date",
        "List-Unsubscribe",
    ] {
        let n = text
            .split("\r\n")
            .filter(|line| {
                line.split_once(':')
                    .is_some_and(|(k, _)| k.eq_ignore_ascii_case(name))
            })
            .count();
        assert_eq!(n, 1, "the message header has {n} {name} fields");
    }
    assert!(
        mail_parser::MessageParser::default()
            .parse(message)
            .is_some(),
        "the message does not parse"
    );
}
