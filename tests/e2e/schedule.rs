//! Time: the embargo lifts on the second in every channel; one process at a time;
//! `herald run` stops cleanly on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herald_e2e::{add_desk_subscriber, herald, sample_project, snapshot};

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");
const SLUG: &str = "world-day-against-trafficking-2027";

fn in_public(root: &std::path::Path, needle: &str) -> Vec<String> {
    snapshot(&root.join("public"))
        .into_iter()
        .filter(|(p, b, _)| p.contains(needle) || String::from_utf8_lossy(b).contains(needle))
        .map(|(p, _, _)| p)
        .collect()
}

fn outbox(root: &std::path::Path) -> Vec<String> {
    snapshot(&root.join("outbox"))
        .into_iter()
        .map(|(_, b, _)| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

#[test]
fn embargo_lifts_at_nine_in_every_channel() {
    let dir = sample_project();
    let root = dir.path();
    add_desk_subscriber(BIN, root);

    let before = herald(
        BIN,
        root,
        &["publish", "--now", "2027-07-30T08:59:59+05:00"],
    );
    assert!(
        before.status.success(),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );
    assert!(in_public(root, SLUG).is_empty());
    assert!(
        outbox(root)
            .iter()
            .all(|m| !m.contains("Trafficking in Persons 2027"))
    );

    let at = herald(
        BIN,
        root,
        &["publish", "--now", "2027-07-30T09:00:00+05:00"],
    );
    assert!(
        at.status.success(),
        "{}",
        String::from_utf8_lossy(&at.stderr)
    );
    let found = in_public(root, SLUG);
    for want in [
        format!("en/2027/{SLUG}/index.html"),
        format!("en/2027/{SLUG}/{SLUG}.en.pdf"),
        "en/atom.xml".to_string(),
        "en/rss.xml".to_string(),
        "en/feed.json".to_string(),
        "sitemap.xml".to_string(),
    ] {
        assert!(found.contains(&want), "{want} missing from {found:?}");
    }
    let mails: Vec<String> = outbox(root)
        .into_iter()
        .filter(|m| m.contains("desk@example.org") && m.contains("2027"))
        .collect();
    assert_eq!(
        mails.len(),
        1,
        "exactly one bulletin for the lifted statement"
    );
}

#[test]
fn two_processes_only_one_publishes() {
    let dir = sample_project();
    let root = dir.path();
    let spawn = || {
        Command::new(BIN)
            .arg("--root")
            .arg(root)
            .args(["publish", "--now", "2026-11-28T00:00:00Z"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn(), spawn());
    let outs = [
        a.wait_with_output().expect("a"),
        b.wait_with_output().expect("b"),
    ];
    let published: Vec<bool> = outs
        .iter()
        .map(|o| {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).contains("\n  + ")
        })
        .collect();
    assert_eq!(published.iter().filter(|p| **p).count(), 1, "{outs:?}");
}

/// `herald run` in `root`, its output captured.
fn spawn_run(root: &std::path::Path) -> std::process::Child {
    Command::new(BIN)
        .arg("--root")
        .arg(root)
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Send SIGTERM; the process must exit with 0 within 5 s.
fn sigterm_exits_cleanly(child: &mut std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn run_exits_cleanly_on_sigterm() {
    let dir = sample_project();
    let root = dir.path();
    let mut child = spawn_run(root);
    // Wait for the catch-up publish on start.
    let start = Instant::now();
    while !root.join("public/index.html").exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        root.join("public/index.html").exists(),
        "run did not publish on start"
    );
    sigterm_exits_cleanly(&mut child);
    let out = child.wait_with_output().expect("output");
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped by signal"));
}

#[test]
fn missed_slot_runs_once_after_restart() {
    let dir = sample_project();
    let root = dir.path();
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t = |s: &str| herald::cli::parse_now(s).expect("instant");
    // Monday 2026-11-30 09:00 Asia/Almaty is 04:00 UTC; the process was down over it.
    let first = herald::run::cycle(
        root,
        t("2026-11-30T03:00:00Z"),
        t("2026-11-30T03:00:00Z"),
        &cancel,
    )
    .expect("cycle");
    let second = herald::run::cycle(
        root,
        t("2026-12-02T10:00:00Z"),
        t("2026-12-02T10:00:00Z"),
        &cancel,
    )
    .expect("cycle");
    let third = herald::run::cycle(
        root,
        t("2026-12-03T10:00:00Z"),
        t("2026-12-03T10:00:00Z"),
        &cancel,
    )
    .expect("cycle");
    // The first cycle catches up the slot before it (never run); the restart runs
    // the missed Monday slot once; nothing is due the day after.
    assert_eq!(first.jobs.len(), 1);
    assert_eq!(
        second.jobs,
        vec![("weekly".to_string(), t("2026-11-30T04:00:00Z"))]
    );
    assert!(third.jobs.is_empty(), "{:?}", third.jobs);
}

/// postfix's `smtp-sink` on a free loopback port, dumping every message into `dir`.
struct SmtpSink {
    child: std::process::Child,
    port: u16,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_sink(dir: &std::path::Path) -> SmtpSink {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).expect("mkdir");
    // smtp-sink drops to the postfix user before it writes.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let bin = if std::path::Path::new("/usr/sbin/smtp-sink").exists() {
        "/usr/sbin/smtp-sink"
    } else {
        "smtp-sink"
    };
    let child = Command::new(bin)
        .args(["-u", "postfix", "-d"])
        .arg(format!("{}/m.%H%M%S.", dir.display()))
        .arg(format!("127.0.0.1:{port}"))
        .arg("64")
        .spawn()
        .expect("smtp-sink (run `cargo xtask provision`)");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "smtp-sink did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    SmtpSink { child, port }
}

/// Recipients of every message smtp-sink received, one entry per message.
fn received(dir: &std::path::Path) -> Vec<String> {
    snapshot(dir)
        .into_iter()
        .filter_map(|(_, bytes, _)| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .find_map(|l| l.strip_prefix("X-Rcpt-Args: <"))
                .map(|r| r.trim_end_matches('>').to_string())
        })
        .collect()
}

#[test]
fn sigterm_mid_send_then_restart_sends_nobody_twice() {
    let dir = sample_project();
    let root = dir.path();
    let mail_dir = root.join("sink");
    let sink = smtp_sink(&mail_dir);
    let toml = root.join("content/herald.toml");
    let mut text = std::fs::read_to_string(&toml).expect("herald.toml");
    // A rate limit so that the send takes seconds and the signal lands in it.
    text.push_str(&format!(
        "\n[mail]\nrate_limit = 400\nconcurrency = 4\n\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
        sink.port
    ));
    std::fs::write(&toml, text).expect("write herald.toml");
    // 2,000 readers of the labour statement only (one bulletin each).
    let mut csv = String::from("address,lang,topics,status,consent_at\n");
    for i in 0..2000 {
        let lang = ["en", "ru", "kk"][i % 3];
        csv.push_str(&format!(
            "reader{i}@example.org,{lang},labour,confirmed,2010-01-01T00:00:00Z\n"
        ));
    }
    let csv_path = root.join("readers.csv");
    std::fs::write(&csv_path, csv).expect("csv");
    let import = herald(
        BIN,
        root,
        &["subscribers", "import", csv_path.to_str().expect("utf-8")],
    );
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );

    let mut child = spawn_run(root);
    let start = Instant::now();
    while received(&mail_dir).len() < 300 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the send never got going"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "run ended on its own"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sigterm_exits_cleanly(&mut child);
    std::thread::sleep(Duration::from_millis(200));
    let at_stop = received(&mail_dir).len();
    assert!(
        at_stop < 2000,
        "the signal came too late to test anything ({at_stop})"
    );

    // The restart finishes the send; nobody is mailed twice, nobody is left out.
    let again = herald(BIN, root, &["publish"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    std::thread::sleep(Duration::from_millis(200));
    let mut got = received(&mail_dir);
    assert_eq!(got.len(), 2000, "sent before the signal: {at_stop}");
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 2000, "someone got a bulletin twice");
    let conn = rusqlite::Connection::open(root.join(".herald/herald.db")).expect("ledger");
    let sent: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM mail_bulletins WHERE state = 'sent'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(sent, 2000);
}
