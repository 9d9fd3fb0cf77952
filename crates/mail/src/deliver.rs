//! The send engine: deliver every due bulletin exactly once, through the SMTP
//! client (`smtp.rs`) or the outbox (`outbox.rs`).
//!
//! Every bulletin is a ledger row. Before the message data goes out the row is
//! `sending`; after the server answers it is `sent`, `failed` (5xx), back to
//! `pending` (4xx or a connection error before the data: retried with backoff) or
//! `ambiguous` (the connection broke after the data went out). A crash leaves at
//! most the rows that were `sending`, which the next run reports as ambiguous:
//! nobody is lost and nobody gets a message twice, except those reported.
//! Ledger changes of every connection are group-committed to the journal
//! (`journal.rs`) by [`Shared::record`].

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use herald_content::{Corpus, Statement};
use indicatif::ProgressBar;

use crate::compose::{ComposeError, Composed, Composer, Prepared, Recipient, Template};
use crate::journal::Journal;
use crate::outbox::outbox;
use crate::queue::{Batch, pick};
use crate::settings::MailSettings;
use crate::smtp::{SmtpTarget, smtp};
use crate::store::{Bulletin, BulletinKind, BulletinState, Change, MailStore, Status, StoreError};
use crate::token::Secret;

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(
        "[mail.smtp] {host} is not on the loopback address: use tls = \"starttls\" or \"implicit\" (a plain connection would expose the messages and credentials)"
    )]
    Insecure { host: String },
    #[error("[mail.smtp] cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("[mail.smtp] cannot ask {host} what it offers: {reason}")]
    Probe { host: String, reason: String },
    #[error("[mail.smtp] {0}")]
    Tls(String),
    #[error("cannot write to the outbox {path}: {source}")]
    Outbox {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Settings(String),
    #[error("cannot start the sending threads: {0}")]
    Runtime(std::io::Error),
    #[error("[mail.smtp] {host} did not take the message: {reason}")]
    Refused { host: String, reason: String },
}

/// What happened to one bulletin in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Refused for good (5xx).
    Failed(String),
    /// The server may have it: not resent without `herald mail retry --ambiguous`.
    Ambiguous(String),
    /// Temporary failures until `max_attempts`: still pending, sent on a later run.
    Deferred(String),
}

/// One bulletin that did not end as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What the row carries ([`Bulletin::label`]): a statement id, or `digest <slot>`.
    pub statement_id: String,
    pub address: String,
    pub message_id: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: usize,
    /// Bytes of message data accepted (as sent, dot-stuffed; outbox: file bytes).
    pub bytes: u64,
    pub failed: Vec<Problem>,
    pub ambiguous: Vec<Problem>,
    pub deferred: Vec<Problem>,
    /// Rows a previous run left `sending` (it crashed), now reported ambiguous.
    pub recovered_ambiguous: usize,
    /// `cancel` was set: rows not reached are still pending.
    pub cancelled: bool,
    /// Deferred rows whose queue lifetime ended: now `failed` (also in `failed`).
    pub expired: usize,
}

impl DeliveryReport {
    fn record(&mut self, b: &Bulletin, outcome: Outcome) {
        let problem = |error: String| Problem {
            statement_id: b.label(),
            address: b.address.clone(),
            message_id: b.message_id.clone(),
            error,
        };
        match outcome {
            Outcome::Sent => self.sent += 1,
            Outcome::Failed(e) => self.failed.push(problem(e)),
            Outcome::Ambiguous(e) => self.ambiguous.push(problem(e)),
            Outcome::Deferred(e) => self.deferred.push(problem(e)),
        }
    }
}

/// Render what one pending row sends: a statement's bulletin or correction, or
/// a digest. `None` when nothing of it is left in `content/`.
fn prepare_row(
    composer: &Composer<'_>,
    corpus: &Corpus,
    row: &Bulletin,
    now: DateTime<Utc>,
) -> Result<Option<Prepared>, ComposeError> {
    let statement = || corpus.get(&row.statement_id, &row.lang);
    match row.kind {
        BulletinKind::Bulletin => statement().map(|s| composer.prepare(s)).transpose(),
        BulletinKind::Correction => statement()
            .map(|s| composer.prepare_correction(s))
            .transpose(),
        // Sent by `herald serve` when asked; never from the queue.
        BulletinKind::Confirmation => Ok(None),
        BulletinKind::Digest => {
            let default = &corpus.config.default_language;
            let statements: Vec<&Statement> = row
                .statements
                .iter()
                .filter_map(|id| {
                    let versions: Vec<&Statement> =
                        corpus.translations(id).filter(|s| s.is_due(now)).collect();
                    pick(&versions, &row.lang, default)
                })
                .collect();
            if statements.is_empty() {
                return Ok(None);
            }
            composer
                .prepare_digest(&format!("digest:{}", row.slot), &row.lang, &statements)
                .map(Some)
        }
    }
}

