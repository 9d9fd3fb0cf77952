//! Subscribers as CSV: `import_csv` (every bad row reported, all rows or none)
//! and `export_csv` (with the consent history; no cell a spreadsheet would run
//! as a formula). `herald subscribers import/export` call them.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use herald_content::Config;

use crate::store::{Event, MailStore, NewSubscriber, Status, StoreError, Subscriber};

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: nothing imported, {} bad row(s):\n{}", .rows.len(), .rows.iter().map(|r| format!("  line {}: {}", r.line, r.message)).collect::<Vec<_>>().join("\n"))]
    Import { path: String, rows: Vec<RowError> },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write the CSV: {0}")]
    Write(#[source] csv::Error),
}

/// One bad row of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

const COLUMNS: [&str; 9] = [
    "address",
    "name",
    "lang",
    "topics",
    "status",
    "consent_at",
    "consent_source",
    "consent_ip",
    "history",
];

/// What a spreadsheet takes for the start of a formula (or, for tab and carriage
/// return, hides before one).
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell a spreadsheet shows as text: a leading `'` before a formula start.
fn neutral(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(FORMULA_START) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// The cell an export wrote, without the `'` [`neutral`] added.
fn unneutral(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_START) => rest,
        _ => cell,
    }
}

/// A consent history in one cell, oldest first: `time kind via source from ip (detail); ...`.
fn history(events: &[&Event]) -> String {
    events
        .iter()
        .map(|e| {
            let mut s = format!("{} {}", crate::store::ts(e.at), e.kind);
            if !e.source.is_empty() {
                s.push_str(&format!(" via {}", e.source));
            }
            if let Some(ip) = &e.ip {
                s.push_str(&format!(" from {ip}"));
            }
            if !e.detail.is_empty() {
                s.push_str(&format!(" ({})", e.detail));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Import subscribers from CSV: all rows or none. `name` names the file in
/// messages and in each subscriber's consent source.
pub fn import_csv(
    store: &MailStore,
    config: &Config,
    mut input: impl Read,
    name: &str,
    now: DateTime<Utc>,
) -> Result<usize, CsvError> {
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|source| CsvError::Read {
            path: name.to_string(),
            source,
        })?;
    // The physical line a record starts on, whatever the line endings: with CRLF
    // the reader's position can point at the previous line's `\n`.
    let line_at = |p: Option<&csv::Position>| {
        p.map_or(0, |p| {
            let mut at = usize::try_from(p.byte())
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
                at += 1;
            }
            1 + memchr::memchr_iter(b'\n', &bytes[..at]).count() as u64
        })
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let bad_file = |message: String| CsvError::Import {
        path: name.to_string(),
        rows: vec![RowError { line: 1, message }],
    };
    let headers = reader
        .headers()
        .map_err(|e| bad_file(e.to_string()))?
        .clone();
    let mut index = [None; COLUMNS.len()];
    for (i, h) in headers.iter().enumerate() {
        match COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(h)) {
            Some(c) => index[c] = Some(i),
            None => {
                return Err(bad_file(format!(
                    "unknown column {h:?}; columns are {}",
                    COLUMNS.join(", ")
                )));
            }
        }
    }
    if index[0].is_none() {
        return Err(bad_file("no `address` column in the header row".into()));
    }
    let existing: HashSet<String> = store
        .subscribers(None)?
        .into_iter()
        .map(|s| s.address.to_lowercase())
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = line_at(e.position());
                errors.push(RowError {
                    line,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let line = line_at(record.position());
        let field =
            |c: usize| unneutral(index[c].and_then(|i| record.get(i)).unwrap_or("")).to_string();
        let mut fail = |message: String| errors.push(RowError { line, message });
        let status = match field(4).as_str() {
            "" => Status::Confirmed,
            s => match Status::from_str(s) {
                Ok(s) => s,
                Err(e) => {
                    fail(e.to_string());
                    continue;
                }
            },
        };
        let consent_at = match field(5).as_str() {
            "" => None,
            s => match DateTime::parse_from_rfc3339(s) {
                Ok(d) => Some(d.with_timezone(&Utc)),
                Err(_) => {
                    fail(format!(
                        "consent_at {s:?} is not an RFC 3339 time like 2024-05-01T10:00:00Z"
                    ));
                    continue;
                }
            },
        };
        let source = match field(6) {
            s if s.is_empty() => format!("import:{name}"),
            s => s,
        };
        let new = NewSubscriber {
            address: field(0),
            name: field(1),
            lang: match field(2) {
                l if l.is_empty() => config.default_language.clone(),
                l => l,
            },
            topics: field(3)
                .split([' ', ';', '|'])
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            status,
            consent_source: source,
            consent_ip: Some(field(7)).filter(|s| !s.is_empty()),
            consent_at,
        };
        match new.validate(&config.languages) {
            Ok(new) => {
                let key = new.address.to_lowercase();
                if existing.contains(&key) {
                    fail(format!("{} is already subscribed", new.address));
                } else if !seen.insert(key) {
                    fail(format!("{} appears twice in the file", new.address));
                } else {
                    rows.push(new);
                }
            }
            Err(e) => fail(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(CsvError::Import {
            path: name.to_string(),
            rows: errors,
        });
    }
    Ok(store.add_subscribers(&rows, now)?)
}

/// Every subscriber as CSV, in the columns [`import_csv`] reads, with their
/// consent history; no cell starts like a spreadsheet formula.
pub fn export_csv(store: &MailStore, output: impl Write) -> Result<usize, CsvError> {
    let mut w = csv::Writer::from_writer(output);
    w.write_record(COLUMNS).map_err(CsvError::Write)?;
    let all: Vec<Subscriber> = store.subscribers(None)?;
    let events = store.events(None)?;
    let mut by_subscriber: std::collections::HashMap<i64, Vec<&Event>> = Default::default();
    for e in &events {
        by_subscriber.entry(e.subscriber_id).or_default().push(e);
    }
    for s in &all {
        let history = history(by_subscriber.get(&s.id).map_or(&[][..], Vec::as_slice));
        w.write_record([
            neutral(&s.address).as_ref(),
            &neutral(&s.name),
            &neutral(&s.lang),
            &neutral(&s.topics.join(" ")),
            s.status.as_str(),
            &s.consent_at.map(crate::store::ts).unwrap_or_default(),
            &neutral(&s.consent_source),
            &neutral(s.consent_ip.as_deref().unwrap_or("")),
            &neutral(&history),
        ])
        .map_err(CsvError::Write)?;
    }
    w.flush().map_err(|e| CsvError::Write(e.into()))?;
    Ok(all.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn config() -> Config {
        Config::parse(
            std::path::Path::new("herald.toml"),
            "title = \"T\"\nbase_url = \"https://ex.org/\"\nlanguages = [\"en\", \"ru\", \"kk\"]\ndefault_language = \"en\"\ntime_zone = \"UTC\"\n[organization]\nname = \"Org\"\n",
        )
        .expect("config")
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn import_reports_every_bad_row_and_imports_none() {
        let store = MailStore::in_memory().expect("store");
        let csv = "address,name,lang,topics\n\
                   good@example.org,Good,en,\n\
                   not-an-address,Bad,en,\n\
                   other@example.org,X,fr,\n\
                   good@example.org,Twice,ru,\n\
                   t@example.org,T,kk,Bad Topic\n";
        let e =
            import_csv(&store, &config(), csv.as_bytes(), "list.csv", now()).expect_err("bad file");
        let CsvError::Import { rows, .. } = &e else {
            panic!("{e}")
        };
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6], "{e}");
        let text = e.to_string();
        assert!(text.contains("nothing imported, 4 bad row(s)"), "{text}");
        assert!(
            text.contains("\"not-an-address\" is not a valid email address"),
            "{text}"
        );
        assert!(text.contains("appears twice"), "{text}");
        assert!(store.subscribers(None).expect("list").is_empty());
    }

    #[test]
    fn import_export_round_trip() {
        let store = MailStore::in_memory().expect("store");
        let csv = "address,name,lang,topics,status,consent_at\n\
                   a@example.org,\"Doe, Jane\",ru,migration health,confirmed,2020-01-01T00:00:00Z\n\
                   b@example.org,,,,pending,\n";
        let n = import_csv(&store, &config(), csv.as_bytes(), "list.csv", now()).expect("import");
        assert_eq!(n, 2);
        let a = store
            .subscriber_by_address("a@example.org")
            .expect("q")
            .expect("a");
        assert_eq!(a.name, "Doe, Jane");
        assert_eq!(a.topics, vec!["health", "migration"]);
        assert_eq!(a.consent_source, "import:list.csv");
        assert_eq!(
            a.consent_at,
            Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).single()
        );
        let b = store
            .subscriber_by_address("b@example.org")
            .expect("q")
            .expect("b");
        assert_eq!(
            (b.lang.as_str(), b.status, b.consent_at),
            ("en", Status::Pending, None)
        );
        let mut out = Vec::new();
        export_csv(&store, &mut out).expect("export");
        let other = MailStore::in_memory().expect("store");
        import_csv(&other, &config(), out.as_slice(), "export.csv", now()).expect("reimport");
        let again = other
            .subscriber_by_address("a@example.org")
            .expect("q")
            .expect("a");
        assert_eq!(
            (again.name, again.topics, again.consent_at),
            (a.name, a.topics, a.consent_at)
        );
        // A second import of the same file is refused as a whole.
        assert!(import_csv(&store, &config(), csv.as_bytes(), "list.csv", now()).is_err());
    }

    #[test]
    fn crlf_import_reports_physical_lines() {
        let store = MailStore::in_memory().expect("store");
        let csv = "address,name\r\ngood@example.org,G\r\nbad,B\r\n\"x@example.org\",\"two\r\nlines\"\r\nworse,W\r\n";
        let e = import_csv(&store, &config(), csv.as_bytes(), "crlf.csv", now()).expect_err("bad");
        let CsvError::Import { rows, .. } = &e else {
            panic!("{e}")
        };
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        // The third bad row's name spans lines 4 and 5.
        assert_eq!(lines, vec![3, 4, 6], "{e}");
    }

    #[test]
    fn export_neutralizes_formulas_and_shows_the_history() {
        let store = MailStore::in_memory().expect("store");
        let csv = "address,name,consent_source\n\
                   -dash@example.org,=cmd|' /C calc'!A0,@SUM(1+1)\n\
                   plain@example.org,+1 555,cli\n";
        import_csv(&store, &config(), csv.as_bytes(), "list.csv", now()).expect("import");
        let mut out = Vec::new();
        export_csv(&store, &mut out).expect("export");
        let text = String::from_utf8(out.clone()).expect("utf8");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        for record in reader.records() {
            let record = record.expect("record");
            for cell in record.iter() {
                assert!(!cell.starts_with(FORMULA_START), "{cell:?} in {text}");
            }
        }
        assert!(text.contains("'=cmd|' /C calc'!A0"), "{text}");
        assert!(text.contains("'-dash@example.org"), "{text}");
        assert!(
            text.contains("2026-03-01T00:00:00Z subscribe via @SUM(1+1) (added as confirmed)"),
            "{text}"
        );
        assert!(text.contains("confirm via cli"), "{text}");
        // Imported again, the cells are what they were.
        let other = MailStore::in_memory().expect("store");
        import_csv(&other, &config(), out.as_slice(), "export.csv", now()).expect("reimport");
        let s = other
            .subscriber_by_address("-dash@example.org")
            .expect("q")
            .expect("row");
        assert_eq!(s.name, "=cmd|' /C calc'!A0");
        assert_eq!(s.consent_source, "@SUM(1+1)");
    }
}
