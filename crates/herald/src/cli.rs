//! The command line shared by the `herald` binary and `cargo xtask`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::pipeline::{PublishOptions, PublishReport};
use crate::{Error, Paths, exit};

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Publish official statements to the web, feeds, PDF and mail, each exactly once"
)]
pub struct Cli {
    /// Project root: the folder that holds `content/` (default: found from the current folder up).
    #[arg(long, global = true, env = "HERALD_ROOT")]
    pub root: Option<PathBuf>,
    /// More detail on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate herald.toml and every statement; report every problem.
    Check,
    /// Publish everything due that has not been published yet.
    Publish {
        /// Publish as of this instant (RFC 3339 with offset), instead of the clock.
        #[arg(long, value_parser = parse_now)]
        now: Option<DateTime<Utc>>,
        /// Show what would be published; write and send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Publish files only; leave bulletins for a later run.
        #[arg(long)]
        no_mail: bool,
        /// Render every file again, keeping none from the last run (after editing
        /// files in public/ by hand, or to measure a cold render).
        #[arg(long)]
        rebuild: bool,
    },
    /// Stay running: publish as embargoes lift and schedule slots come due.
    Run,
    /// Serve `public/` for preview and handle subscriptions (see docs/serve.md).
    Serve {
        /// Listen here instead of `[serve] listen` (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Manage bulletin subscribers.
    Subscribers {
        #[command(subcommand)]
        command: crate::mail_cli::SubscribersCommand,
    },
    /// Bulletin delivery: status, retries.
    Mail {
        #[command(subcommand)]
        command: crate::mail_cli::MailCommand,
    },
    /// What is published, what waits under embargo, and the last run.
    Status {
        #[arg(long, value_parser = parse_now)]
        now: Option<DateTime<Utc>>,
    },
    /// Check `public/` against its signed manifest, or one PDF's signature.
    Verify {
        /// A signed PDF: check its signature and its certificate against `[pdf.signing]`.
        pdf: Option<PathBuf>,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a TEST-ONLY signing key, self-signed certificate and manifest key under
    /// keys/, and add them to herald.toml.
    Init,
}

/// `--now` must carry an offset: a bare local time would be a guess.
pub fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            format!("{e}: write an RFC 3339 instant with offset, e.g. 2027-07-30T09:00:00+05:00")
        })
}

/// The folder at or above `start` that holds `content/herald.toml`.
pub fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| Paths::new(d).config().is_file())
        .map(Path::to_path_buf)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn resolve_root(cli: &Cli) -> Result<PathBuf, Error> {
    if let Some(r) = &cli.root {
        return Ok(r.clone());
    }
    let cwd = std::env::current_dir()?;
    find_root(&cwd).ok_or_else(|| {
        Error::Usage(format!(
            "no content/herald.toml in {} or above: run herald in a project folder or pass --root",
            cwd.display()
        ))
    })
}