/// One pending row, ready to go.
pub(crate) struct Job {
    pub(crate) row: Bulletin,
    name: String,
    token_key: i64,
    template: Arc<Template>,
    not_before: Option<Instant>,
}

/// Send every pending bulletin: over SMTP when `[mail.smtp]` is set, else into the
/// outbox. `now` is the Date of the messages and the time in the ledger. Setting
/// `cancel` stops after the messages in flight; what is left stays pending.
pub fn deliver(
    store: &MailStore,
    corpus: &Corpus,
    settings: &MailSettings,
    secret: &Secret,
    now: DateTime<Utc>,
    cancel: &AtomicBool,
    progress: &ProgressBar,
) -> Result<DeliveryReport, DeliverError> {
    let mut report = DeliveryReport::default();
    if !settings.enabled {
        return Ok(report);
    }
    let target = settings.smtp.as_ref().map(SmtpTarget::new).transpose()?;
    // First, under the journal's lock, whatever a killed sender left in it: a row
    // it marked `sending` must be seen as such below, not as pending.
    let journal = store.journal(settings.bounce_after, now)?;
    // An outbox write is idempotent (same file name), so an interrupted one is redone.
    report.recovered_ambiguous = if target.is_some() {
        store.recover_interrupted(false, now)?
    } else {
        store.recover_interrupted(true, now)?;
        0
    };
    // Names first: the full subscriber rows are dropped before the queue is loaded.
    let names: HashMap<i64, (String, Status, i64)> = store
        .subscribers(None)?
        .into_iter()
        .map(|s| (s.id, (s.name, s.status, s.token_key)))
        .collect();
    let lifetime = settings.queue_lifetime().map_err(DeliverError::Settings)?;
    for row in store.expire_deferred(now)? {
        report.expired += 1;
        let error = row.last_error.clone().unwrap_or_default();
        report.record(&row, Outcome::Failed(error));
    }
    // Deferred rows whose next attempt has not come stay for a later run.
    let pending = store.due_bulletins(now)?;
    if pending.is_empty() {
        return Ok(report);
    }
    let composer = Composer::new(corpus, settings, secret)?;
    // Each bulletin is rendered and encoded once, for all its recipients.
    let mut prepared: HashMap<(BulletinKind, String, String, String, String), Arc<Template>> =
        HashMap::new();
    let mut jobs = VecDeque::with_capacity(pending.len());
    // Rows that cannot be sent are failed in batches, never sent.
    let mut skipped = Vec::new();
    for row in pending {
        let skip = match names.get(&row.subscriber_id) {
            Some((_, Status::Confirmed, _)) => None,
            Some((_, status, _)) => Some(format!("subscriber is {status}")),
            None => Some("subscriber was removed".to_string()),
        };
        // Rows of one digest slot with the same list share one render.
        let key = (
            row.kind,
            row.statement_id.clone(),
            row.lang.clone(),
            row.version.clone(),
            row.statements.join(" "),
        );
        let prep = match prepared.get(&key) {
            Some(p) => Some(p.clone()),
            None => match prepare_row(&composer, corpus, &row, now)? {
                Some(p) => {
                    let p = Arc::new(composer.template(&p, now)?);
                    prepared.insert(key, p.clone());
                    Some(p)
                }
                None => None,
            },
        };
        let reason = skip.or_else(|| {
            prep.is_none().then(|| match row.kind {
                BulletinKind::Confirmation => {
                    "a confirmation is not sent from the queue".to_string()
                }
                _ => "the statement is no longer in content/".to_string(),
            })
        });
        match (reason, prep) {
            (None, Some(template)) => {
                let (name, token_key) = names
                    .get(&row.subscriber_id)
                    .map(|(n, _, k)| (n.clone(), *k))
                    .unwrap_or_default();
                jobs.push_back(Job {
                    row,
                    name,
                    token_key,
                    template,
                    not_before: None,
                });
            }
            (reason, _) => {
                let reason = reason.unwrap_or_default();
                skipped.push(Change::Done {
                    id: row.id,
                    subscriber_id: row.subscriber_id,
                    state: BulletinState::Failed,
                    error: Some(reason.clone()),
                });
                if skipped.len() == Batch::CHUNK {
                    store.record(&skipped, u32::MAX, now)?;
                    skipped.clear();
                }
                report.record(&row, Outcome::Failed(reason));
            }
        }
    }
    store.record(&skipped, u32::MAX, now)?;
    drop(skipped);
    progress.set_length(jobs.len() as u64);
    let shared = Shared {
        composer: &composer,
        settings,
        now,
        lifetime,
        cancel,
        progress,
        queue: Mutex::new(Queue {
            ready: jobs,
            delayed: Vec::new(),
            outstanding: 0,
        }),
        report: Mutex::new(report),
        rate: Mutex::new(None),
        ledger: Mutex::new(Ledger::default()),
        ledger_turn: Condvar::new(),
        bytes: Default::default(),
        journal: Mutex::new(journal),
    };
    {
        let mut q = shared.lock_queue();
        q.outstanding = q.ready.len();
    }
    match &target {
        None => outbox(
            &shared,
            &herald_content::urls::Paths::new(&corpus.root).outbox(&settings.outbox),
        )?,
        Some(target) => smtp(&shared, target)?,
    }
    shared
        .journal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .finish()?;
    let bytes = shared.bytes.load(Ordering::Relaxed);
    let mut report = shared
        .report
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    report.cancelled = cancel.load(Ordering::Relaxed);
    report.bytes = bytes;
    Ok(report)
}

