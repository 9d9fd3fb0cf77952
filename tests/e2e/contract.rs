//! The gate's contract as a property: a statement built at random from a grammar of
//! front matter and Markdown (odd Unicode, TOML escapes, deep nesting, long words,
//! CR/LF mixes, NUL, BOM) either fails `check` with a `file:line:col` diagnostic, or
//! passes it and then publishes through every channel. Never both passing `check`
//! and failing `publish`; never a signal or exit 1 from either.
//!
//! `PROPTEST_CASES` raises the case count (default 32, kept small for debug builds).

use std::fs;
use std::process::Output;

use herald_e2e::{add_desk_subscriber, herald, snapshot};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");
/// After every generated date (2027..2029) and after the subscriber's consent.
const NOW: &str = "2030-01-01T00:00:00Z";
const FILE: &str = "content/statements/2029/contract.en.md";

/// Cases that passed `check` and published, and cases `check` refused.
static PUBLISHED: AtomicUsize = AtomicUsize::new(0);
static REFUSED: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------- text

/// Characters chosen for trouble: emoji and ZWJ sequences, RTL and bidi controls,
/// combining marks, BOM, C1 controls, separators, private use, noncharacters.
const SPECIAL: &[&str] = &[
    "\u{1F600}",
    "\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467}",
    "\u{1F1F0}\u{1F1FF}",
    "مرحبا بالعالم",
    "שלום",
    "\u{202E}abc\u{202C}",
    "\u{200F}",
    "e\u{301}\u{302}\u{303}\u{304}",
    "\u{300}",
    "\u{FEFF}",
    "\u{85}",
    "\u{2028}",
    "\u{2029}",
    "\u{0}",
    "\t",
    "\r\n",
    "\r",
    "\n",
    "\u{1B}[31m",
    "\u{7F}",
    "Қазақстан",
    "Привет",
    "中文字符",
    "日本語",
    "한국어",
    "हिन्दी",
    "ไทย",
    "\u{E000}",
    "\u{FFFF}",
    "\u{10FFFF}",
    "\u{AD}",
    "\u{200B}",
    "\u{A0}",
    "\u{3000}",
    "\u{FFFD}",
    "&amp;",
    "&#0;",
    "<b>",
    "\"",
    "\\",
    "'",
    "ﬁ",
    "İ",
    "ß",
    "ǅ",
];

/// Text without trouble a real statement would not carry: Latin, Cyrillic, Kazakh.
const MILD: &[&str] = &[
    "Қазақстан",
    "Привет",
    "—",
    "«ок»",
    "é",
    "ü",
    "№ 5",
    "50 %",
    "&",
    "<",
    ">",
    "\"",
    "'",
    "*",
    "_",
    "\u{A0}",
    "\u{AD}",
    "\u{200B}",
    "e\u{301}",
];

/// Scripts and marks the bundled fonts cover, or that need no glyph.
const COVERED: &[&str] = &[
    "Ελληνικά",
    "مرحبا بالعالم",
    "e\u{301}\u{302}",
    "\u{200F}",
    "\u{200E}",
    "\u{200D}",
    "\u{FE0F}",
    "ﬁ",
    "ß",
    "İ",
    "Ǆ",
    "½",
    "€",
    "‰",
    "…",
    "“",
    "”",
    "\u{2009}",
    "\u{202F}",
];

/// A piece of text: at level 0 only what a careful editor writes, at level 1 long
/// words too, at level 2 anything.
fn piece(level: u8) -> BoxedStrategy<String> {
    let mild = prop_oneof![
        6 => "[a-zA-Z]{1,10}",
        3 => Just(" ".to_string()),
        1 => prop::sample::select(MILD).prop_map(str::to_string),
    ];
    match level {
        0 => mild.boxed(),
        1 => prop_oneof![
            8 => mild,
            1 => (1usize..200).prop_map(|n| "w".repeat(n)),
            1 => prop::sample::select(COVERED).prop_map(str::to_string),
        ]
        .boxed(),
        _ => piece_hostile().boxed(),
    }
}

fn piece_hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z]{1,10}",
        3 => Just(" ".to_string()),
        3 => prop::sample::select(SPECIAL).prop_map(str::to_string),
        2 => any::<char>().prop_map(String::from),
        1 => (1usize..3000).prop_map(|n| "w".repeat(n)),
        1 => (1usize..300).prop_map(|n| "\u{1F600}".repeat(n)),
    ]
}

