//! The gate: what `check` refuses, `publish` refuses too, with exit 3 and nothing
//! published; one test per limit and per refused character class.

use std::fs;
use std::path::Path;

use herald_e2e::{herald, sample_project, snapshot};

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");
const NOW: &str = "2030-01-01T00:00:00Z";
const FILE: &str = "content/statements/2015/gate.en.md";
/// Front matter lines before the fields a test adds: `+++`, title, date.
const DATE: &str = "date = 2015-05-05T09:00:00+06:00\n";

/// A statement with `title`, then `extra` front matter lines, then `body`.
fn statement(title: &str, extra: &str, body: &str) -> String {
    format!("+++\ntitle = {title}\n{DATE}{extra}+++\n{body}")
}

fn write(root: &Path, rel: &str, text: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

/// `check` and `publish` both exit 3 naming `code` at `at` (`file:line:col`), and
/// the publish leaves nothing in `public/`. Returns check's message.
fn refused_at(root: &Path, code: &str, at: &str) -> String {
    let check = herald(BIN, root, &["check"]);
    let stderr = String::from_utf8_lossy(&check.stderr).into_owned();
    assert_eq!(check.status.code(), Some(3), "check: {stderr}");
    assert!(stderr.contains(&format!("error[{code}]")), "{stderr}");
    assert!(
        stderr.contains(&format!("--> {at}\n")),
        "not at {at}: {stderr}"
    );
    let publish = herald(BIN, root, &["publish", "--now", NOW]);
    let out = String::from_utf8_lossy(&publish.stderr);
    assert_eq!(publish.status.code(), Some(3), "publish: {out}");
    assert!(out.contains(&format!("--> {at}\n")), "{out}");
    assert!(
        snapshot(&root.join("public")).is_empty(),
        "publish wrote files"
    );
    assert!(
        snapshot(&root.join("outbox")).is_empty(),
        "publish sent mail"
    );
    stderr
}

/// One bad statement beside the sample ones is refused at `at`.
fn refused(text: &str, code: &str, at: &str) -> String {
    let dir = sample_project();
    write(dir.path(), FILE, text.as_bytes());
    refused_at(dir.path(), code, &format!("{FILE}:{at}"))
}

fn long(n: usize) -> String {
    "a".repeat(n)
}

#[test]
fn limit_statement_file_size() {
    let line = format!("{}\n", "word ".repeat(15));
    let body = line.repeat(1_100_000 / line.len());
    let text = statement("\"Big\"", "", &body);
    let head = &text[..1024 * 1024];
    let l = head.matches('\n').count() + 1;
    let c = head.len() - head.rfind('\n').map_or(0, |i| i + 1) + 1;
    let msg = refused(&text, "file-size", &format!("{l}:{c}"));
    assert!(msg.contains("1048576 bytes"), "{msg}");
}

#[test]
fn limit_title_length() {
    let ok = statement(&format!("\"{}\"", long(300)), "", "Body.\n");
    let dir = sample_project();
    write(dir.path(), FILE, ok.as_bytes());
    assert_eq!(herald(BIN, dir.path(), &["check"]).status.code(), Some(0));
    let msg = refused(
        &statement(&format!("\"{}\"", long(301)), "", "Body.\n"),
        "too-long",
        "2:9",
    );
    assert!(
        msg.contains("`title` is 301 characters long; the limit is 300"),
        "{msg}"
    );
}

#[test]
fn limit_summary_length() {
    let extra = format!("summary = \"{}\"\n", long(1001));
    refused(&statement("\"T\"", &extra, "Body.\n"), "too-long", "4:11");
}

#[test]
fn limit_place_length() {
    let extra = format!("place = \"{}\"\n", long(301));
    refused(&statement("\"T\"", &extra, "Body.\n"), "too-long", "4:9");
}

#[test]
fn limit_occasion_length() {
    let extra = format!("occasion = \"{}\"\n", long(301));
    refused(&statement("\"T\"", &extra, "Body.\n"), "too-long", "4:12");
}

#[test]
fn limit_issuer_length() {
    let extra = format!("issuers = [\"Org\", \"{}\"]\n", long(301));
    refused(&statement("\"T\"", &extra, "Body.\n"), "too-long", "4:19");
}

#[test]
fn limit_topic_length() {
    let extra = format!("topics = [\"{}\"]\n", long(101));
    refused(&statement("\"T\"", &extra, "Body.\n"), "too-long", "4:11");
}

#[test]
fn limit_slug_length() {
    let extra = format!("slug = \"{}\"\n", long(101));
    refused(&statement("\"T\"", &extra, "Body.\n"), "too-long", "4:8");
}

#[test]
fn limit_number_of_issuers() {
    let list: Vec<String> = (0..21).map(|i| format!("\"Org {i}\"")).collect();
    let extra = format!("issuers = [{}]\n", list.join(", "));
    let msg = refused(&statement("\"T\"", &extra, "Body.\n"), "too-many", "4:11");
    assert!(
        msg.contains("`issuers` lists 21 entries; the limit is 20"),
        "{msg}"
    );
}

#[test]
fn limit_number_of_topics() {
    let list: Vec<String> = (0..21).map(|i| format!("\"t{i}\"")).collect();
    let extra = format!("topics = [{}]\n", list.join(", "));
    refused(&statement("\"T\"", &extra, "Body.\n"), "too-many", "4:10");
}

/// The body starts on line 5; the 17th level opens at column 33 (two characters a level).
#[test]
fn limit_nesting_of_2000_quotes() {
    let body = format!("{}deep\n", "> ".repeat(2_000));
    let msg = refused(&statement("\"T\"", "", &body), "nesting", "5:33");
    assert!(msg.contains("more than 16 levels"), "{msg}");
}

#[test]
fn limit_nesting_of_100000_lists() {
    let body = format!("{}deep\n", "- ".repeat(100_000));
    refused(&statement("\"T\"", "", &body), "nesting", "5:33");
}

#[test]
fn limit_nesting_of_lists_and_quotes_combined() {
    let body = format!("{}deep\n", "> - ".repeat(10));
    refused(&statement("\"T\"", "", &body), "nesting", "5:33");
}

#[test]
fn limit_nesting_of_emphasis() {
    let body = format!("{}x{}\n", "*a ".repeat(40), " b*".repeat(40));
    refused(&statement("\"T\"", "", &body), "nesting", "5:49");
}

#[test]
fn limit_nesting_of_raw_html() {
    let body = format!("{}x{}\n", "<div>".repeat(20_000), "</div>".repeat(20_000));
    let msg = refused(&statement("\"T\"", "", &body), "nesting", "5:1281");
    assert!(
        msg.contains("raw HTML elements are nested more than 256"),
        "{msg}"
    );
}

/// A title holding `escape` (a TOML escape sequence) is refused at the value.
fn refused_in_title(escape: &str, named: &str) {
    let msg = refused(
        &statement(&format!("\"A{escape}B\""), "", "Body.\n"),
        "control-char",
        "2:9",
    );
    assert!(msg.contains(named), "{msg}");
}

#[test]
fn title_refuses_tab() {
    refused_in_title("\\t", "U+0009 (tab)");
}

#[test]
fn title_refuses_line_feed() {
    refused_in_title("\\n", "U+000A (line feed)");
}

#[test]
fn title_refuses_carriage_return() {
    refused_in_title("\\r\\n", "U+000D (carriage return)");
}

#[test]
fn title_refuses_escape() {
    refused_in_title("\\u001b", "U+001B (escape)");
}

#[test]
fn title_refuses_nul() {
    refused_in_title("\\u0000", "U+0000 (NUL)");
}

#[test]
fn title_refuses_delete() {
    refused_in_title("\\u007f", "U+007F (delete)");
}

#[test]
fn title_refuses_c1_next_line() {
    refused_in_title("\\u0085", "U+0085 (next line)");
}

#[test]
fn title_refuses_line_separator() {
    refused_in_title("\\u2028", "U+2028 (line separator)");
}

#[test]
fn title_refuses_a_raw_tab() {
    refused_in_title("\t", "U+0009 (tab)");
}

#[test]
fn every_single_line_field_refuses_control_characters() {
    for (extra, at) in [
        ("place = \"P\\r\\nX\"\n", "4:9"),
        ("occasion = \"O\\u001b\"\n", "4:12"),
        ("summary = \"S\\tT\"\n", "4:11"),
        ("issuers = [\"A\\u0085\"]\n", "4:12"),
        ("topics = [\"a\\u0000\"]\n", "4:11"),
        ("slug = \"a\\nb\"\n", "4:8"),
        ("summary = \"\"\"\nline one\nline two\"\"\"\n", "4:11"),
    ] {
        refused(&statement("\"T\"", extra, "Body.\n"), "control-char", at);
    }
}

#[test]
fn body_refuses_a_raw_control_character() {
    refused(
        &statement("\"T\"", "", "Text\u{1b}[31m red.\n"),
        "control-char",
        "5:5",
    );
}

#[test]
fn body_refuses_a_control_character_reference() {
    let msg = refused(
        &statement("\"T\"", "", "Text &#27;[31m and more.\n"),
        "control-char",
        "5:6",
    );
    assert!(msg.contains("U+001B"), "{msg}");
    refused(
        &statement("\"T\"", "", "<p>html &#27; block</p>\n"),
        "control-char",
        "5:1",
    );
}

#[test]
fn missing_glyph_in_title() {
    let msg = refused(
        &statement("\"Fireworks 🎆 tonight\"", "", "Body.\n"),
        "missing-glyph",
        "2:20",
    );
    assert!(msg.contains("'🎆' (U+1F386)"), "{msg}");
    assert!(msg.contains("`fonts` under [pdf]"), "{msg}");
}

#[test]
fn missing_glyph_in_body_also_as_a_reference() {
    let msg = refused(
        &statement("\"T\"", "", "Intro.\n\nA rocket &#x1F680; here.\n"),
        "missing-glyph",
        "7:10",
    );
    assert!(msg.contains("U+1F680"), "{msg}");
}

#[test]
fn glyphs_are_not_checked_without_the_pdf_channel() {
    let dir = sample_project();
    let root = dir.path();
    let toml = root.join("content/herald.toml");
    let config = fs::read_to_string(&toml).expect("config");
    fs::write(&toml, format!("{config}\n[pdf]\nenabled = false\n")).expect("write");
    write(
        root,
        FILE,
        statement("\"Fireworks 🎆\"", "", "Body 🚀.\n").as_bytes(),
    );
    let out = herald(BIN, root, &["check"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = herald(BIN, root, &["publish", "--now", NOW, "--no-mail"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = fs::read_to_string(root.join("public/en/2015/gate/index.html")).expect("page");
    assert!(page.contains("Fireworks 🎆"));
}

#[test]
fn a_language_no_font_covers_is_a_config_error() {
    let dir = sample_project();
    let root = dir.path();
    let toml = root.join("content/herald.toml");
    let config = fs::read_to_string(&toml).expect("config");
    let config = config.replace(
        "languages = [\"en\", \"ru\", \"kk\"]",
        "languages = [\"en\", \"ru\", \"kk\", \"zh\"]",
    );
    fs::write(&toml, &config).expect("write");
    let at = config.find("\"zh\"").expect("zh");
    let line = config[..at].matches('\n').count() + 1;
    let col = at - config[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    let msg = refused_at(
        root,
        "pdf-language",
        &format!("content/herald.toml:{line}:{col}"),
    );
    assert!(msg.contains("language \"zh\""), "{msg}");
}

#[test]
fn a_statement_linked_from_outside_the_project_is_reported() {
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().join("x.en.md");
    fs::write(&target, statement("\"T\"", "", "Body.\n")).expect("write");
    let dir = sample_project();
    let root = dir.path();
    fs::create_dir_all(root.join("content/statements/2015")).expect("mkdir");
    std::os::unix::fs::symlink(&target, root.join(FILE)).expect("link");
    let check = herald(BIN, root, &["check"]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("error[symlink]"), "{stderr}");
    assert!(stderr.contains(&format!("--> {FILE}\n")), "{stderr}");
    assert!(stderr.contains("outside the project"), "{stderr}");
    let publish = herald(BIN, root, &["publish", "--now", NOW]);
    assert_eq!(publish.status.code(), Some(3));
    assert!(snapshot(&root.join("public")).is_empty());
}

#[test]
fn links_inside_the_project_are_followed() {
    let dir = sample_project();
    let root = dir.path();
    write(
        root,
        "drafts/gate.en.md",
        statement("\"Linked\"", "", "Body.\n").as_bytes(),
    );
    write(root, "shared/logo.txt", b"logo");
    fs::create_dir_all(root.join("content/statements/2015")).expect("mkdir");
    fs::create_dir_all(root.join("content/assets")).expect("mkdir");
    std::os::unix::fs::symlink(root.join("drafts/gate.en.md"), root.join(FILE)).expect("link");
    std::os::unix::fs::symlink(root.join("shared"), root.join("content/assets/shared"))
        .expect("link");
    let out = herald(BIN, root, &["publish", "--now", NOW, "--no-mail"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.join("public/en/2015/gate/index.html").is_file());
    assert_eq!(
        fs::read(root.join("public/assets/shared/logo.txt")).expect("asset"),
        b"logo"
    );
}

#[test]
fn an_asset_linked_from_outside_or_broken_is_reported() {
    let outside = tempfile::tempdir().expect("tempdir");
    fs::write(outside.path().join("secret"), "s").expect("write");
    let dir = sample_project();
    let root = dir.path();
    fs::create_dir_all(root.join("content/assets")).expect("mkdir");
    std::os::unix::fs::symlink(outside.path().join("secret"), root.join("content/assets/a"))
        .expect("link");
    std::os::unix::fs::symlink(root.join("nothing"), root.join("content/assets/b")).expect("link");
    let check = herald(BIN, root, &["check"]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("--> content/assets/a\n"), "{stderr}");
    assert!(stderr.contains("--> content/assets/b\n"), "{stderr}");
    assert!(stderr.contains("broken"), "{stderr}");
    let publish = herald(BIN, root, &["publish", "--now", NOW]);
    assert_eq!(publish.status.code(), Some(3));
    assert!(snapshot(&root.join("public")).is_empty());
}