struct Queue {
    ready: VecDeque<Job>,
    delayed: Vec<Job>,
    /// Jobs not finished: in the queues, being sent, or with their outcome not
    /// yet committed.
    outstanding: usize,
}

/// Ledger changes from every connection, committed together (group commit):
/// a sender that must see its change on disk takes everything queued so far
/// and appends it to the journal as one line, unless another sender is
/// writing, whose write it then waits for. Final outcomes are queued without waiting: they
/// reach the disk with the next `sending` row of any connection, so at most
/// one row per connection is ever `sending` and a crash still leaves only
/// those ambiguous.
#[derive(Default)]
struct Ledger {
    changes: Vec<Change>,
    /// Reported once their change is committed.
    outcomes: Vec<(Bulletin, Outcome)>,
    queued: u64,
    committed: u64,
    writing: bool,
    failed: Option<String>,
}

pub(crate) struct Shared<'a> {
    composer: &'a Composer<'a>,
    pub(crate) settings: &'a MailSettings,
    /// The run's clock: deferred rows' next attempt and expiry count from it.
    now: DateTime<Utc>,
    lifetime: chrono::Duration,
    cancel: &'a AtomicBool,
    progress: &'a ProgressBar,
    queue: Mutex<Queue>,
    report: Mutex<DeliveryReport>,
    rate: Mutex<Option<Instant>>,
    ledger: Mutex<Ledger>,
    ledger_turn: Condvar,
    pub(crate) bytes: std::sync::atomic::AtomicU64,
    /// Written only by the sender holding `Ledger::writing`.
    journal: Mutex<Journal<'a>>,
}

// Moved once per message, never stored in bulk: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Next {
    Job(Job),
    Wait(Duration),
    Done,
}

