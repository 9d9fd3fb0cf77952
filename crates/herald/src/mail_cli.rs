//! `herald subscribers ...` and `herald mail ...`: the clap commands and their
//! output; the work is herald-mail's (`MailStore`, `subscribers_csv`, `inbound`).

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use herald_content::Config;
use herald_mail::store::{BulletinState, MailStore, NewSubscriber, Status, StoreError};
use herald_mail::subscribers_csv::{CsvError, export_csv, import_csv};

/// What stops a subscribers or mail command.
#[derive(Debug, thiserror::Error)]
pub enum MailCliError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error("cannot write: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot create {}: {source}", .path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
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
    /// status, consent_at, consent_source, consent_ip, history; only address is
    /// required, history is not read). Every bad row is reported and nothing is
    /// imported from a bad file.
    Import { file: PathBuf },
    /// Export every subscriber as CSV (to a file, or standard output), with their
    /// consent history. A cell that a spreadsheet would run as a formula gets a
    /// leading `'` (which import takes off again).
    Export { file: Option<PathBuf> },
}

/// `herald mail ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum MailCommand {
    /// Bulletins by state, and every failed or ambiguous one.
    Status,
    /// Read bounces, complaints and unsubscribes: one message on standard input
    /// (a Postfix pipe or an alias), or every message in a Maildir's new/.
    /// Exit 0 when handled or kept, 75 (EX_TEMPFAIL) when the MTA should retry.
    Receive {
        /// Handle every message in DIR/new/ and move each to DIR/cur/.
        #[arg(long, value_name = "DIR")]
        maildir: Option<PathBuf>,
        /// The envelope recipient, as the MTA gives it (Postfix: ${recipient}).
        #[arg(long)]
        recipient: Option<String>,
        /// Seconds to wait for standard input to end.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Queue again bulletins the server may already have (reported ambiguous).
    Retry {
        /// Required: these recipients may get the message twice.
        #[arg(long)]
        ambiguous: bool,
    },
}

/// Run a subscribers command; human output goes to `out`.
pub fn run_subscribers(
    cmd: &SubscribersCommand,
    store: &MailStore,
    config: &Config,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<(), MailCliError> {
    match cmd {
        SubscribersCommand::Add {
            address,
            name,
            lang,
            topics,
            status,
            source,
        } => {
            let status =
                Status::from_str(status).map_err(|e| MailCliError::Invalid(e.to_string()))?;
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
            Ok(writeln!(
                out,
                "added {} ({}, {})",
                s.address, s.lang, s.status
            )?)
        }
        SubscribersCommand::Remove { address } => {
            if store.remove_subscriber(address)? {
                Ok(writeln!(out, "removed {address}")?)
            } else {
                Err(StoreError::NotFound(address.clone()).into())
            }
        }
        SubscribersCommand::List { status } => {
            let status = status
                .as_deref()
                .map(Status::from_str)
                .transpose()
                .map_err(|e| MailCliError::Invalid(e.to_string()))?;
            // The last bounce, complaint or unsubscribe that came by mail, per subscriber.
            let mut by_mail: std::collections::HashMap<i64, String> = Default::default();
            for e in store.events(None)? {
                if e.source.starts_with("mail") {
                    by_mail.insert(
                        e.subscriber_id,
                        format!(
                            "{} {}{}",
                            ts(e.at),
                            e.kind,
                            e.status_code.map(|c| format!(" {c}")).unwrap_or_default()
                        ),
                    );
                }
            }
            for s in store.subscribers(status)? {
                let last = by_mail.remove(&s.id).unwrap_or_default();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{last}",
                    s.address,
                    s.lang,
                    s.status,
                    if s.topics.is_empty() {
                        "*".to_string()
                    } else {
                        s.topics.join(",")
                    },
                    s.name
                )?;
            }
            Ok(())
        }
        SubscribersCommand::Import { file } => {
            let path = file.display().to_string();
            let f = std::fs::File::open(file).map_err(|source| CsvError::Read {
                path: path.clone(),
                source,
            })?;
            let n = import_csv(store, config, f, &path, now)?;
            Ok(writeln!(out, "imported {n} subscriber(s) from {path}")?)
        }
        SubscribersCommand::Export { file } => match file {
            Some(p) => {
                let f = std::fs::File::create(p).map_err(|source| MailCliError::Create {
                    path: p.clone(),
                    source,
                })?;
                let n = export_csv(store, f)?;
                Ok(writeln!(
                    out,
                    "exported {n} subscriber(s) to {}",
                    p.display()
                )?)
            }
            None => Ok(export_csv(store, &mut *out).map(|_| ())?),
        },
    }
}

