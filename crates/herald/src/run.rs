//! `herald run`: a long-lived process that sleeps until the next due instant (the
//! earliest embargo to lift, or a schedule slot), publishes, and sleeps again.
//! SIGTERM/SIGINT finish the message in flight, record it, and exit 0.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use crate::ledger::{Ledger, stamp};
use crate::lock::Lock;
use crate::pipeline::{PublishOptions, PublishReport, publish};
use crate::schedule::Schedules;
use crate::{Error, Paths};

/// How often the content folder is checked for new and edited files.
pub const POLL: Duration = Duration::from_secs(2);

/// A cheap fingerprint of `content/`: paths, sizes and modification times.
fn content_stamp(content: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for e in walkdir::WalkDir::new(content)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        e.path().hash(&mut h);
        if let Ok(m) = e.metadata() {
            m.len().hash(&mut h);
            m.modified().unwrap_or(SystemTime::UNIX_EPOCH).hash(&mut h);
        }
    }
    h.finish()
}

/// What one cycle did, for logs and tests.
#[derive(Debug)]
pub struct Cycle {
    pub report: PublishReport,
    /// Schedule jobs run in this cycle: (name, slot).
    pub jobs: Vec<(String, DateTime<Utc>)>,
}

fn job_key(name: &str) -> String {
    format!("schedule:{name}:last")
}

/// One publish plus any schedule slots due at `now`; each missed slot runs once.
pub fn cycle(
    root: &Path,
    now: DateTime<Utc>,
    clock: DateTime<Utc>,
    cancel: &Arc<AtomicBool>,
) -> Result<Cycle, Error> {
    let mut report = publish(&PublishOptions {
        root: root.to_path_buf(),
        now,
        dry_run: false,
        started_at: clock,
        mail: true,
        rebuild: false,
        cancel: Some(cancel.clone()),
    })?;
    let (jobs, reports) = run_due_jobs(root, now, cancel)?;
    report.channels.extend(reports);
    Ok(Cycle { report, jobs })
}

/// The jobs that ran, (name, slot), and the reports of those that did work.
pub type JobsRun = (
    Vec<(String, DateTime<Utc>)>,
    Vec<crate::pipeline::ChannelReport>,
);

/// Run every schedule job with a slot due at `now` (after a publish), once for all
/// its missed slots, and record the latest slot. The caller holds the lock. Only
/// herald.toml is read unless the digest is due: the publish before this has just
/// validated every statement, and a second full load would double a cron run's cost.
pub fn run_due_jobs(
    root: &Path,
    now: DateTime<Utc>,
    cancel: &AtomicBool,
) -> Result<JobsRun, Error> {
    let invalid = |d| Error::Content(herald_content::LoadError::Invalid(d));
    let paths = Paths::new(root);
    let config = herald_content::Config::load(&paths.content.join("herald.toml"))
        .map_err(|d| invalid(herald_content::Diagnostics(vec![d])))?;
    let schedules = Schedules::from_config(&config).map_err(invalid)?;
    let mut ledger = Ledger::open(&paths.ledger)?;
    let mut corpus = None;
    let mut jobs = Vec::new();
    let mut reports = Vec::new();
    for (name, schedule) in schedules.iter() {
        let last = ledger
            .get_state(&job_key(name))?
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|d| d.with_timezone(&Utc));
        let Some(due) = schedule.due_slots(last, now) else {
            continue;
        };
        if cancel.load(Ordering::SeqCst) {
            break;
        }
        // Other jobs are catch-up publishes, which the caller has just run.
        if name == crate::schedule::DIGEST {
            let corpus = match &corpus {
                Some(c) => c,
                None => corpus.insert(herald_content::load(root)?),
            };
            reports.push(crate::channels::digest(
                corpus,
                &paths,
                &mut ledger,
                due.last,
                now,
                cancel,
            )?);
            // Stopped by a signal mid-send: the slot stays due, so the next run
            // finishes it (its queued rows are idempotent).
            if cancel.load(Ordering::SeqCst) {
                break;
            }
        }
        ledger.set_state(&job_key(name), &stamp(due.last))?;
        jobs.push((name.to_string(), due.last));
    }
    Ok((jobs, reports))
}

/// The next instant anything is due after `now`: an embargo lifting or a slot.
pub fn next_wake(root: &Path, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, Error> {
    let corpus = herald_content::load(root)?;
    let schedules = Schedules::from_config(&corpus.config)
        .map_err(|d| Error::Content(herald_content::LoadError::Invalid(d)))?;
    let embargo = corpus
        .embargoed(now)
        .first()
        .map(|s| s.meta.publish_at.with_timezone(&Utc));
    let slot = schedules.next_after(now).map(|(_, t)| t);
    Ok(match (embargo, slot) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Run until SIGTERM or SIGINT. `clock` is the wall clock (injected for tests).
pub fn run_forever(
    root: PathBuf,
    clock: &dyn Fn() -> DateTime<Utc>,
    lock_wait: Duration,
    out: &mut dyn std::io::Write,
) -> Result<(), Error> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let paths = Paths::new(&root);
    let mut seen = content_stamp(&paths.content);
    let mut dirty = true; // catch up once on start
    // Known until the content changes or a cycle runs: loading content every poll
    // would cost a full validation each POLL.
    let mut wake: Option<DateTime<Utc>> = None;
    while !stop.load(Ordering::SeqCst) {
        let now = clock();
        if dirty || wake.is_some_and(|w| w <= now) {
            dirty = false;
            match Lock::acquire(&paths.state, lock_wait) {
                Ok(_lock) => match cycle(&root, now, now, &stop) {
                    Ok(c) => {
                        crate::cli::print_report(out, &c.report);
                        for (job, slot) in c.jobs {
                            let _ = writeln!(out, "  ran {job} for slot {}", stamp(slot));
                        }
                    }
                    Err(e) => {
                        let _ = writeln!(out, "herald run: {e}");
                    }
                },
                Err(e) => {
                    let _ = writeln!(out, "herald run: {e}");
                }
            }
            wake = match next_wake(&root, now) {
                Ok(w) => w,
                Err(e) => {
                    // Bad content while running: report and wait for the editor to fix it.
                    let _ = writeln!(out, "herald run: {e}");
                    None
                }
            };
            let _ = out.flush();
            continue;
        }
        // Sleep in short steps: signals and content edits are noticed within POLL.
        let until = wake.map(|w| (w - now).to_std().unwrap_or_default());
        let step = until
            .map_or(POLL, |u| u.min(POLL))
            .max(Duration::from_millis(50));
        let mut slept = Duration::ZERO;
        while slept < step && !stop.load(Ordering::SeqCst) {
            let d = Duration::from_millis(100).min(step - slept);
            std::thread::sleep(d);
            slept += d;
        }
        let stamp_now = content_stamp(&paths.content);
        if stamp_now != seen {
            seen = stamp_now;
            dirty = true;
        }
    }
    let _ = writeln!(out, "herald run: stopped by signal");
    Ok(())
}