/// Parse arguments and run. The one place that reads the wall clock.
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    init_logging(cli.verbose);
    let result = run(&cli, Utc::now());
    if std::env::var_os("HERALD_PEAK_MEMORY").is_some()
        && let Some(mb) = peak_memory_mb()
    {
        eprintln!("peak memory: {mb:.1} MB");
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{e}");
            if let Error::Content(herald_content::LoadError::Invalid(_)) = e {
                eprintln!("nothing was published: fix the problems above and run again");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// `[schedule] lock_wait_seconds`, read from herald.toml alone (publish itself
/// loads and validates everything; loading it twice would double the cost).
fn lock_wait(root: &Path) -> std::time::Duration {
    herald_content::Config::load(&crate::Paths::new(root).config())
        .ok()
        .and_then(|c| crate::schedule::Schedules::from_config(&c).ok())
        .map_or(crate::schedule::DEFAULT_LOCK_WAIT, |s| s.lock_wait)
}

fn mail_err(e: impl Into<crate::BoxError>) -> Error {
    Error::channel("mail", e)
}

/// `herald mail receive`: any failure is EX_TEMPFAIL (75), so the MTA keeps the
/// message and tries again; nothing it hands in is lost or bounced.
fn receive(
    root: &Path,
    command: &crate::mail_cli::MailCommand,
    clock: DateTime<Utc>,
    out: &mut dyn Write,
) -> u8 {
    const EX_TEMPFAIL: u8 = 75;
    let paths = crate::Paths::new(root);
    let config_path = paths.content.join("herald.toml");
    let settings = match herald_content::Config::load(&config_path) {
        Ok(c) => c.section::<herald_mail::MailSettings>("mail"),
        Err(d) => Err(d),
    };
    let settings = match settings {
        Ok(s) => s,
        Err(d) => {
            eprintln!("herald mail receive: {d}\n(the MTA keeps the message and tries again)");
            return EX_TEMPFAIL;
        }
    };
    let result = herald_mail::MailStore::open(&paths.ledger)
        .map_err(herald_mail::inbound::InboundError::from)
        .and_then(|store| {
            let secret = herald_mail::Secret::from_env_or_file(&paths.state)
                .map_err(|e| herald_mail::inbound::InboundError::Settings(e.to_string()))?;
            let ctx = herald_mail::inbound::Inbound {
                secret: &secret,
                settings: &settings,
                state_dir: &paths.state,
                now: clock,
            };
            crate::mail_cli::run_receive(command, &store, &ctx, out)
        });
    match result {
        Ok(code) => code,
        Err(e) => {
            let why = if e.is_busy() {
                "the store is busy"
            } else {
                "cannot handle the message now"
            };
            eprintln!(
                "herald mail receive: {why}: {e}\n(the MTA keeps the message and tries again)"
            );
            EX_TEMPFAIL
        }
    }
}

/// Peak resident memory of this process (Linux), for benchmarks.
pub fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Run a parsed command with `clock` as the wall clock.
pub fn run(cli: &Cli, clock: DateTime<Utc>) -> Result<u8, Error> {
    let root = resolve_root(cli)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    match &cli.command {
        Command::Check => {
            let corpus = crate::check(&root)?;
            let _ = writeln!(
                out,
                "ok: {} statement files ({} statements) valid",
                corpus.statements.len(),
                {
                    let mut ids: Vec<&str> =
                        corpus.statements.iter().map(|s| s.id.as_str()).collect();
                    ids.dedup();
                    ids.len()
                }
            );
            Ok(exit::OK)
        }
        Command::Publish {
            now,
            dry_run,
            no_mail,
            rebuild,
        } => {
            let wait = lock_wait(&root);
            let _lock = if *dry_run {
                None
            } else {
                Some(crate::lock::Lock::acquire(
                    &crate::Paths::new(&root).state,
                    wait,
                )?)
            };
            let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(sig, cancel.clone())?;
            }
            let at = now.unwrap_or(clock);
            let mut report = crate::publish(&PublishOptions {
                root: root.clone(),
                now: at,
                dry_run: *dry_run,
                started_at: clock,
                mail: !*no_mail,
                rebuild: *rebuild,
                cancel: Some(cancel.clone()),
            })?;
            // Schedule slots (the digest) are mail: they wait for a run that sends.
            let mut jobs = Vec::new();
            if !*dry_run && !*no_mail {
                let (ran, reports) = crate::run::run_due_jobs(&root, at, &cancel)?;
                report.channels.extend(reports);
                jobs = ran;
            }
            print_report(&mut out, &report);
            for (job, slot) in jobs {
                let _ = writeln!(out, "  ran {job} for slot {}", crate::ledger::stamp(slot));
            }
            let attention = report.channels.iter().any(|c| c.failed + c.ambiguous > 0);
            Ok(if attention { exit::ATTENTION } else { exit::OK })
        }
        Command::Run => {
            crate::check(&root)?;
            let wait = lock_wait(&root);
            crate::run::run_forever(root, &Utc::now, wait, &mut out)?;
            Ok(exit::OK)
        }
        Command::Serve { listen } => {
            crate::check(&root)?;
            let mut opts = herald_serve::ServeOptions::new(root.clone());
            opts.listen = *listen;
            // Content edits republish (embargo respected, exactly once), under the lock.
            let rebuild_root = root.clone();
            opts.rebuild = Some(std::sync::Arc::new(move || {
                let now = Utc::now();
                let result = crate::lock::Lock::acquire(
                    &crate::Paths::new(&rebuild_root).state,
                    crate::schedule::DEFAULT_LOCK_WAIT,
                )
                .map_err(Error::from)
                .and_then(|_lock| {
                    crate::publish(&PublishOptions {
                        root: rebuild_root.clone(),
                        now,
                        dry_run: false,
                        started_at: now,
                        mail: true,
                        rebuild: false,
                        cancel: None,
                    })
                });
                match result {
                    Ok(r) => {
                        let mut err = std::io::stderr();
                        print_report(&mut err, &r);
                    }
                    Err(e) => eprintln!(
                        "herald serve: rebuild failed, the last good site is still served:\n{e}"
                    ),
                }
            }));
            herald_serve::run(opts).map_err(|e| Error::channel("serve", e))?;
            Ok(exit::OK)
        }
        Command::Subscribers { command } => {
            let corpus = crate::check(&root)?;
            let store =
                herald_mail::MailStore::open(&crate::Paths::new(&root).ledger).map_err(mail_err)?;
            crate::mail_cli::run_subscribers(command, &store, &corpus.config, clock, &mut out)
                .map_err(mail_err)?;
            Ok(exit::OK)
        }
        Command::Mail {
            command: command @ crate::mail_cli::MailCommand::Receive { .. },
        } => Ok(receive(&root, command, clock, &mut out)),
        Command::Mail { command } => {
            let store =
                herald_mail::MailStore::open(&crate::Paths::new(&root).ledger).map_err(mail_err)?;
            crate::mail_cli::run_mail(command, &store, clock, &mut out).map_err(mail_err)?;
            Ok(exit::OK)
        }
        Command::Status { now } => {
            crate::status::print(&root, now.unwrap_or(clock), &mut out)?;
            Ok(exit::OK)
        }
        Command::Verify { pdf } => verify(&root, pdf.as_deref(), &mut out),
        Command::Keys {
            command: KeysCommand::Init,
        } => {
            let made = crate::keys::init(&root, clock)?;
            let _ = writeln!(
                out,
                "made a TEST-ONLY key, certificate ({}) and manifest key in {}\n\
                 added [pdf.signing] and [site] manifest_key to content/herald.toml\n\
                 no reader trusts this certificate: see docs/pdf.md for a real one",
                made.subject,
                made.dir.display()
            );
            Ok(exit::OK)
        }
    }
}

/// Exit code of `herald verify` when something does not match.
const VERIFY_FAILED: u8 = exit::FAILURE;

fn verify(root: &Path, pdf: Option<&Path>, out: &mut dyn Write) -> Result<u8, Error> {
    let paths = crate::Paths::new(root);
    let config_path = paths.content.join("herald.toml");
    let config = herald_content::Config::load(&config_path).map_err(|d| {
        Error::Content(herald_content::LoadError::Invalid(
            herald_content::Diagnostics(vec![d]),
        ))
    })?;
    let usage = |m: &str| Error::Usage(format!("herald verify: {m}"));
    match pdf {
        Some(file) => {
            let settings =
                herald_pdf::PdfSettings::from_config(&config).map_err(|e| usage(&e.to_string()))?;
            let signing = settings.signing.ok_or_else(|| {
                usage("no [pdf.signing] in herald.toml: its certificate is what a PDF is checked against")
            })?;
            let trusted = herald_pdf::sign::configured_certificates(&paths.content, &signing)
                .map_err(|e| usage(&e.to_string()))?;
            let bytes =
                std::fs::read(file).map_err(|e| usage(&format!("{}: {e}", file.display())))?;
            match herald_pdf::sign::verify(&bytes, &trusted) {
                Ok(v) => {
                    let _ = writeln!(
                        out,
                        "ok: {} is signed by {}{}, the signature covers the whole file and nothing changed",
                        file.display(),
                        v.subject,
                        if v.timestamped { " (time-stamped)" } else { "" }
                    );
                    Ok(exit::OK)
                }
                Err(e) => {
                    let _ = writeln!(out, "FAILED: {}: {e}", file.display());
                    Ok(VERIFY_FAILED)
                }
            }
        }
        None => {
            let site = herald_site::SiteSettings::from_config(&config)
                .map_err(|e| usage(&e.to_string()))?;
            let key_path = site
                .manifest_key
                .ok_or_else(|| usage("no [site] manifest_key in herald.toml"))?;
            let key = crate::manifest::ManifestKey::load(&paths.content.join(key_path))?;
            let (count, diffs) = crate::manifest::verify_public(&paths.public, key.public_key())?;
            for d in &diffs {
                let _ = writeln!(out, "{d}");
            }
            if diffs.is_empty() {
                let _ = writeln!(
                    out,
                    "ok: the manifest's signature is valid and all {count} files of public/ match it"
                );
                Ok(exit::OK)
            } else {
                let _ = writeln!(
                    out,
                    "FAILED: {} of public/'s files differ from the signed manifest",
                    diffs.len()
                );
                Ok(VERIFY_FAILED)
            }
        }
    }
}

/// New statement versions listed by name in a report; a first publish of a large
/// archive counts the rest instead of printing thousands of lines.
pub const LISTED: usize = 50;

pub fn print_report(out: &mut dyn Write, r: &PublishReport) {
    let _ = writeln!(
        out,
        "herald publish{} as of {}",
        if r.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        },
        r.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    if r.settled {
        let _ = writeln!(
            out,
            "  nothing new: no input changed since the last run, and no embargo has lifted"
        );
    } else if r.unchanged {
        let _ = writeln!(
            out,
            "  nothing new: every due statement is already published"
        );
    }
    for c in &r.channels {
        let _ = write!(
            out,
            "  {:<5} {:>4} new, {:>5} live",
            c.channel, c.new, c.live
        );
        if c.files_written + c.files_unchanged > 0 {
            let _ = write!(
                out,
                "; {} file(s) written, {} unchanged in {:.2} s",
                c.files_written,
                c.files_unchanged,
                c.elapsed_ms as f64 / 1000.0
            );
        }
        if !c.note.is_empty() {
            let _ = write!(out, "; {}", c.note);
        }
        let _ = writeln!(out);
    }
    if r.removed_files > 0 {
        let _ = writeln!(
            out,
            "  removed {} file(s) no longer published",
            r.removed_files
        );
    }
    for (id, lang) in r.new_statements.iter().take(LISTED) {
        let _ = writeln!(out, "  + {id} [{lang}]");
    }
    if r.new_statements.len() > LISTED {
        let _ = writeln!(
            out,
            "  + {} more statement version(s)",
            r.new_statements.len() - LISTED
        );
    }
    if r.embargoed.is_empty() {
        let _ = writeln!(out, "  under embargo: none");
    } else {
        let _ = writeln!(out, "  under embargo: {}", r.embargoed.len());
        for e in &r.embargoed {
            let _ = writeln!(
                out,
                "    {} [{}] until {} ({} UTC)",
                e.id,
                e.lang,
                e.publish_at.to_rfc3339(),
                e.publish_at.with_timezone(&Utc).format("%Y-%m-%d %H:%M")
            );
        }
    }
    let _ = writeln!(out, "  done in {} ms", r.elapsed_ms);
}

/// Used by tests: the paths herald would use for `root`.
pub fn paths(root: &Path) -> Paths {
    Paths::new(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(new: usize) -> PublishReport {
        PublishReport {
            now: Utc::now(),
            dry_run: false,
            unchanged: false,
            settled: false,
            channels: Vec::new(),
            new_statements: (0..new)
                .map(|i| (format!("2020/s{i:05}"), "en".to_string()))
                .collect(),
            embargoed: Vec::new(),
            removed_files: 0,
            elapsed_ms: 1,
        }
    }

    fn printed(r: &PublishReport) -> String {
        let mut out = Vec::new();
        print_report(&mut out, r);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_large_first_publish_lists_some_and_counts_the_rest() {
        let few = printed(&report(LISTED));
        assert_eq!(few.matches("  + 2020/").count(), LISTED, "{few}");
        assert!(!few.contains("more statement"), "{few}");
        let many = printed(&report(LISTED + 7));
        assert_eq!(many.matches("  + 2020/").count(), LISTED, "{many}");
        assert!(many.contains("  + 7 more statement version(s)"), "{many}");
        assert!(many.contains(&format!("2020/s{:05} [en]", LISTED - 1)));
        assert!(!many.contains(&format!("2020/s{LISTED:05}")));
    }
}