/// Run a mail command.
/// `herald mail receive`: the exit code (sysexits: 0 handled or kept, 75 try again).
pub fn run_receive(
    cmd: &MailCommand,
    store: &MailStore,
    ctx: &herald_mail::inbound::Inbound<'_>,
    out: &mut dyn Write,
) -> Result<u8, herald_mail::inbound::InboundError> {
    let MailCommand::Receive {
        maildir,
        recipient,
        timeout,
    } = cmd
    else {
        return Ok(0);
    };
    match maildir {
        Some(dir) => {
            let r = herald_mail::inbound::maildir(store, ctx, dir)?;
            let kinds = r
                .by_kind
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "{} message(s) from {} ({} seen before){}{}",
                r.handled,
                dir.display(),
                r.duplicates,
                if kinds.is_empty() { "" } else { ": " },
                kinds
            );
        }
        None => {
            let input = herald_mail::inbound::read_bounded(
                std::io::stdin(),
                std::time::Duration::from_secs((*timeout).max(1)),
            );
            let h = herald_mail::inbound::handle(store, ctx, &input, recipient.as_deref())?;
            let _ = writeln!(
                out,
                "{}{}{}{}",
                h.verdict.kind,
                h.status
                    .map(|s| format!(": subscriber now {s}"))
                    .unwrap_or_default(),
                if h.duplicate {
                    " (seen before: nothing done)"
                } else {
                    ""
                },
                h.kept
                    .map(|p| format!(", kept as {}", p.display()))
                    .unwrap_or_default()
            );
        }
    }
    Ok(0)
}

pub fn run_mail(
    cmd: &MailCommand,
    store: &MailStore,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<(), MailCliError> {
    match cmd {
        MailCommand::Status => {
            for (state, n) in store.bulletin_counts()? {
                writeln!(out, "{state}\t{n}")?;
            }
            let (deferred, next) = store.deferred()?;
            if deferred > 0 {
                let next = next.map(ts).unwrap_or_default();
                writeln!(out, "deferred\t{deferred}\tnext attempt {next}")?;
            }
            for state in [BulletinState::Failed, BulletinState::Ambiguous] {
                for b in store.bulletins(Some(state))? {
                    writeln!(
                        out,
                        "{state}\t{}\t{}\t{}",
                        b.label(),
                        b.address,
                        b.last_error.unwrap_or_default()
                    )
                    ?;
                }
            }
            for (kind, n) in store.inbound_counts()? {
                writeln!(out, "inbound\t{kind}\t{n}")?;
            }
            // What came back by mail: bounces, complaints, unsubscribes.
            let addresses: std::collections::HashMap<i64, String> = store
                .subscribers(None)?
                .into_iter()
                .map(|s| (s.id, s.address))
                .collect();
            for e in store.events(None)?.iter().filter(|e| e.source.starts_with("mail")) {
                writeln!(
                    out,
                    "event\t{}\t{}\t{}\tbulletin {}\t{}\t{}\t{}",
                    ts(e.at),
                    e.kind,
                    addresses.get(&e.subscriber_id).map_or("(removed)", |a| a),
                    e.bulletin_id.map_or("-".to_string(), |b| b.to_string()),
                    e.status_code.as_deref().unwrap_or("-"),
                    e.detail,
                    e.source
                )
                ?;
            }
            Ok(())
        }
        MailCommand::Receive { .. } => Err(MailCliError::Invalid(
            "`mail receive` needs the project's settings and secret: run it through the herald binary"
                .into(),
        )),
        MailCommand::Retry { ambiguous } => {
            if !ambiguous {
                return Err(MailCliError::Invalid(
                    "say --ambiguous: those recipients may receive the bulletin twice".into(),
                ));
            }
            let n = store.retry_ambiguous(now)?;
            writeln!(
                out,
                "{n} ambiguous bulletin(s) queued again; they go out on the next publish"
            )?;
            Ok(())
        }
    }
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
