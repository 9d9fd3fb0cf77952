//! The gate: what `check` accepts publishes, what it refuses publishes nothing.
//! Template overrides, a channel failing after others rendered, a signal mid-render,
//! `herald serve` living through a refused rebuild; and one test per limit and per
//! refused character class (exit 3, file:line:col, nothing published).

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_e2e::{herald, repo, rows, sample_project, snapshot};

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");
const BEFORE_EMBARGO: &str = "2027-07-30T08:59:59+05:00";
const AT_EMBARGO: &str = "2027-07-30T09:00:00+05:00";
const TABLES: [&str; 5] = ["publications", "entries", "outputs", "runs", "state"];

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything of the ledger a run may change: row counts and the `state` rows.
fn ledger(root: &Path) -> (Vec<i64>, Vec<(String, String)>) {
    let counts = TABLES.iter().map(|t| rows(root, t)).collect();
    let conn = rusqlite::Connection::open(root.join(".herald/herald.db")).expect("ledger");
    let mut stmt = conn
        .prepare("SELECT key, value FROM state ORDER BY key")
        .expect("query");
    let state = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("state");
    (counts, state)
}

/// Files left in `.herald/tmp` (staged output of a run that did not finish).
fn staged(root: &Path) -> usize {
    fs::read_dir(root.join(".herald/tmp")).map_or(0, |d| d.count())
}

fn builtin_statement_template() -> String {
    fs::read_to_string(repo().join("crates/site/templates/statement.html")).expect("built-in")
}

#[test]
fn broken_template_overrides_fail_check_with_file_and_line_and_publish_nothing() {
    let cases: &[(&str, String, &str)] = &[
        (
            "templates/statement.html",
            "<h1>{{ statement.title }}</h1>\n<p>{{ statement.title }</p>\n".into(),
            "content/templates/statement.html:2:",
        ),
        (
            "templates/statement.html",
            builtin_statement_template().replace(
                "<h1>{{ statement.title }}</h1>",
                "<h1>{{ statement.title }}</h1>\n{{ statement.no_such_field }}",
            ),
            "undefined",
        ),
        (
            "templates/statement.html",
            "<p>again</p>\n{% include \"statement.html\" %}\n".into(),
            "content/templates/statement.html:2:",
        ),
        (
            "templates/mail/bulletin.html",
            "<p>{{ statement.title }}</p>\n<p>{{ no_such_variable }}</p>\n".into(),
            "content/templates/mail/bulletin.html:2:",
        ),
    ];
    for (rel, source, expected) in cases {
        let dir = sample_project();
        let root = dir.path();
        let path = root.join("content").join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, source).expect("write template");
        let check = herald(BIN, root, &["check"]);
        let shown = text(&check);
        assert_eq!(check.status.code(), Some(3), "{rel}: {shown}");
        assert!(shown.contains(expected), "{rel}: {shown}");
        assert!(shown.contains(rel), "{rel}: {shown}");
        assert!(shown.contains("error[template]"), "{rel}: {shown}");
        let publish = herald(BIN, root, &["publish", "--now", BEFORE_EMBARGO]);
        let shown = text(&publish);
        assert_eq!(publish.status.code(), Some(3), "{rel}: {shown}");
        assert!(shown.contains(rel), "{rel}: {shown}");
        assert!(snapshot(&root.join("public")).is_empty(), "{rel}: {shown}");
        assert_eq!(rows(root, "publications"), 0, "{rel}");
        assert_eq!(staged(root), 0, "{rel}: staged files left behind");
    }
}

#[test]
fn a_site_failure_after_pdf_and_feeds_rendered_publishes_nothing_new() {
    let dir = sample_project();
    let root = dir.path();
    ok(&herald(BIN, root, &["publish", "--now", BEFORE_EMBARGO]));
    let public = snapshot(&root.join("public"));
    let before = ledger(root);
    // Fails only for the statement whose embargo lifts next: the PDF and feeds of
    // that statement render first, then its page does not.
    let template = builtin_statement_template().replace(
        "<h1>{{ statement.title }}</h1>",
        "<h1>{{ statement.title }}{% if \"2027\" in statement.date.iso %}{{ nosuch }}{% endif %}</h1>",
    );
    fs::create_dir_all(root.join("content/templates")).expect("mkdir");
    fs::write(root.join("content/templates/statement.html"), template).expect("write");
    let out = herald(BIN, root, &["publish", "--now", AT_EMBARGO]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(3), "{shown}");
    assert!(
        shown.contains("content/templates/statement.html"),
        "{shown}"
    );
    assert_eq!(
        snapshot(&root.join("public")),
        public,
        "public/ changed by a failed run: {shown}"
    );
    assert_eq!(ledger(root), before, "the ledger changed: {shown}");
    assert_eq!(staged(root), 0);
    // `check` says the same before anyone publishes.
    assert_eq!(herald(BIN, root, &["check"]).status.code(), Some(3));
}

