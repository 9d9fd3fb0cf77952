//! One test per validation rule, each asserting the message, the position and the hint.

use std::fs;
use std::path::Path;

use herald_content::{Diagnostic, LoadError, load};

const CONFIG: &str = "title = \"T\"\nbase_url = \"https://ex.org/\"\nlanguages = [\"en\", \"ru\", \"kk\"]\n\
default_language = \"en\"\ntime_zone = \"Asia/Almaty\"\n[organization]\nname = \"Org\"\n";

const GOOD: &str = "+++\ntitle = \"A title\"\ndate = 2014-07-30T09:00:00+06:00\n+++\nBody text.\n";

fn project(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let content = dir.path().join("content");
    fs::create_dir_all(content.join("statements")).expect("mkdir");
    fs::write(content.join("herald.toml"), CONFIG).expect("config");
    for (rel, bytes) in files {
        let p = content.join("statements").join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, bytes).expect("write");
    }
    dir
}

fn problems(files: &[(&str, &[u8])]) -> Vec<Diagnostic> {
    let dir = project(files);
    match load(dir.path()) {
        Ok(c) => panic!(
            "expected problems, loaded {} statements",
            c.statements.len()
        ),
        Err(LoadError::Invalid(d)) => d.0,
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn only(files: &[(&str, &[u8])]) -> Diagnostic {
    let mut p = problems(files);
    assert_eq!(p.len(), 1, "expected exactly one problem: {p:#?}");
    p.remove(0)
}

fn with(front: &str, body: &str) -> Vec<u8> {
    format!("+++\n{front}+++\n{body}").into_bytes()
}

#[test]
fn valid_file_loads() {
    let dir = project(&[("2014/a.en.md", GOOD.as_bytes())]);
    let c = load(dir.path()).expect("valid");
    assert_eq!(c.statements[0].id, "2014/a");
    assert_eq!(c.statements[0].meta.summary, "Body text.");
}

#[test]
fn missing_front_matter() {
    let d = only(&[("2014/a.en.md", b"title = \"x\"\nBody\n")]);
    assert_eq!(d.code, "front-matter");
    assert_eq!(d.message, "the file does not start with `+++`");
    assert_eq!((d.line, d.column), (1, 1));
    assert_eq!(d.file, Path::new("content/statements/2014/a.en.md"));
}

#[test]
fn lone_cr_line_endings_are_named() {
    let text = GOOD.replace('\n', "\r");
    let d = only(&[("2014/a.en.md", text.as_bytes())]);
    assert_eq!(d.code, "line-endings");
    assert!(d.message.contains("lone CR"), "{}", d.message);
    assert!(d.hint.contains("LF (or CRLF)"), "{}", d.hint);
    assert_eq!((d.line, d.column), (1, 1));
    // CRLF files are fine.
    let dir = project(&[("2014/a.en.md", GOOD.replace('\n', "\r\n").as_bytes())]);
    assert_eq!(load(dir.path()).expect("CRLF loads").statements.len(), 1);
}

#[test]
fn unclosed_front_matter() {
    let d = only(&[(
        "2014/a.en.md",
        b"+++\ntitle = \"x\"\ndate = 2014-07-30T09:00:00Z\nBody\n",
    )]);
    assert_eq!(d.message, "the front matter opened here is never closed");
    assert!(d.hint.contains("add a line `+++`"));
}

#[test]
fn toml_syntax_error_has_file_position() {
    let f = with(
        "title = \"A\"\ndate = 2014-07-30T09:00:00+06:00\nplace = Astana\n",
        "Body\n",
    );
    let d = only(&[("2014/a.en.md", &f)]);
    assert_eq!(d.code, "toml");
    assert!(
        d.message.starts_with("front matter is not valid TOML"),
        "{}",
        d.message
    );
    // `place` is on line 4 of the file (line 3 of the front matter).
    assert_eq!(d.line, 4);
    assert_eq!(d.column, 9);
    assert_eq!(d.snippet.as_deref(), Some("place = Astana"));
}

#[test]
fn missing_title() {
    let d = only(&[(
        "2014/a.en.md",
        &with("date = 2014-07-30T09:00:00+06:00\n", "Body\n"),
    )]);
    assert_eq!(d.code, "missing-title");
    assert_eq!(d.message, "the front matter has no `title`");
}

#[test]
fn empty_title() {
    let d = only(&[(
        "2014/a.en.md",
        &with(
            "title = \"  \"\ndate = 2014-07-30T09:00:00+06:00\n",
            "Body\n",
        ),
    )]);
    assert_eq!(d.message, "the title is empty");
    assert_eq!((d.line, d.column), (2, 9));
}

#[test]
fn missing_date() {
    let d = only(&[("2014/a.en.md", &with("title = \"A\"\n", "Body\n"))]);
    assert_eq!(d.code, "missing-date");
    assert_eq!(d.message, "the front matter has no `date`");
}

#[test]
fn date_without_offset() {
    let d = only(&[(
        "2014/a.en.md",
        &with("title = \"A\"\ndate = 2014-07-30T09:00:00\n", "Body\n"),
    )]);
    assert_eq!(d.code, "date-offset");
    assert_eq!(d.message, "`date` has no UTC offset: 2014-07-30T09:00:00");
    assert_eq!((d.line, d.column), (3, 8));
    assert!(d.hint.contains("2014-07-30T09:00:00+06:00"), "{}", d.hint);
}

#[test]
fn unknown_key_with_suggestion() {
    let d = only(&[(
        "2014/a.en.md",
        &with(
            "title = \"A\"\ndate = 2014-07-30T09:00:00Z\ntopic = [\"x\"]\n",
            "Body\n",
        ),
    )]);
    assert_eq!(d.code, "unknown-key");
    assert_eq!(d.message, "unknown key `topic` in the front matter");
    assert!(d.hint.starts_with("did you mean `topics`?"), "{}", d.hint);
    assert_eq!((d.line, d.column), (4, 1));
}

#[test]
fn language_not_configured() {
    let d = only(&[("2014/a.de.md", GOOD.as_bytes())]);
    assert_eq!(d.code, "language");
    assert_eq!(d.message, "language \"de\" is not listed in herald.toml");
    assert!(d.hint.contains("en, ru, kk"));
}

#[test]
fn duplicate_id_and_language() {
    let other = "+++\ntitle = \"B\"\ndate = 2014-08-01T09:00:00Z\nslug = \"a\"\n+++\nBody\n";
    let d = only(&[
        ("2014/a.en.md", GOOD.as_bytes()),
        ("2014/b.en.md", other.as_bytes()),
    ]);
    assert_eq!(d.code, "duplicate");
    assert!(d.message.starts_with("duplicate slug: content/statements/2014/a.en.md and content/statements/2014/b.en.md both publish en/2014/a/"), "{}", d.message);
}

#[test]
fn not_utf8() {
    let mut bytes = GOOD.as_bytes().to_vec();
    bytes.extend_from_slice(b"caf\xe9\n");
    let d = only(&[("2014/a.en.md", &bytes)]);
    assert_eq!(d.code, "not-utf8");
    assert_eq!(d.message, "the file is not UTF-8 (invalid byte 0xE9)");
    assert_eq!((d.line, d.column), (6, 4));
}

#[test]
fn control_character() {
    let f = with(
        "title = \"A\u{7}b\"\ndate = 2014-07-30T09:00:00Z\n",
        "Body\n",
    );
    let d = problems(&[("2014/a.en.md", &f)]);
    let c = d
        .iter()
        .find(|d| d.code == "control-char")
        .expect("reported");
    assert_eq!(c.message, "control character U+0007 in the text");
    assert_eq!((c.line, c.column), (2, 11));
}

#[test]
fn control_character_in_body() {
    let f = with(
        "title = \"A\"\ndate = 2014-07-30T09:00:00Z\n",
        "Body \u{1b}[31m red\n",
    );
    let d = only(&[("2014/a.en.md", &f)]);
    assert_eq!(d.message, "control character U+001B in the text");
    assert_eq!((d.line, d.column), (5, 6));
}

#[test]
fn bad_slug() {
    let d = only(&[("2014/World_Day.en.md", GOOD.as_bytes())]);
    assert_eq!(d.code, "slug");
    assert_eq!(
        d.message,
        "slug \"World_Day\" is not lowercase letters, digits and dashes"
    );
}

#[test]
fn empty_body() {
    let d = only(&[(
        "2014/a.en.md",
        &with("title = \"A\"\ndate = 2014-07-30T09:00:00Z\n", "\n  \n"),
    )]);
    assert_eq!(d.code, "empty-body");
    assert_eq!(d.message, "the statement has no body");
}

#[test]
fn every_problem_in_every_file_at_once() {
    let bad1 = with(
        "title = \"\"\ndate = 2014-07-30T09:00:00\ncolour = 1\n",
        "Body\n",
    );
    let bad2 = with("date = 2014-07-30T09:00:00Z\n", "");
    let d = problems(&[
        ("2014/a.en.md", &bad1),
        ("2014/b.en.md", &bad2),
        ("2014/c.en.md", GOOD.as_bytes()),
    ]);
    let codes: Vec<(&str, &str)> = d
        .iter()
        .map(|d| {
            (
                d.file.file_name().and_then(|f| f.to_str()).unwrap_or(""),
                d.code,
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("a.en.md", "empty-title"),
            ("a.en.md", "date-offset"),
            ("a.en.md", "unknown-key"),
            ("b.en.md", "missing-title"),
            ("b.en.md", "empty-body"),
        ]
    );
    let shown = herald_content::Diagnostics(d).to_string();
    assert!(shown.ends_with("5 problems in 2 files"), "{shown}");
}

#[test]
fn wrong_type() {
    let d = only(&[(
        "2014/a.en.md",
        &with("title = \"A\"\ndate = \"2014-07-30\"\n", "Body\n"),
    )]);
    assert_eq!(d.code, "type");
    assert_eq!(d.message, "`date` must be a date and time");
}

#[test]
fn year_folder_must_match_date() {
    let d = only(&[("2015/a.en.md", GOOD.as_bytes())]);
    assert_eq!(d.code, "year");
    assert!(d.hint.contains("statements/2014/"));
}

#[test]
fn rendered_diagnostic_names_file_line_and_hint() {
    let d = only(&[(
        "2014/a.en.md",
        &with("title = \"A\"\ndate = 2014-07-30T09:00:00\n", "Body\n"),
    )]);
    let s = d.to_string();
    assert!(s.contains("--> content/statements/2014/a.en.md:3:8"), "{s}");
    assert!(s.contains(" 3 | date = 2014-07-30T09:00:00"), "{s}");
    assert!(s.contains("= hint: add the offset"), "{s}");
}

fn first(front: &str, body: &str) -> Diagnostic {
    let f = with(
        &format!("title = \"T\"\ndate = 2014-07-30T09:00:00Z\n{front}"),
        body,
    );
    only(&[("2014/a.en.md", &f)])
}

#[test]
fn escaped_controls_in_single_line_fields() {
    for (front, at, named) in [
        ("place = \"P\\r\\nX\"\n", (4, 9), "U+000D"),
        ("occasion = \"A\\tB\"\n", (4, 12), "U+0009"),
        ("summary = \"\\u001b[31m\"\n", (4, 11), "U+001B"),
        ("issuers = [\"Org\", \"A\\u0085\"]\n", (4, 19), "U+0085"),
        ("topics = [\"a\\u0000\"]\n", (4, 11), "U+0000"),
        ("slug = \"a\\u2028b\"\n", (4, 8), "U+2028"),
        ("summary = \"\"\"\nA\nB\"\"\"\n", (4, 11), "U+000A"),
    ] {
        let d = first(front, "Body\n");
        assert_eq!(d.code, "control-char", "{front}");
        assert_eq!((d.line, d.column), at, "{front}");
        assert!(d.message.contains(named), "{front}: {}", d.message);
        assert!(d.hint.contains("one line"), "{}", d.hint);
    }
    let f = with(
        "title = \"A\\u0000B\"\ndate = 2014-07-30T09:00:00Z\n",
        "Body\n",
    );
    let d = only(&[("2014/a.en.md", &f)]);
    assert_eq!((d.code, d.line, d.column), ("control-char", 2, 9));
}

#[test]
fn field_lengths_and_counts() {
    let cases = [
        (
            format!("summary = \"{}\"\n", "s".repeat(1001)),
            "too-long",
            11,
        ),
        (format!("place = \"{}\"\n", "p".repeat(301)), "too-long", 9),
        (
            format!("occasion = \"{}\"\n", "o".repeat(301)),
            "too-long",
            12,
        ),
        (
            format!("issuers = [\"{}\"]\n", "i".repeat(301)),
            "too-long",
            12,
        ),
        (
            format!("topics = [\"{}\"]\n", "t".repeat(101)),
            "too-long",
            11,
        ),
        (format!("slug = \"{}\"\n", "s".repeat(101)), "too-long", 8),
        (
            format!("issuers = [{}]\n", vec!["\"O\""; 21].join(",")),
            "too-many",
            11,
        ),
        (
            format!("topics = [{}]\n", vec!["\"t\""; 21].join(",")),
            "too-many",
            10,
        ),
    ];
    for (front, code, col) in cases {
        let d = first(&front, "Body\n");
        assert_eq!((d.code, d.line, d.column), (code, 4, col), "{front}");
        assert!(d.hint.contains("docs/content.md"), "{}", d.hint);
    }
    // At the limit is fine.
    let f = with(
        &format!(
            "title = \"{}\"\ndate = 2014-07-30T09:00:00Z\ntopics = [{}]\n",
            "t".repeat(300),
            vec!["\"t\""; 20].join(",")
        ),
        "Body\n",
    );
    let dir = project(&[("2014/a.en.md", &f)]);
    load(dir.path()).expect("at the limits");
    let d = only(&[(
        "2014/a.en.md",
        &with(
            &format!(
                "title = \"{}\"\ndate = 2014-07-30T09:00:00Z\n",
                "t".repeat(301)
            ),
            "Body\n",
        ),
    )]);
    assert_eq!(
        d.message,
        "`title` is 301 characters long; the limit is 300"
    );
}

#[test]
fn file_size_is_reported_where_the_limit_is_passed() {
    let line = "word ".repeat(19) + "\n";
    let body = line.repeat(20_000);
    let f = with("title = \"T\"\ndate = 2014-07-30T09:00:00Z\n", &body);
    assert!(f.len() > herald_content::limits::FILE_BYTES);
    let d = only(&[("2014/a.en.md", &f)]);
    assert_eq!(d.code, "file-size");
    let head = &f[..herald_content::limits::FILE_BYTES];
    let line = head.iter().filter(|b| **b == b'\n').count() + 1;
    assert_eq!(d.line, line);
    assert!(d.column > 0);
}

#[test]
fn deep_nesting_is_a_diagnostic() {
    let d = first("", &format!("{}x\n", "> ".repeat(2_000)));
    assert_eq!((d.code, d.line, d.column), ("nesting", 5, 33));
    let d = first("", &format!("{}x\n", "- ".repeat(100_000)));
    assert_eq!((d.code, d.line, d.column), ("nesting", 5, 33));
}

#[test]
fn a_file_of_thousands_of_problems_reports_the_first_hundred() {
    let keys: String = (0..5_000).map(|i| format!("unknown{i} = 1\n")).collect();
    let p = problems(&[(
        "2014/a.en.md",
        &with(
            &format!("title = \"T\"\ndate = 2014-07-30T09:00:00Z\n{keys}"),
            "Body\n",
        ),
    )]);
    assert_eq!(p.len(), 101);
    assert!(
        p.iter()
            .any(|d| d.code == "more" && d.message.starts_with("4900 more"))
    );
}
