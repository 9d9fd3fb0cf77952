//! `herald subscribers ...` and `herald mail ...`: the commands the herald binary
//! mounts (`#[command(subcommand)]`) and runs with [`run_subscribers`] / [`run_mail`].

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use herald_content::Config;

use crate::store::{BulletinState, MailStore, NewSubscriber, Status, StoreError, Subscriber};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: nothing imported, {} bad row(s):\n{}", .rows.len(), .rows.iter().map(|r| format!("  line {}: {}", r.line, r.message)).collect::<Vec<_>>().join("\n"))]
    Import { path: String, rows: Vec<RowError> },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write: {0}")]
    Write(String),
    #[error("{0}")]
    Invalid(String),
}

/// One bad row of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

/// `herald subscribers ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SubscribersCommand {
    /// Add one subscriber. Confirmed by default: only add people who gave consent.
    Add {
        address: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Default: the site's default language.
        #[arg(long)]
        lang: Option<String>,
        /// Topics to receive (comma-separated); none: every statement.
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
        #[arg(long, default_value = "confirmed")]
        status: String,
        /// How consent was given, recorded with the subscriber.
        #[arg(long, default_value = "cli")]
        source: String,
    },
    /// Delete a subscriber and anything still queued for them.
    Remove { address: String },
    /// List subscribers (tab-separated).
    List {
        #[arg(long)]
        status: Option<String>,
    },
    /// Import a CSV file (header row; columns address, name, lang, topics,
    /// status, consent_at, consent_source, consent_ip; only address is required).
    /// Every bad row is reported and nothing is imported from a bad file.
    Import { file: PathBuf },
    /// Export every subscriber as CSV (to a file, or standard output).
    Export { file: Option<PathBuf> },
}

/// `herald mail ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum MailCommand {
    /// Bulletins by state, and every failed or ambiguous one.
    Status,
    /// Queue again bulletins the server may already have (reported ambiguous).
    Retry {
        /// Required: these recipients may get the message twice.
        #[arg(long)]
        ambiguous: bool,
    },
}

const COLUMNS: [&str; 8] = [
    "address",
    "name",
    "lang",
    "topics",
    "status",
    "consent_at",
    "consent_source",
    "consent_ip",
];

fn write_err(e: impl std::fmt::Display) -> CliError {
    CliError::Write(e.to_string())
}

/// Run a subscribers command; human output goes to `out`.
pub fn run_subscribers(
    cmd: &SubscribersCommand,
    store: &MailStore,
    config: &Config,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        SubscribersCommand::Add {
            address,
            name,
            lang,
            topics,
            status,
            source,
        } => {
            let status = Status::from_str(status).map_err(|e| CliError::Invalid(e.to_string()))?;
            let s = store.add_subscriber(
                NewSubscriber {
                    address: address.clone(),
                    name: name.clone(),
                    lang: lang
                        .clone()
                        .unwrap_or_else(|| config.default_language.clone()),
                    topics: topics
                        .iter()
                        .filter(|t| !t.trim().is_empty())
                        .cloned()
                        .collect(),
                    status,
                    consent_source: source.clone(),
                    consent_ip: None,
                    consent_at: None,
                },
                &config.languages,
                now,
            )?;
            writeln!(out, "added {} ({}, {})", s.address, s.lang, s.status).map_err(write_err)
        }
        SubscribersCommand::Remove { address } => {
            if store.remove_subscriber(address)? {
                writeln!(out, "removed {address}").map_err(write_err)
            } else {
                Err(StoreError::NotFound(address.clone()).into())
            }
        }
        SubscribersCommand::List { status } => {
            let status = status
                .as_deref()
                .map(Status::from_str)
                .transpose()
                .map_err(|e| CliError::Invalid(e.to_string()))?;
            for s in store.subscribers(status)? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    s.address,
                    s.lang,
                    s.status,
                    if s.topics.is_empty() {
                        "*".to_string()
                    } else {
                        s.topics.join(",")
                    },
                    s.name
                )
                .map_err(write_err)?;
            }
            Ok(())
        }
        SubscribersCommand::Import { file } => {
            let path = file.display().to_string();
            let f = std::fs::File::open(file).map_err(|source| CliError::Read {
                path: path.clone(),
                source,
            })?;
            let n = import_csv(store, config, f, &path, now)?;
            writeln!(out, "imported {n} subscriber(s) from {path}").map_err(write_err)
        }
        SubscribersCommand::Export { file } => match file {
            Some(p) => {
                let f = std::fs::File::create(p).map_err(write_err)?;
                let n = export_csv(store, f)?;
                writeln!(out, "exported {n} subscriber(s) to {}", p.display()).map_err(write_err)
            }
            None => export_csv(store, &mut *out).map(|_| ()),
        },
    }
}

