//! The email digest: with `[schedule] digest`, publishing mails nothing per
//! statement; each digest slot sends every subscriber one message listing what was
//! published since, in their language, once.

use std::path::Path;

use herald_e2e::{herald, sample_project, snapshot};

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");

/// (To, Subject, Content-Language, text body) of every message in the outbox.
fn outbox(root: &Path) -> Vec<(String, String, String, String)> {
    let mut v: Vec<_> = snapshot(&root.join("outbox"))
        .into_iter()
        .map(|(name, bytes, _)| {
            let m = mail_parser::MessageParser::default()
                .parse(&bytes)
                .unwrap_or_else(|| panic!("{name} does not parse"));
            let to = m
                .to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_string();
            let lang = m
                .header_raw("Content-Language")
                .unwrap_or_default()
                .trim()
                .to_string();
            (
                to,
                m.subject().unwrap_or_default().to_string(),
                lang,
                m.body_text(0).unwrap_or_default().into_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn digest_goes_out_once_per_slot_with_what_is_new() {
    let dir = sample_project();
    let root = dir.path();
    let toml = root.join("content/herald.toml");
    let text = std::fs::read_to_string(&toml).expect("herald.toml");
    // Mondays at 09:00 in Almaty (UTC+5): 04:00 UTC.
    let text = text.replace(
        "weekly = \"0 9 * * MON\"",
        "digest = \"0 9 * * MON\"\nweekly = \"0 9 * * MON\"",
    );
    std::fs::write(&toml, text).expect("write herald.toml");
    // Readers since 2010, so every sample statement is after their consent.
    let csv = root.join("readers.csv");
    std::fs::write(
        &csv,
        "address,lang,topics,status,consent_at,consent_source\n\
         en@example.org,en,,confirmed,2010-01-01T00:00:00Z,test\n\
         ru@example.org,ru,,confirmed,2010-01-01T00:00:00Z,test\n\
         health@example.org,en,health,confirmed,2010-01-01T00:00:00Z,test\n\
         labour@example.org,kk,labour,confirmed,2010-01-01T00:00:00Z,test\n",
    )
    .expect("csv");
    ok(&herald(
        BIN,
        root,
        &["subscribers", "import", csv.to_str().expect("utf-8")],
    ));

    // Sunday: the first run ever catches up last Monday's slot, once.
    let out = ok(&herald(
        BIN,
        root,
        &["publish", "--now", "2026-11-29T12:00:00Z"],
    ));
    assert!(
        out.contains("ran digest for slot 2026-11-23T04:00:00Z"),
        "{out}"
    );
    let first = outbox(root);
    assert_eq!(first.len(), 4, "{first:#?}");
    let by = |to: &str| first.iter().find(|m| m.0 == to).expect(to).clone();
    let en = by("en@example.org");
    assert_eq!(en.1, "UN Kazakhstan: 3 new statements");
    assert_eq!(en.2, "en");
    // Newest first, every statement once, links to the page and the PDF.
    let labour = en.3.find("Labour migration").expect("2016 statement");
    let trafficking = en.3.find("World Day against Trafficking").expect("2014");
    assert!(labour < trafficking, "{}", en.3);
    assert!(en.3.contains(
        "https://statements.example.org/en/2014/world-day-against-trafficking/world-day-against-trafficking.en.pdf"
    ));
    let ru = by("ru@example.org");
    assert_eq!(ru.1, "UN Kazakhstan: новые заявления (3)");
    assert_eq!(ru.2, "ru");
    assert!(
        ru.3.contains("/ru/2014/world-day-against-trafficking/"),
        "{}",
        ru.3
    );
    // Topics filter: only the health statement, and the kk reader gets English
    // where no Kazakh translation exists.
    let health = by("health@example.org");
    assert_eq!(health.1, "UN Kazakhstan: 1 new statement");
    assert!(health.3.contains("/en/2015/migrant-workers-health/"));
    assert!(!health.3.contains("/2014/"));
    let kk = by("labour@example.org");
    assert_eq!(kk.1, "UN Kazakhstan: жаңа мәлімдемелер (1)");
    assert!(
        kk.3.contains("/en/2016/labour-migration-in-figures/"),
        "{}",
        kk.3
    );

    // Again the same day, and at the next slot with nothing new: no message.
    ok(&herald(
        BIN,
        root,
        &["publish", "--now", "2026-11-29T13:00:00Z"],
    ));
    let out = ok(&herald(
        BIN,
        root,
        &["publish", "--now", "2026-11-30T04:00:00Z"],
    ));
    assert!(
        out.contains("ran digest for slot 2026-11-30T04:00:00Z"),
        "{out}"
    );
    assert_eq!(outbox(root).len(), 4);

    // The 2027 statement lifts on a Friday: published at once, but mailed by the
    // next Monday's digest only, and only to those whose topics match.
    // (A run the day before catches up the Mondays missed since, once, with nothing new.)
    let out = ok(&herald(
        BIN,
        root,
        &["publish", "--now", "2027-07-29T12:00:00Z"],
    ));
    assert!(
        out.contains("ran digest for slot 2027-07-26T04:00:00Z"),
        "{out}"
    );
    assert_eq!(outbox(root).len(), 4);
    let out = ok(&herald(
        BIN,
        root,
        &["publish", "--now", "2027-07-30T04:00:00Z"],
    ));
    assert!(!out.contains("ran digest"), "{out}");
    assert!(
        root.join("public/en/2027/world-day-against-trafficking-2027/index.html")
            .is_file()
    );
    assert_eq!(outbox(root).len(), 4, "no bulletin outside the digest");
    let status = ok(&herald(
        BIN,
        root,
        &["status", "--now", "2027-07-30T04:00:00Z"],
    ));
    assert!(status.contains("bulletins: 4 sent"), "{status}");
    assert!(
        status.contains("digest: 1 statement(s) wait for the next digest, 2027-08-02 04:00 UTC"),
        "{status}"
    );
    let out = ok(&herald(
        BIN,
        root,
        &["publish", "--now", "2027-08-02T04:00:00Z"],
    ));
    assert!(
        out.contains("ran digest for slot 2027-08-02T04:00:00Z"),
        "{out}"
    );
    let all = outbox(root);
    let new: Vec<_> = all.iter().filter(|m| !first.contains(m)).collect();
    let mut to: Vec<&str> = new.iter().map(|m| m.0.as_str()).collect();
    to.sort();
    assert_eq!(to, ["en@example.org", "ru@example.org"], "{new:#?}");
    for m in &new {
        assert!(
            m.3.contains("/en/2027/world-day-against-trafficking-2027/"),
            "{}",
            m.3
        );
        assert!(
            !m.3.contains("/2016/"),
            "an old statement came again: {}",
            m.3
        );
    }
    // A later run at the same instant sends nothing more.
    ok(&herald(
        BIN,
        root,
        &["publish", "--now", "2027-08-02T04:00:00Z"],
    ));
    assert_eq!(outbox(root).len(), 6);
}

#[test]
fn a_correction_is_mailed_only_when_configured() {
    let dir = sample_project();
    let root = dir.path();
    let csv = root.join("readers.csv");
    std::fs::write(
        &csv,
        "address,lang,status,consent_at\nen@example.org,en,confirmed,2010-01-01T00:00:00Z\n",
    )
    .expect("csv");
    ok(&herald(
        BIN,
        root,
        &["subscribers", "import", csv.to_str().expect("utf-8")],
    ));
    ok(&herald(
        BIN,
        root,
        &["publish", "--now", "2026-11-29T12:00:00Z"],
    ));
    assert_eq!(outbox(root).len(), 3, "one bulletin per statement");

    let file = root.join("content/statements/2015/migrant-workers-health.en.md");
    let original = std::fs::read_to_string(&file).expect("read");
    let edit = |updated: &str, extra: &str| {
        let text = original.replacen(
            "updated = 2015-12-21T15:30:00+06:00",
            &format!("updated = {updated}"),
            1,
        );
        assert_ne!(text, original, "the sample's `updated` line moved");
        std::fs::write(&file, format!("{text}\n{extra}\n")).expect("write");
    };
    // A correction without `[mail] corrections`: the page changes, no mail.
    edit(
        "2026-11-30T10:00:00+05:00",
        "Corrected: the figures cover 2014 and 2015.",
    );
    ok(&herald(
        BIN,
        root,
        &["publish", "--now", "2026-11-30T12:00:00Z"],
    ));
    let page =
        std::fs::read_to_string(root.join("public/en/2015/migrant-workers-health/index.html"))
            .expect("page");
    assert!(page.contains("the figures cover 2014 and 2015"));
    assert_eq!(outbox(root).len(), 3);

    let toml = root.join("content/herald.toml");
    let mut text = std::fs::read_to_string(&toml).expect("herald.toml");
    text.push_str("\n[mail]\ncorrections = true\n");
    std::fs::write(&toml, text).expect("write herald.toml");
    edit(
        "2026-12-01T10:00:00+05:00",
        "Corrected again: the figures cover 2013 to 2015.",
    );
    ok(&herald(
        BIN,
        root,
        &["publish", "--now", "2026-12-01T12:00:00Z"],
    ));
    let mails = outbox(root);
    assert_eq!(mails.len(), 4, "{mails:#?}");
    let corrections: Vec<_> = mails
        .iter()
        .filter(|m| m.1.starts_with("Correction: "))
        .collect();
    assert_eq!(corrections.len(), 1, "{mails:#?}");
    assert_eq!(
        corrections[0].1,
        "Correction: Statement on access to health care for migrant workers"
    );
    assert!(corrections[0].3.contains("the figures cover 2013 to 2015"));
    // A typo fix that keeps `updated` mails nothing.
    edit(
        "2026-12-01T10:00:00+05:00",
        "Corrected again: the figures cover 2013 to 2015 .",
    );
    ok(&herald(
        BIN,
        root,
        &["publish", "--now", "2026-12-01T13:00:00Z"],
    ));
    assert_eq!(outbox(root).len(), 4);
}