#[test]
fn sigterm_mid_render_publishes_nothing_and_a_later_run_does() {
    let dir = sample_project();
    let root = dir.path();
    ok(&herald(BIN, root, &["publish", "--now", BEFORE_EMBARGO]));
    let public = snapshot(&root.join("public"));
    let before = ledger(root);
    // Enough new statements that rendering takes seconds.
    let sample =
        fs::read_to_string(root.join("content/statements/2015/migrant-workers-health.en.md"))
            .expect("sample");
    let body = sample.clone() + &"\nMore paragraphs so that each PDF takes a while. ".repeat(40);
    for i in 0..160 {
        fs::write(
            root.join(format!("content/statements/2015/copy-{i:03}.en.md")),
            &body,
        )
        .expect("write");
    }
    let mut child = Command::new(BIN)
        .arg("--root")
        .arg(root)
        .args(["publish", "--now", AT_EMBARGO, "--no-mail"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Signal once the run has staged output, i.e. in the middle of rendering.
    let started = Instant::now();
    while staged(root) == 0 {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "publish ended before it staged anything"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no output staged"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    // A generous bound, only to tell a hang from a stop.
    let signalled = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(
            signalled.elapsed() < Duration::from_secs(60),
            "publish ignores SIGTERM while rendering"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("stopped by signal"), "{shown}");
    assert_eq!(
        snapshot(&root.join("public")),
        public,
        "a stopped run changed public/"
    );
    assert_eq!(ledger(root), before, "a stopped run changed the ledger");
    assert_eq!(staged(root), 0, "staged files left behind");
    // The next run publishes everything.
    let out = ok(&herald(
        BIN,
        root,
        &["publish", "--now", AT_EMBARGO, "--no-mail"],
    ));
    assert!(out.contains("+ 2015/copy-000 [en]"), "{out}");
    assert!(
        snapshot(&root.join("public"))
            .iter()
            .any(|(p, _, _)| p.contains("copy-159") && p.ends_with(".html")),
        "the last new page is missing"
    );
}

/// One HTTP/1.1 request over a fresh connection: (status, headers, body).
fn http(port: u16, request: &str) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, head, raw[split + 4..].to_vec())
}

fn get(port: u16, path: &str) -> (u16, String, Vec<u8>) {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
}

#[test]
fn serve_keeps_the_last_good_site_when_the_gate_refuses_a_rebuild() {
    let dir = sample_project();
    let root = dir.path();
    ok(&herald(BIN, root, &["publish", "--no-mail"]));
    let page = fs::read(root.join("public/en/index.html")).expect("page");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut child = Command::new(BIN)
        .arg("--root")
        .arg(root)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let log = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().expect("stderr");
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("log")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(get(port, "/en/").2, page);

    // A template the gate refuses: the rebuild fails, the service stays.
    fs::create_dir_all(root.join("content/templates")).expect("mkdir");
    fs::write(
        root.join("content/templates/statement.html"),
        "<h1>{{ statement.title }}</h1>\n{{ no_such_variable }}\n",
    )
    .expect("write");
    let started = Instant::now();
    while !log.lock().expect("log").contains("rebuild failed") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no rebuild logged: {}",
            log.lock().expect("log")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let logged = log.lock().expect("log").clone();
    assert!(
        logged.contains("content/templates/statement.html:2:"),
        "{logged}"
    );
    assert!(logged.contains("last good site"), "{logged}");
    assert!(child.try_wait().expect("wait").is_none(), "serve died");
    let (status, _, body) = get(port, "/en/");
    assert_eq!(status, 200);
    assert_eq!(body, page, "the last good page is no longer served");

    // Subscribing still works: a form with a token, then a pending subscriber.
    let (status, head, body) = get(port, "/subscribe");
    assert_eq!(status, 200);
    let html = String::from_utf8_lossy(&body);
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("csrf field") + marker.len();
    let token = html[at..].split('"').next().expect("token");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| {
                    l["set-cookie:".len()..]
                        .trim()
                        .split(';')
                        .next()
                        .map(str::to_string)
                })
                .flatten()
        })
        .expect("cookie");
    let form = format!("csrf={token}&email=after.refusal%40example.org&lang=en");
    let (status, _, body) = http(
        port,
        &format!(
            "POST /subscribe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let conn = rusqlite::Connection::open(root.join(".herald/herald.db")).expect("db");
    let state: String = conn
        .query_row(
            "SELECT status FROM mail_subscribers WHERE address = 'after.refusal@example.org'",
            [],
            |r| r.get(0),
        )
        .expect("subscriber recorded");
    assert_eq!(state, "pending");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn check_renders_overrides_on_a_sample_with_every_optional_field() {
    let dir = sample_project();
    let root = dir.path();
    // No statement is a correction: only the check's own sample has `updated`.
    let corrected = root.join("content/statements/2015/migrant-workers-health.en.md");
    let text_of = fs::read_to_string(&corrected).expect("read");
    let plain: String = text_of
        .lines()
        .filter(|l| !l.starts_with("updated"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&corrected, plain).expect("write");
    let template = builtin_statement_template().replace(
        "<h1>{{ statement.title }}</h1>",
        "<h1>{{ statement.title }}{% if statement.updated %}{{ statement.updated.no_such }}{% endif %}</h1>",
    );
    fs::create_dir_all(root.join("content/templates")).expect("mkdir");
    fs::write(root.join("content/templates/statement.html"), template).expect("write");
    let check = herald(BIN, root, &["check"]);
    let shown = text(&check);
    assert_eq!(check.status.code(), Some(3), "{shown}");
    assert!(shown.contains("statement.updated.no_such"), "{shown}");
    assert!(
        shown.contains("content/templates/statement.html:"),
        "{shown}"
    );
    // Publishing today's statements never reaches that line: only check finds it.
    ok(&herald(BIN, root, &["publish", "--now", BEFORE_EMBARGO]));
}

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
