//! One localisation: a bulletin, the statement's page and its PDF say the same
//! date in the same words, in every language of the sample site (en, ru, kk).
//! The real CLI publishes; the PDF is read back with pdftotext (poppler-utils).

use std::path::Path;
use std::process::Command;

use herald_e2e::{herald, sample_project, snapshot};

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");

/// The date of the 2014 statement (2014-07-30T09:00:00+06:00) as each language writes it.
const DATES: [(&str, &str); 3] = [
    ("en", "30 July 2014"),
    ("ru", "30 июля 2014 г."),
    ("kk", "2014 жылғы 30 шілде"),
];

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs of whitespace as one space (pdftotext lays text out with its own spacing).
fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn pdf_text(path: &Path) -> String {
    let out = Command::new("pdftotext")
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext (apt-get install poppler-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn a_bulletin_the_page_and_the_pdf_show_the_same_date_in_every_language() {
    let dir = sample_project();
    let root = dir.path();
    let csv = root.join("readers.csv");
    std::fs::write(
        &csv,
        "address,lang,topics,status,consent_at,consent_source\n\
         en@example.org,en,,confirmed,2010-01-01T00:00:00Z,test\n\
         ru@example.org,ru,,confirmed,2010-01-01T00:00:00Z,test\n\
         kk@example.org,kk,,confirmed,2010-01-01T00:00:00Z,test\n",
    )
    .expect("csv");
    ok(&herald(
        BIN,
        root,
        &["subscribers", "import", csv.to_str().expect("utf-8")],
    ));
    // The morning after the 2014 statement: it alone is published and mailed.
    ok(&herald(
        BIN,
        root,
        &["publish", "--now", "2014-07-31T06:00:00Z"],
    ));
    let mails: Vec<(String, String)> = snapshot(&root.join("outbox"))
        .into_iter()
        .map(|(name, bytes, _)| {
            let m = mail_parser::MessageParser::default()
                .parse(&bytes)
                .unwrap_or_else(|| panic!("{name} does not parse"));
            let lang = m
                .header_raw("Content-Language")
                .unwrap_or_default()
                .trim()
                .to_string();
            (lang, m.body_text(0).unwrap_or_default().into_owned())
        })
        .collect();
    assert_eq!(mails.len(), 3, "one bulletin per reader");
    let stem = "2014/world-day-against-trafficking";
    for (lang, date) in DATES {
        let bulletin = &mails
            .iter()
            .find(|(l, _)| l == lang)
            .unwrap_or_else(|| panic!("no {lang} bulletin"))
            .1;
        // The line under the title: "Place, date".
        let line = bulletin
            .lines()
            .find(|l| l.ends_with(date))
            .unwrap_or_else(|| panic!("{lang} bulletin without {date:?}:\n{bulletin}"));
        assert!(line.contains(", "), "{lang}: {line}");
        assert!(!bulletin.contains("30.07.2014"), "{lang}: {bulletin}");
        let page = std::fs::read_to_string(root.join(format!("public/{lang}/{stem}/index.html")))
            .expect("page");
        assert!(page.contains(date), "{lang} page without {date:?}");
        let pdf = root.join(format!(
            "public/{lang}/{stem}/world-day-against-trafficking.{lang}.pdf"
        ));
        let text = squeeze(&pdf_text(&pdf));
        assert!(
            text.contains(date),
            "{lang} PDF without {date:?}:\n{}",
            &text[..text.len().min(600)]
        );
    }
}