impl Shared<'_> {
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn next(&self) -> Next {
        if self.cancel.load(Ordering::Relaxed) || self.lock_ledger().failed.is_some() {
            return Next::Done;
        }
        let mut q = self.lock_queue();
        if let Some(job) = q.ready.pop_front() {
            return Next::Job(job);
        }
        let now = Instant::now();
        if let Some(i) = q
            .delayed
            .iter()
            .position(|j| j.not_before.is_none_or(|t| t <= now))
        {
            return Next::Job(q.delayed.swap_remove(i));
        }
        if q.outstanding == 0 {
            return Next::Done;
        }
        let wait = q
            .delayed
            .iter()
            .filter_map(|j| j.not_before)
            .min()
            .map_or(Duration::from_millis(20), |t| {
                t.saturating_duration_since(now)
            })
            .min(Duration::from_millis(100));
        Next::Wait(wait)
    }

    /// Queue `change` (with the outcome to report once it is committed); with
    /// `wait`, return only when it and every change queued before it are on disk.
    fn record(
        &self,
        change: Option<Change>,
        outcome: Option<(Bulletin, Outcome)>,
        wait: bool,
    ) -> Result<(), StoreError> {
        let mut l = self.lock_ledger();
        if let Some(e) = &l.failed {
            return Err(StoreError::Write(e.clone()));
        }
        if let Some(c) = change {
            l.changes.push(c);
            l.queued += 1;
        }
        l.outcomes.extend(outcome);
        let mine = l.queued;
        if !wait {
            return Ok(());
        }
        loop {
            if let Some(e) = &l.failed {
                return Err(StoreError::Write(e.clone()));
            }
            if l.committed >= mine {
                return Ok(());
            }
            if l.writing {
                l = self.ledger_turn.wait(l).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            l.writing = true;
            let changes = std::mem::take(&mut l.changes);
            let outcomes = std::mem::take(&mut l.outcomes);
            let upto = l.queued;
            drop(l);
            let result = self
                .journal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .append(&changes);
            if result.is_ok() {
                for (row, outcome) in outcomes {
                    self.finish(&row, outcome);
                }
            }
            l = self.lock_ledger();
            l.writing = false;
            self.ledger_turn.notify_all();
            match result {
                Ok(()) => l.committed = upto,
                Err(e) => {
                    l.failed = Some(e.to_string());
                    return Err(e);
                }
            }
        }
    }

    /// Commit everything queued.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        self.record(None, None, true)
    }

    /// Report a final outcome (its ledger change is committed).
    fn finish(&self, row: &Bulletin, outcome: Outcome) {
        self.report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(row, outcome);
        self.lock_queue().outstanding -= 1;
        self.progress.inc(1);
    }

    /// Written, and committed, before the message data goes out.
    pub(crate) fn sending(&self, job: &Job) -> Result<(), StoreError> {
        self.record(Some(Change::Sending { id: job.row.id }), None, true)
    }

    /// A temporary failure: retry later in this run with backoff, or after the
    /// last attempt of this run, leave it deferred until its next attempt (Postfix's
    /// backoff: 5 minutes, doubling per run, at most 4,000 s) or its expiry.
    pub(crate) fn defer(
        &self,
        mut job: Job,
        error: String,
        counted: bool,
    ) -> Result<(), StoreError> {
        // Every deferral is one attempt (a send after DATA was counted by `sending`).
        let attempts = job.row.attempts + 1;
        let max = self.settings.max_attempts.max(1);
        let shift = attempts.saturating_sub(1).min(10);
        let wait = Duration::from_millis(self.settings.retry_backoff_ms.saturating_mul(1 << shift));
        let last = attempts >= max;
        let next = if last {
            // One more attempt per later run, each waiting twice as long.
            let runs = (attempts - max).min(6);
            chrono::Duration::seconds((300i64 << runs).min(4000))
        } else {
            chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero())
        };
        let change = Change::Deferred {
            id: job.row.id,
            error: error.clone(),
            counted,
            next_attempt_at: Some(crate::store::ts(self.now + next)),
            expires_at: Some(crate::store::ts(self.now + self.lifetime)),
        };
        if last {
            return self.record(
                Some(change),
                Some((job.row, Outcome::Deferred(error))),
                false,
            );
        }
        // Committed before the job can be taken again.
        self.record(Some(change), None, true)?;
        job.row.attempts = attempts;
        job.not_before = Some(Instant::now() + wait);
        self.lock_queue().delayed.push(job);
        Ok(())
    }

    /// A final outcome: committed with the next change that must be on disk.
    pub(crate) fn done(
        &self,
        job: Job,
        state: BulletinState,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        let change = Change::Done {
            id: job.row.id,
            subscriber_id: job.row.subscriber_id,
            state,
            error: error.clone(),
        };
        let outcome = match (state, error) {
            (BulletinState::Sent, _) => Outcome::Sent,
            (BulletinState::Ambiguous, e) => Outcome::Ambiguous(e.unwrap_or_default()),
            (_, e) => Outcome::Failed(e.unwrap_or_default()),
        };
        self.record(Some(change), Some((job.row, outcome)), false)
    }

    pub(crate) fn compose(&self, job: &Job) -> Result<Composed, ComposeError> {
        self.composer.fill(
            &job.template,
            Recipient {
                bulletin_id: job.row.id,
                subscriber_id: job.row.subscriber_id,
                token_key: job.token_key,
                address: &job.row.address,
                name: &job.name,
            },
            &job.row.message_id,
        )
    }

    /// How long to wait for the next rate-limit slot.
    pub(crate) fn rate_slot(&self) -> Option<Duration> {
        if self.settings.rate_limit <= 0.0 {
            return None;
        }
        let gap = Duration::from_secs_f64(1.0 / self.settings.rate_limit);
        let mut next = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let slot = next.map_or(now, |t| t.max(now));
        *next = Some(slot + gap);
        Some(slot.saturating_duration_since(now))
    }
}