fn text(level: u8, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(piece(level), 0..max).prop_map(|v| v.concat())
}

/// `s` as a TOML string in one of several spellings: raw basic string (controls
/// left raw), basic with controls escaped, basic with everything non-ASCII escaped,
/// literal, or multi-line basic.
fn toml_string(s: &str, style: u8) -> String {
    let style = style % 5;
    let mut out = String::new();
    match style {
        3 => return format!("'{s}'"),
        4 => return format!("\"\"\"{}\"\"\"", s.replace('\\', "\\\\")),
        _ => {}
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' if style != 0 => out.push_str("\\t"),
            '\n' if style != 0 => out.push_str("\\n"),
            '\r' if style != 0 => out.push_str("\\r"),
            c if style == 1 && c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if style == 2 && !c.is_ascii() => {
                if (c as u32) > 0xFFFF {
                    out.push_str(&format!("\\U{:08X}", c as u32));
                } else {
                    out.push_str(&format!("\\u{:04X}", c as u32));
                }
            }
            c if style == 2 && c.is_ascii_control() => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------- front matter

fn date(level: u8) -> BoxedStrategy<String> {
    let offsets = prop::sample::select(vec![
        "+06:00", "Z", "-12:00", "+14:00", "+05:45", "+24:00", "-00:00", "", "+6",
    ]);
    let valid = (2029u32..2030, 1u32..13, 1u32..29, 0u32..24, 0u32..60)
        .prop_map(|(y, mo, d, h, mi)| format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:00+06:00"));
    if level == 0 {
        return valid.boxed();
    }
    if level == 1 {
        let offsets =
            prop::sample::select(vec!["+06:00", "Z", "-12:00", "+14:00", "+05:45", "-00:00"]);
        return (1u32..13, 1u32..29, 0u32..24, 0u32..60, offsets)
            .prop_map(|(mo, d, h, mi, off)| format!("2029-{mo:02}-{d:02}T{h:02}:{mi:02}:59{off}"))
            .boxed();
    }
    prop_oneof![
        3 => valid,
        6 => (2029u32..2030, 1u32..13, 1u32..29, 0u32..24, 0u32..60, offsets)
            .prop_map(|(y, mo, d, h, mi, off)| format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:00{off}")),
        1 => (2029u32..2030, 1u32..13, 1u32..29).prop_map(|(y, m, d)| format!("{y}-{m:02}-{d:02}")),
        1 => prop::sample::select(vec![
            "2029-13-45T09:00:00+06:00",
            "2029-02-30T09:00:00Z",
            "\"2029-05-05T09:00:00+06:00\"",
            "2029-05-05T25:61:00Z",
            "2029-12-31T23:59:59+14:00",
            "2027-01-01T00:00:00-12:00",
            "2029-05-05 09:00:00+06:00",
            "",
        ])
        .prop_map(str::to_string),
    ]
    .boxed()
}

/// A TOML spelling: at level 0 only the escaped basic strings.
fn style(level: u8) -> BoxedStrategy<u8> {
    if level == 0 {
        (1u8..3).boxed()
    } else {
        any::<u8>().boxed()
    }
}

fn field(level: u8, name: &'static str, max: usize) -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.6,
        (text(level, max), style(level))
            .prop_map(move |(t, st)| format!("{name} = {}", toml_string(&t, st))),
    )
}

fn list(level: u8, name: &'static str) -> impl Strategy<Value = Option<String>> {
    let item = (text(level, 4), style(level), "[a-z][a-z0-9-]{0,10}").prop_map(
        move |(t, st, topic)| match (level, name) {
            (0, "topics") => format!("\"{topic}\""),
            (0, _) => toml_string(&format!("I{t}"), st),
            _ => toml_string(&t, st),
        },
    );
    prop::option::weighted(
        0.5,
        prop_oneof![
            4 => prop::collection::vec(item, 0..5),
            1 => (0usize..if level == 0 { 10 } else { 120 }).prop_map(|n| (0..n).map(|i| format!("\"t{i}\"")).collect()),
        ]
        .prop_map(move |v: Vec<String>| format!("{name} = [{}]", v.join(", "))),
    )
}

fn front_matter(level: u8) -> impl Strategy<Value = Vec<String>> {
    let p_title = if level == 0 { 0.999 } else { 0.95 };
    (
        prop::option::weighted(
            p_title,
            (text(level, 8), style(level))
                .prop_map(|(t, st)| format!("title = {}", toml_string(&format!("T{t}"), st))),
        ),
        prop::option::weighted(p_title, date(level).prop_map(|d| format!("date = {d}"))),
        field(level, "summary", 12),
        field(level, "place", 4),
        field(level, "occasion", 4),
        list(level, "issuers"),
        list(level, "topics"),
    )
        .prop_map(|(t, d, s, p, o, i, tp)| [t, d, s, p, o, i, tp].into_iter().flatten().collect())
}

// ---------------------------------------------------------------- body

fn depth(level: u8) -> BoxedStrategy<usize> {
    if level == 0 {
        return (1usize..6).boxed();
    }
    if level == 1 {
        return (1usize..20).boxed();
    }
    prop_oneof![8 => 1usize..6, 2 => 6usize..40, 1 => 40usize..300, 1 => Just(2000usize)].boxed()
}

fn inline(level: u8) -> impl Strategy<Value = String> {
    let bit = prop_oneof![
        6 => piece(level),
        1 => text(level, 3).prop_map(|t| format!("*{t}*")),
        1 => text(level, 3).prop_map(|t| format!("**{t}**")),
        1 => text(level, 3).prop_map(|t| format!("[{t}](https://example.org/{t})")),
        1 => text(level, 2).prop_map(|t| format!("<span title=\"{t}\">{t}</span>")),
        1 => Just(if level == 0 { "<em>x</em>" } else { "<script>alert(1)</script>" }.to_string()),
        1 => text(level, 2).prop_map(|t| format!("`{t}`")),
        1 => Just("[^1]".to_string()),
        1 => prop::sample::select(if level == 0 {
            vec!["&nbsp;", "&amp;", "&#x410;"]
        } else {
            vec!["&#0;", "&#x85;", "&#x1F600;", "&#xD800;", "&nbsp;"]
        })
            .prop_map(str::to_string),
    ];
    prop::collection::vec(bit, 1..10).prop_map(|v| v.concat())
}

fn block(level: u8) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => inline(level),
        1 => (1usize..if level == 0 { 7 } else { 9 }, inline(level)).prop_map(|(n, t)| format!("{} {t}", "#".repeat(n))),
        1 => (depth(level), inline(level)).prop_map(|(d, t)| format!("{}{t}", "- ".repeat(d))),
        1 => (1usize..8, inline(level)).prop_map(|(d, t)| {
            (0..d).map(|i| format!("{}- {t}", "  ".repeat(i))).collect::<Vec<_>>().join("\n")
        }),
        1 => (depth(level), inline(level)).prop_map(|(d, t)| format!("{}{t}", "> ".repeat(d))),
        1 => (depth(level), inline(level)).prop_map(|(d, t)| format!("{}{t}", "1. > ".repeat(d))),
        1 => (inline(level), inline(level)).prop_map(|(a, b)| format!("| {a} | b |\n|---|---|\n| c | {b} |")),
        1 => inline(level).prop_map(|t| format!("[^1]: {t}")),
        1 => text(level, 6).prop_map(|t| format!("```\n{t}\n```")),
        1 => (depth(level), inline(level)).prop_map(|(d, t)| format!("{}{t}{}", "<div>".repeat(d), "</div>".repeat(d))),
        1 => Just("---".to_string()),
        1 => (1usize..if level == 0 { 100 } else { 20_000 }).prop_map(|n| "x".repeat(n)),
    ]
}

// ---------------------------------------------------------------- the file

#[derive(Debug, Clone)]
struct Statement {
    bom: bool,
    fm: Vec<String>,
    body: Vec<String>,
    /// Line ends, cycled through: `\n`, `\r\n` or `\r` per line.
    ends: Vec<u8>,
}

impl Statement {
    fn bytes(&self) -> Vec<u8> {
        let ends = ["\n", "\r\n", "\n", "\r"];
        let mut n = 0;
        let mut nl = || {
            n += 1;
            ends[usize::from(self.ends[n % self.ends.len()]) % ends.len()]
        };
        let mut s = String::new();
        if self.bom {
            s.push('\u{FEFF}');
        }
        s.push_str("+++");
        s.push_str(nl());
        for line in &self.fm {
            s.push_str(line);
            s.push_str(nl());
        }
        s.push_str("+++");
        s.push_str(nl());
        for b in &self.body {
            s.push_str(b);
            s.push_str(nl());
            s.push_str(nl());
        }
        s.into_bytes()
    }
}

fn statement() -> BoxedStrategy<Statement> {
    // CONTRACT_LEVEL=2 hunts with hostile statements only.
    match std::env::var("CONTRACT_LEVEL")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(level) => Just(level).prop_flat_map(statement_at).boxed(),
        None => prop_oneof![3 => Just(0u8), 2 => Just(1u8), 2 => Just(2u8)]
            .prop_flat_map(statement_at)
            .boxed(),
    }
}

