//! What `check` accepts publishes, what it refuses publishes nothing: template
//! overrides, a channel failing after others rendered, a signal mid-render, and
//! `herald serve` living through a refused rebuild (and its ETags after a publish).

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

/// `herald serve` on a free loopback port, answering: (process, port).
fn spawn_serve(root: &Path, stderr: Stdio) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(BIN)
        .arg("--root")
        .arg(root)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn serve");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

#[test]
fn serve_keeps_the_last_good_site_when_the_gate_refuses_a_rebuild() {
    let dir = sample_project();
    let root = dir.path();
    ok(&herald(BIN, root, &["publish", "--no-mail"]));
    let page = fs::read(root.join("public/en/index.html")).expect("page");
    let (mut child, port) = spawn_serve(root, Stdio::piped());
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

/// `publish`'s output digests, as the ledger keeps them.
fn output_digests(root: &Path) -> std::collections::BTreeMap<String, String> {
    let conn = rusqlite::Connection::open(root.join(".herald/herald.db")).expect("ledger");
    let mut stmt = conn
        .prepare("SELECT path, digest FROM outputs")
        .expect("query");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("outputs")
}

fn etag(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("etag").then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// The ETags `herald serve` gives are the ledger's output digests, so a new publish
/// changes the ETag of exactly the files whose bytes changed.
#[test]
fn serve_etags_are_the_ledgers_digests_and_change_only_with_the_file() {
    let dir = sample_project();
    let root = dir.path();
    ok(&herald(BIN, root, &["publish", "--no-mail"]));
    let before = output_digests(root);
    assert!(before.len() > 20, "{before:?}");
    let (mut child, port) = spawn_serve(root, Stdio::null());
    let etags = |paths: &mut dyn Iterator<Item = &String>| -> Vec<(String, String)> {
        paths
            .map(|p| {
                let (status, head, _) = get(port, &format!("/{p}"));
                assert_eq!(status, 200, "{p}");
                (p.clone(), etag(&head))
            })
            .collect()
    };
    for (path, tag) in etags(&mut before.keys()) {
        assert_eq!(tag, format!("\"{}\"", before[&path]), "{path}");
    }
    // An edit of one statement, published by another process while serve runs.
    let file = root.join("content/statements/2015/migrant-workers-health.en.md");
    let mut text = fs::read_to_string(&file).expect("statement");
    text.push_str("\nA paragraph added in a correction.\n");
    fs::write(&file, text).expect("write");
    ok(&herald(BIN, root, &["publish", "--no-mail"]));
    let after = output_digests(root);
    let mut changed = 0;
    for (path, tag) in etags(&mut after.keys()) {
        assert_eq!(tag, format!("\"{}\"", after[&path]), "{path}");
        if before.get(&path) != Some(&after[&path]) {
            changed += 1;
        }
    }
    assert!(changed > 0, "the edit changed no output");
    assert!(
        changed < after.len() / 2,
        "{changed} of {} changed",
        after.len()
    );
    assert_ne!(
        before["en/2015/migrant-workers-health/index.html"],
        after["en/2015/migrant-workers-health/index.html"]
    );
    assert_eq!(before["style.css"], after["style.css"]);
    let _ = child.kill();
    let _ = child.wait();
}
