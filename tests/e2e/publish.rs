//! Publishing: idempotence, embargo, validation gate, crash safety.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use herald_e2e::{add_desk_subscriber, herald, rows, sample_project, snapshot};

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");
const BEFORE_EMBARGO: &str = "2027-07-30T08:59:59+05:00";
const AT_EMBARGO: &str = "2027-07-30T09:00:00+05:00";
const EMBARGOED_SLUG: &str = "world-day-against-trafficking-2027";

fn ok(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "herald failed ({:?}):\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Files below public/ that mention `needle`, by path or content.
fn mentions(public: &Path, needle: &str) -> Vec<String> {
    snapshot(public)
        .into_iter()
        .filter(|(p, bytes, _)| {
            p.contains(needle) || String::from_utf8_lossy(bytes).contains(needle)
        })
        .map(|(p, _, _)| p)
        .collect()
}

#[test]
fn second_publish_changes_nothing() {
    let dir = sample_project();
    let root = dir.path();
    let first = ok(&herald(BIN, root, &["publish", "--now", BEFORE_EMBARGO]));
    assert!(
        first.contains("+ 2014/world-day-against-trafficking [kk]"),
        "{first}"
    );
    let public = snapshot(&root.join("public"));
    assert!(!public.is_empty());
    let counts: Vec<i64> = ["publications", "entries", "outputs", "runs", "state"]
        .iter()
        .map(|t| rows(root, t))
        .collect();
    assert!(counts[0] > 0);
    std::thread::sleep(Duration::from_millis(30));

    let second = ok(&herald(BIN, root, &["publish", "--now", BEFORE_EMBARGO]));
    assert!(second.contains("nothing new"), "{second}");
    assert!(!second.contains("\n  + "), "{second}");
    assert_eq!(snapshot(&root.join("public")), public, "files rewritten");
    let after: Vec<i64> = ["publications", "entries", "outputs", "runs", "state"]
        .iter()
        .map(|t| rows(root, t))
        .collect();
    assert_eq!(after, counts, "ledger rows added");
}

const SETTLED: &str = "no input changed since the last run";

#[test]
fn a_settled_run_reads_nothing_yet_notices_every_change() {
    let dir = sample_project();
    let root = dir.path();
    add_desk_subscriber(BIN, root);
    let publish = |extra: &[&str], now: &str| {
        let mut args = vec!["publish", "--now", now];
        args.extend_from_slice(extra);
        ok(&herald(BIN, root, &args))
    };
    let mails = || snapshot(&root.join("outbox")).len();

    // Files first, mail later: a run with mail is not settled by a run without.
    let first = publish(&["--no-mail"], BEFORE_EMBARGO);
    assert!(!first.contains(SETTLED), "{first}");
    assert_eq!(mails(), 0);
    let files_only = publish(&["--no-mail"], BEFORE_EMBARGO);
    assert!(files_only.contains(SETTLED), "{files_only}");
    // (Nothing to mail yet: the subscriber consented after these statements came out.)
    let with_mail = publish(&[], BEFORE_EMBARGO);
    assert!(!with_mail.contains(SETTLED), "{with_mail}");
    let settled = publish(&[], BEFORE_EMBARGO);
    assert!(settled.contains(SETTLED), "{settled}");
    assert!(settled.contains("mail"), "{settled}");
    assert!(
        settled.contains(EMBARGOED_SLUG),
        "still listed under embargo: {settled}"
    );

    // An edited statement is read again and published as a new version.
    let file = root.join("content/statements/2014/world-day-against-trafficking.en.md");
    let text = fs::read_to_string(&file).expect("fs");
    fs::write(
        &file,
        format!("{text}\nA sentence added after publication.\n"),
    )
    .expect("fs");
    let edited = publish(&["--no-mail"], BEFORE_EMBARGO);
    assert!(!edited.contains(SETTLED), "{edited}");
    assert!(
        mentions(&root.join("public"), "A sentence added after publication").len() > 1,
        "page and feeds carry the edit"
    );
    assert!(publish(&["--no-mail"], BEFORE_EMBARGO).contains(SETTLED));

    // A deleted output is written again.
    let sitemap = root.join("public/sitemap.xml");
    let before = fs::read(&sitemap).expect("fs");
    fs::remove_file(&sitemap).expect("fs");
    let repaired = publish(&["--no-mail"], BEFORE_EMBARGO);
    assert!(!repaired.contains(SETTLED), "{repaired}");
    assert_eq!(fs::read(&sitemap).expect("fs"), before);

    // A new template override is an input too.
    let templates = root.join("content/templates");
    fs::create_dir_all(&templates).expect("fs");
    fs::write(templates.join("unused-note.txt"), "notes").expect("fs");
    assert!(!publish(&["--no-mail"], BEFORE_EMBARGO).contains(SETTLED));

    // The second an embargo lifts, the last summary no longer holds.
    let lifted = publish(&[], AT_EMBARGO);
    assert!(!lifted.contains(SETTLED), "{lifted}");
    assert!(!mentions(&root.join("public"), EMBARGOED_SLUG).is_empty());
    let sent = mails();
    assert!(sent > 0, "the lifted statement is mailed: {lifted}");
    assert!(publish(&[], AT_EMBARGO).contains(SETTLED));
    assert_eq!(mails(), sent);
    // And back before it: the full path decides, it does not trust the summary.
    assert!(!publish(&["--no-mail"], BEFORE_EMBARGO).contains(SETTLED));
}

#[test]
fn embargo_holds_until_the_second() {
    let dir = sample_project();
    let root = dir.path();
    let out = ok(&herald(BIN, root, &["publish", "--now", BEFORE_EMBARGO]));
    assert!(
        out.contains(&format!(
            "2027/{EMBARGOED_SLUG} [en] until 2027-07-30T09:00:00+05:00"
        )),
        "{out}"
    );
    let public = root.join("public");
    assert!(
        mentions(&public, EMBARGOED_SLUG).is_empty(),
        "{:?}",
        mentions(&public, EMBARGOED_SLUG)
    );
    assert!(mentions(&public, "Thirteen years after").is_empty());

    let out = ok(&herald(BIN, root, &["publish", "--now", AT_EMBARGO]));
    assert!(
        out.contains(&format!("+ 2027/{EMBARGOED_SLUG} [en]")),
        "{out}"
    );
    let found = mentions(&public, EMBARGOED_SLUG);
    assert!(
        found
            .iter()
            .any(|p| p == &format!("en/2027/{EMBARGOED_SLUG}/index.html")),
        "{found:?}"
    );
    assert!(found.iter().any(|p| p == "sitemap.xml"), "{found:?}");
    assert!(found.iter().any(|p| p == "en/index.html"), "{found:?}");
}

#[test]
fn invalid_statement_stops_everything() {
    let dir = sample_project();
    let root = dir.path();
    fs::write(
        root.join("content/statements/2016/broken.en.md"),
        "+++\ntitle = \"Broken\"\ndate = 2016-01-01T10:00:00\n+++\nText\n",
    )
    .expect("write");
    let out = herald(BIN, root, &["publish", "--now", AT_EMBARGO]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("content/statements/2016/broken.en.md:3:8"),
        "{err}"
    );
    assert!(err.contains("nothing was published"), "{err}");
    assert!(!root.join("public").exists());
    assert!(!root.join(".herald/herald.db").exists());
}

#[test]
fn dry_run_writes_nothing() {
    let dir = sample_project();
    let root = dir.path();
    let out = ok(&herald(
        BIN,
        root,
        &["publish", "--dry-run", "--now", AT_EMBARGO],
    ));
    assert!(out.contains("dry run"), "{out}");
    assert!(
        out.contains(&format!("+ 2027/{EMBARGOED_SLUG} [en]")),
        "{out}"
    );
    assert!(snapshot(&root.join("public")).is_empty());
}

/// Files that a reader could see half-written, or leftovers of a killed run.
fn assert_whole(public: &Path) {
    for (path, bytes, _) in snapshot(public) {
        assert!(
            !path.contains(".herald-"),
            "temporary file left in public/: {path}"
        );
        if path.ends_with(".html") {
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.trim_end().ends_with("</html>"), "{path} is cut short");
        }
        if path.ends_with(".xml") {
            let text = String::from_utf8_lossy(&bytes);
            let t = text.trim_end();
            assert!(t.ends_with('>'), "{path} is cut short");
        }
    }
}