/// Run a mail command.
pub fn run_mail(
    cmd: &MailCommand,
    store: &MailStore,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        MailCommand::Status => {
            for (state, n) in store.bulletin_counts()? {
                writeln!(out, "{state}\t{n}").map_err(write_err)?;
            }
            for state in [BulletinState::Failed, BulletinState::Ambiguous] {
                for b in store.bulletins(Some(state))? {
                    writeln!(
                        out,
                        "{state}\t{}\t{}\t{}",
                        b.statement_id,
                        b.address,
                        b.last_error.unwrap_or_default()
                    )
                    .map_err(write_err)?;
                }
            }
            Ok(())
        }
        MailCommand::Retry { ambiguous } => {
            if !ambiguous {
                return Err(CliError::Invalid(
                    "say --ambiguous: those recipients may receive the bulletin twice".into(),
                ));
            }
            let n = store.retry_ambiguous(now)?;
            writeln!(
                out,
                "{n} ambiguous bulletin(s) queued again; they go out on the next publish"
            )
            .map_err(write_err)
        }
    }
}

/// Import subscribers from CSV: all rows or none. `name` names the file in
/// messages and in each subscriber's consent source.
pub fn import_csv(
    store: &MailStore,
    config: &Config,
    input: impl Read,
    name: &str,
    now: DateTime<Utc>,
) -> Result<usize, CliError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let bad_file = |message: String| CliError::Import {
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
                let line = e.position().map_or(0, |p| p.line());
                errors.push(RowError {
                    line,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let field = |c: usize| {
            index[c]
                .and_then(|i| record.get(i))
                .unwrap_or("")
                .to_string()
        };
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
        return Err(CliError::Import {
            path: name.to_string(),
            rows: errors,
        });
    }
    Ok(store.add_subscribers(&rows, now)?)
}

/// Every subscriber as CSV, in the columns [`import_csv`] reads.
pub fn export_csv(store: &MailStore, output: impl Write) -> Result<usize, CliError> {
    let mut w = csv::Writer::from_writer(output);
    w.write_record(COLUMNS).map_err(write_err)?;
    let all: Vec<Subscriber> = store.subscribers(None)?;
    for s in &all {
        w.write_record([
            s.address.as_str(),
            s.name.as_str(),
            s.lang.as_str(),
            &s.topics.join(" "),
            s.status.as_str(),
            &s.consent_at.map(crate::store::ts).unwrap_or_default(),
            s.consent_source.as_str(),
            s.consent_ip.as_deref().unwrap_or(""),
        ])
        .map_err(write_err)?;
    }
    w.flush().map_err(write_err)?;
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
        let CliError::Import { rows, .. } = &e else {
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
    fn commands() {
        let store = MailStore::in_memory().expect("store");
        let mut out = Vec::new();
        let add = SubscribersCommand::Add {
            address: "x@example.org".into(),
            name: "X".into(),
            lang: Some("kk".into()),
            topics: vec!["migration".into()],
            status: "confirmed".into(),
            source: "cli".into(),
        };
        run_subscribers(&add, &store, &config(), now(), &mut out).expect("add");
        assert!(run_subscribers(&add, &store, &config(), now(), &mut out).is_err());
        run_subscribers(
            &SubscribersCommand::List { status: None },
            &store,
            &config(),
            now(),
            &mut out,
        )
        .expect("list");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.contains("added x@example.org (kk, confirmed)"),
            "{text}"
        );
        assert!(
            text.contains("x@example.org\tkk\tconfirmed\tmigration\tX"),
            "{text}"
        );
        let mut out = Vec::new();
        let rm = SubscribersCommand::Remove {
            address: "x@example.org".into(),
        };
        run_subscribers(&rm, &store, &config(), now(), &mut out).expect("remove");
        assert!(run_subscribers(&rm, &store, &config(), now(), &mut out).is_err());
        assert!(
            run_mail(
                &MailCommand::Retry { ambiguous: false },
                &store,
                now(),
                &mut out
            )
            .is_err()
        );
    }
}
