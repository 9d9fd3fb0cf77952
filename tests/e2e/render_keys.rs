//! Render keys end to end: an edit rewrites only what shows the edited statement,
//! a missing or hand-edited output is made again, and `--rebuild` renders all.

use std::fs;
use std::process::Output;

use herald_e2e::{herald, sample_project, snapshot};

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");
const NOW: &str = "2026-01-01T00:00:00+06:00";

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The report's "N file(s) written" for one channel.
fn written(report: &str, channel: &str) -> usize {
    report
        .lines()
        .find(|l| l.trim_start().starts_with(channel))
        .and_then(|l| l.split("; ").nth(1))
        .and_then(|w| w.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {channel} line in {report}"))
}

#[test]
fn an_edit_renders_only_what_shows_the_statement_and_rebuild_renders_all() {
    let dir = sample_project();
    let root = dir.path();
    ok(&herald(BIN, root, &["publish", "--now", NOW, "--no-mail"]));
    let before = snapshot(&root.join("public"));

    // A sentence added to one statement's body.
    let file = root.join("content/statements/2016/labour-migration-in-figures.en.md");
    let text = fs::read_to_string(&file).expect("read") + "\nOne sentence more.\n";
    fs::write(&file, text).expect("write");
    let report = ok(&herald(BIN, root, &["publish", "--now", NOW, "--no-mail"]));
    assert_eq!(written(&report, "pdf"), 1, "{report}");
    let after = snapshot(&root.join("public"));
    let changed: Vec<&str> = after
        .iter()
        .filter(|(p, bytes, _)| !before.iter().any(|(q, b, _)| q == p && b == bytes))
        .map(|(p, _, _)| p.as_str())
        .collect();
    assert!(
        changed.contains(&"en/2016/labour-migration-in-figures/index.html"),
        "{changed:?}"
    );
    // Another statement's page and PDF were neither rewritten nor touched.
    for (p, bytes, mtime) in &before {
        if p.starts_with("en/2014/") && (p.ends_with(".pdf") || p.ends_with("index.html")) {
            let now = after.iter().find(|(q, ..)| q == p).expect("still there");
            assert_eq!((&now.1, now.2), (bytes, *mtime), "{p} was rewritten");
        }
    }

    // A page deleted by hand is made again, the same bytes.
    let page = root.join("public/en/2014/world-day-against-trafficking/index.html");
    let kept = fs::read(&page).expect("page");
    fs::remove_file(&page).expect("remove");
    ok(&herald(BIN, root, &["publish", "--now", NOW, "--no-mail"]));
    assert_eq!(fs::read(&page).expect("made again"), kept);

    // A page edited by hand keeps its key, so only --rebuild restores it.
    fs::write(&page, "edited by hand").expect("edit");
    ok(&herald(BIN, root, &["publish", "--now", NOW, "--no-mail"]));
    assert_eq!(fs::read(&page).expect("page"), b"edited by hand");
    let report = ok(&herald(
        BIN,
        root,
        &["publish", "--now", NOW, "--no-mail", "--rebuild"],
    ));
    assert_eq!(fs::read(&page).expect("page"), kept, "{report}");
    assert_eq!(
        written(&report, "pdf"),
        0,
        "same bytes, not rewritten: {report}"
    );
}

#[test]
fn an_edited_statement_is_read_again_despite_the_load_cache() {
    let dir = sample_project();
    let root = dir.path();
    ok(&herald(BIN, root, &["publish", "--now", NOW, "--no-mail"]));
    assert!(root.join(".herald/load-cache").is_file());
    let file = root.join("content/statements/2015/migrant-workers-health.en.md");
    let text = fs::read_to_string(&file).expect("read");
    assert!(text.contains("Migrant workers build the houses"));
    fs::write(
        &file,
        text.replace(
            "Migrant workers build the houses",
            "Seasonal workers build the houses",
        ),
    )
    .expect("write");
    ok(&herald(BIN, root, &["publish", "--now", NOW, "--no-mail"]));
    let page = fs::read_to_string(root.join("public/en/2015/migrant-workers-health/index.html"))
        .expect("page");
    assert!(page.contains("Seasonal workers build the houses"), "{page}");
    assert!(!page.contains("Migrant workers build the houses"));
}