#[test]
fn killed_publish_leaves_whole_files_and_recovers() {
    let dir = sample_project();
    let root = dir.path();
    // Kill at increasing moments, so some land mid-render and mid-commit.
    for delay_ms in [0u64, 5, 15, 30, 60, 120] {
        let mut child = Command::new(BIN)
            .arg("--root")
            .arg(root)
            .args(["publish", "--now", AT_EMBARGO])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        assert_whole(&root.join("public"));
    }
    ok(&herald(BIN, root, &["publish", "--now", AT_EMBARGO]));
    assert_whole(&root.join("public"));
    // The ledger agrees with public/: every recorded page exists, every page is recorded.
    let conn = rusqlite::Connection::open(root.join(".herald/herald.db")).expect("ledger");
    let mut stmt = conn
        .prepare("SELECT statement, lang FROM publications WHERE channel = 'site'")
        .expect("query");
    let recorded: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(recorded.len(), 6);
    for (id, lang) in &recorded {
        let (year, slug) = id.split_once('/').expect("id");
        assert!(
            root.join(format!("public/{lang}/{year}/{slug}/index.html"))
                .is_file(),
            "{id} {lang}"
        );
    }
    let again = ok(&herald(BIN, root, &["publish", "--now", AT_EMBARGO]));
    assert!(again.contains("nothing new"), "{again}");
}