fn statement_at(level: u8) -> impl Strategy<Value = Statement> {
    let ends = if level < 2 { 0u8..2 } else { 0u8..4 };
    let (p_bom, min_blocks) = if level == 0 { (0.001, 1) } else { (0.15, 0) };
    (
        prop::bool::weighted(p_bom),
        front_matter(level),
        prop::collection::vec(block(level), min_blocks..8),
        prop_oneof![
            4 => Just(vec![0u8]),
            1 => Just(vec![1u8]),
            2 => prop::collection::vec(ends, 1..6),
        ],
    )
        .prop_map(|(bom, fm, body, ends)| Statement {
            bom,
            fm,
            body,
            ends,
        })
}

// ---------------------------------------------------------------- the contract

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

/// Checks one statement file against the contract in a fresh project.
/// `Ok(true)` when it published, `Ok(false)` when `check` refused it as it should.
fn contract(file: &[u8]) -> Result<bool, TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let path = root.join(FILE);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::copy(
        herald_e2e::repo().join("content/herald.toml"),
        root.join("content/herald.toml"),
    )
    .expect("config");
    // Before the statement: `subscribers add` reads the content too.
    add_desk_subscriber(BIN, root);
    fs::write(&path, file).expect("write");

    let check = herald(BIN, root, &["check"]);
    match check.status.code() {
        Some(0) => {}
        Some(3) => {
            let err = String::from_utf8_lossy(&check.stderr);
            let at = format!("--> {FILE}:");
            let located = err.lines().any(|l| {
                l.trim_start().strip_prefix(&at).is_some_and(|rest| {
                    let mut it = rest.split(':');
                    it.next().is_some_and(|n| n.parse::<u32>().is_ok())
                        && it.next().is_some_and(|n| n.parse::<u32>().is_ok())
                })
            });
            if !located || !err.contains("error[") {
                return Err(fail(format!(
                    "check refused without a file:line:col diagnostic\n{}",
                    show(&check)
                )));
            }
            REFUSED.fetch_add(1, Ordering::Relaxed);
            if std::env::var_os("CONTRACT_VERBOSE").is_some() {
                eprintln!("refused: {}", err.lines().next().unwrap_or_default());
            }
            return Ok(false);
        }
        _ => {
            return Err(fail(format!(
                "check neither passed nor refused\n{}",
                show(&check)
            )));
        }
    }

    let publish = herald(BIN, root, &["publish", "--now", NOW]);
    if publish.status.code() != Some(0) {
        return Err(fail(format!(
            "check passed, publish failed\n{}",
            show(&publish)
        )));
    }
    let public = root.join("public");
    let page = public.join("en/2029/contract/index.html");
    let pdf = public.join("en/2029/contract/contract.en.pdf");
    if !page.is_file() {
        return Err(fail(format!("no page\n{}", show(&publish))));
    }
    let pdf_bytes = fs::read(&pdf).unwrap_or_default();
    if !pdf_bytes.starts_with(b"%PDF-") {
        return Err(fail(format!("no PDF\n{}", show(&publish))));
    }
    for feed in ["en/feed.json", "en/atom.xml", "en/rss.xml"] {
        let text = fs::read_to_string(public.join(feed)).unwrap_or_default();
        if !text.contains("2029/contract/") {
            return Err(fail(format!("{feed} lacks the entry\n{}", show(&publish))));
        }
    }
    let html = fs::read(&page).expect("page");
    if html.contains(&0) {
        return Err(fail("a NUL byte in the page".into()));
    }
    let mails = snapshot(&root.join("outbox"));
    if mails.len() != 1 || !mails[0].0.ends_with(".eml") {
        return Err(fail(format!(
            "{} bulletins in the outbox\n{}",
            mails.len(),
            show(&publish)
        )));
    }
    PUBLISHED.fetch_add(1, Ordering::Relaxed);
    Ok(true)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