#[test]
fn check_reports_and_exit_codes() {
    let dir = sample_project();
    let root = dir.path();
    let out = ok(&herald(BIN, root, &["check"]));
    assert!(
        out.contains("6 statement files (4 statements) valid"),
        "{out}"
    );
    let bad = herald(BIN, root, &["publish", "--now", "2027-07-30T09:00:00"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
}

#[test]
fn pdf_and_feeds_can_be_switched_off() {
    let dir = sample_project();
    let root = dir.path();
    let toml = root.join("content/herald.toml");
    let mut text = fs::read_to_string(&toml).expect("herald.toml");
    text.push_str("\n[pdf]\nenabled = false\n\n[feed]\nenabled = false\n");
    fs::write(&toml, text).expect("write");
    add_desk_subscriber(BIN, root);
    let out = ok(&herald(BIN, root, &["publish", "--now", AT_EMBARGO]));
    assert!(!out.contains("  pdf "), "{out}");
    assert!(!out.contains("  feed "), "{out}");
    assert!(out.contains("  site "), "{out}");
    let public = snapshot(&root.join("public"));
    assert!(public.iter().any(|(p, _, _)| p.ends_with(".html")));
    for (path, bytes, _) in &public {
        assert!(
            !path.ends_with(".pdf") && !path.ends_with("atom.xml") && !path.ends_with(".json"),
            "{path} written"
        );
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(".pdf\""), "{path} links a PDF");
        assert!(
            !text.contains("application/atom+xml"),
            "{path} links a feed"
        );
    }
    let links_pdf = |root: &Path| {
        let mails = snapshot(&root.join("outbox"));
        assert!(!mails.is_empty(), "the lifted statement is mailed");
        mails
            .iter()
            .any(|(_, bytes, _)| String::from_utf8_lossy(bytes).contains(".pdf"))
    };
    assert!(!links_pdf(root), "a bulletin links a PDF");
    // The same check finds the link when PDFs are on.
    let control = sample_project();
    add_desk_subscriber(BIN, control.path());
    ok(&herald(
        BIN,
        control.path(),
        &["publish", "--now", AT_EMBARGO],
    ));
    assert!(links_pdf(control.path()));
    // Nor are they counted as published: `status` shows no PDF or feed channel.
    let status = ok(&herald(BIN, root, &["status", "--now", AT_EMBARGO]));
    assert!(!status.contains("pdf"), "{status}");
}