#[test]
fn what_check_accepts_publishes_through_every_channel() {
    // No seed file: a runner built by hand has no source path to save it beside;
    // proptest prints the shrunk statement instead, to be made a fixed case.
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        cases: cases(),
        max_shrink_iters: 400,
        ..Config::default()
    });
    let result = runner.run(&statement(), |s| contract(&s.bytes()).map(|_| ()));
    eprintln!(
        "contract: {} published, {} refused by check",
        PUBLISHED.load(Ordering::Relaxed),
        REFUSED.load(Ordering::Relaxed)
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The sanity of the generator's own happy path: a plain statement publishes.
#[test]
fn a_plain_generated_statement_publishes() {
    let s = Statement {
        bom: false,
        fm: vec![
            "title = \"Plain\"".into(),
            "date = 2029-05-05T09:00:00+06:00".into(),
        ],
        body: vec!["Body *text*.".into()],
        ends: vec![0],
    };
    assert!(contract(&s.bytes()).expect("contract"), "refused");
}

/// Fixed inputs from the issue's list, held to the same contract.
/// `publishes`: `check` passes it (and publish must succeed), or refuses it.
fn fixed(fm: &[&str], body: &[&str], ends: &[u8], bom: bool, publishes: bool) {
    let s = Statement {
        bom,
        fm: fm.iter().map(|l| (*l).to_string()).collect(),
        body: body.iter().map(|l| (*l).to_string()).collect(),
        ends: ends.to_vec(),
    };
    let published = contract(&s.bytes()).expect("contract");
    assert_eq!(published, publishes, "published: {published}");
}

const TITLE: &str = "title = \"Fixed\"";
const DATE: &str = "date = 2029-05-05T09:00:00+06:00";

#[test]
fn contract_holds_for_a_bom_at_file_start() {
    fixed(&[TITLE, DATE], &["Body."], &[0], true, true);
}

#[test]
fn contract_holds_for_mixed_line_ends() {
    fixed(
        &[TITLE, DATE],
        &["One.", "- a\r\n  - b", "> q"],
        &[0, 1, 1, 0],
        false,
        true,
    );
    // A lone CR ends a front matter line: TOML refuses it, with a position.
    fixed(&[TITLE, DATE], &["One."], &[0, 3], false, false);
}

#[test]
fn contract_holds_for_nul_in_body_and_escaped_nul_in_title() {
    fixed(&[TITLE, DATE], &["A\u{0}B"], &[0], false, false);
    fixed(
        &["title = \"A\\u0000B\"", DATE],
        &["Body."],
        &[0],
        false,
        false,
    );
}

#[test]
fn contract_holds_for_2000_nested_quotes_and_lists() {
    let quotes = format!("{}deep", "> ".repeat(2000));
    let lists = format!("{}deep", "- ".repeat(2000));
    fixed(&[TITLE, DATE], &[&quotes], &[0], false, false);
    fixed(&[TITLE, DATE], &[&lists], &[0], false, false);
}

#[test]
fn contract_holds_for_a_long_unbreakable_word_in_title_and_body() {
    let word = "w".repeat(20_000);
    fixed(&[TITLE, DATE], &[&word], &[0], false, true);
    let title = format!("title = \"{}\"", "w".repeat(299));
    fixed(&[&title, DATE], &["Body."], &[0], false, true);
}

#[test]
fn contract_holds_for_emoji_rtl_and_combining_marks() {
    fixed(
        &["title = \"\u{1F600} \u{202E}x\"", DATE],
        &["مرحبا e\u{301}\u{302} \u{1F469}\u{200D}\u{1F469}"],
        &[0],
        false,
        false,
    );
    fixed(
        &["title = \"مرحبا e\u{301}\"", DATE],
        &["Ελληνικά \u{200F}"],
        &[0],
        false,
        true,
    );
}

/// Found by the property test: a character no font has, written as a TOML escape,
/// got a missing-glyph diagnostic without line and column.
#[test]
fn contract_holds_for_a_missing_glyph_written_as_a_toml_escape() {
    fixed(
        &["title = \"T\\u4E2D\\u6587\\u5B57\\u7B26\"", DATE],
        &["Body."],
        &[0],
        false,
        false,
    );
    fixed(
        &["title = \"T\\U0001F600\"", DATE],
        &["Body."],
        &[0],
        false,
        false,
    );
}
