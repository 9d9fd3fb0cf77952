//! Queue bulletins for newly published statements, and deliver them exactly once.
//!
//! Every bulletin is a ledger row. Before the message data goes out the row is
//! `sending`; after the server answers it is `sent`, `failed` (5xx), back to
//! `pending` (4xx or a connection error before the data: retried with backoff) or
//! `ambiguous` (the connection broke after the data went out). A crash leaves at
//! most the rows that were `sending`, which the next run reports as ambiguous:
//! nobody is lost and nobody gets a message twice, except those reported.

use std::collections::{HashMap, VecDeque};
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use herald_content::{Corpus, Statement};
use indicatif::ProgressBar;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Quit, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};

use crate::compose::{ComposeError, Composed, Composer, Prepared, Recipient, Template, message_id};
use crate::journal::Journal;
use crate::settings::{MailSettings, SMTP_PASSWORD_ENV, SMTP_USERNAME_ENV, SmtpSettings, TlsMode};
use crate::store::{
    Bulletin, BulletinState, Change, MailStore, NewBulletin, Status, StoreError, Subscriber,
};
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
            statement_id: b.statement_id.clone(),
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

/// The domain of the sender, for Message-IDs.
fn sender_domain(corpus: &Corpus, settings: &MailSettings) -> String {
    let from = settings
        .from
        .as_deref()
        .or(corpus.config.organization.email.as_deref())
        .unwrap_or("");
    from.trim()
        .trim_end_matches('>')
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .filter(|d| {
            !d.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        })
        .unwrap_or_else(|| "herald.invalid".into())
}

/// The translation a subscriber reads: theirs, else the default language's, else
/// the first there is.
fn pick<'a>(versions: &[&'a Statement], lang: &str, default: &str) -> Option<&'a Statement> {
    versions
        .iter()
        .find(|s| s.lang == lang)
        .or_else(|| versions.iter().find(|s| s.lang == default))
        .or_else(|| versions.first())
        .copied()
}

/// The statements of `statements` by id (sorted), each with its due translations
/// that are to be mailed, their topics and when it was published.
struct Group<'a> {
    id: &'a str,
    versions: Vec<&'a Statement>,
    topics: Vec<String>,
    published: DateTime<Utc>,
}

impl Group<'_> {
    /// Whether `sub` should get it: their topics match, and they consented before
    /// it was published.
    fn is_for(&self, sub: &Subscriber) -> bool {
        sub.wants(&self.topics) && sub.consent_at.is_none_or(|c| c <= self.published)
    }
}

fn groups<'a>(
    corpus: &'a Corpus,
    statements: &[&'a Statement],
    now: DateTime<Utc>,
) -> Vec<Group<'a>> {
    let mut ids: Vec<&str> = statements.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let by_id = corpus.by_id();
    ids.into_iter()
        .filter_map(|id| {
            let versions: Vec<&Statement> = by_id
                .get(id)?
                .iter()
                .copied()
                .filter(|s| s.is_due(now) && s.meta.bulletin)
                .collect();
            let published = versions.first()?.meta.publish_at.with_timezone(&Utc);
            let mut topics: Vec<String> = versions
                .iter()
                .flat_map(|s| s.meta.topics.iter().cloned())
                .collect();
            topics.sort();
            topics.dedup();
            Some(Group {
                id,
                versions,
                topics,
                published,
            })
        })
        .collect()
}

/// Record a pending bulletin for every confirmed subscriber who should get each of
/// `statements` (newly published ones, any language version), in their language.
/// Idempotent: a subscriber already queued for a statement is never queued again,
/// and nobody gets a statement published before they consented. Returns how many
/// rows were added.
pub fn queue(
    store: &MailStore,
    corpus: &Corpus,
    settings: &MailSettings,
    statements: &[&Statement],
    now: DateTime<Utc>,
) -> Result<usize, DeliverError> {
    if !settings.enabled {
        return Ok(0);
    }
    let subscribers = store.subscribers(Some(Status::Confirmed))?;
    if subscribers.is_empty() {
        // Nobody to queue for: spare a lookup per statement (a first publish has thousands).
        return Ok(0);
    }
    let domain = sender_domain(corpus, settings);
    let mut batch = Batch::new(store, now);
    for group in groups(corpus, statements, now) {
        let (id, versions) = (group.id, &group.versions);
        let done = store.first_queued(id)?;
        for sub in &subscribers {
            if !group.is_for(sub) {
                continue;
            }
            let Some(s) = pick(versions, &sub.lang, &corpus.config.default_language) else {
                continue;
            };
            // Had it already: only a correction goes out, when configured, and only
            // for an `updated` later than their first bulletin (a typo fix that keeps
            // `updated` sends nothing); once per `updated` (the row is unique).
            let version = match (done.get(&sub.id), s.meta.updated) {
                (None, _) => s.digest.clone(),
                (Some(first), Some(updated))
                    if settings.corrections && updated.with_timezone(&Utc) > *first =>
                {
                    format!("{CORRECTION_PREFIX}{}", updated.to_rfc3339())
                }
                (Some(_), _) => continue,
            };
            batch.push(NewBulletin {
                statement_id: id.to_string(),
                message_id: message_id(id, &version, sub.id, &domain),
                version,
                lang: s.lang.clone(),
                subscriber_id: sub.id,
                address: sub.address.clone(),
            })?;
        }
    }
    batch.finish()
}

/// Rows go to the store in chunks, so 100,000 recipients never sit in memory at
/// once; each insert is idempotent, so a crash between chunks loses nothing.
struct Batch<'a> {
    store: &'a MailStore,
    now: DateTime<Utc>,
    rows: Vec<NewBulletin>,
    added: usize,
}

impl<'a> Batch<'a> {
    const CHUNK: usize = 4096;

    fn new(store: &'a MailStore, now: DateTime<Utc>) -> Batch<'a> {
        Batch {
            store,
            now,
            rows: Vec::with_capacity(Self::CHUNK),
            added: 0,
        }
    }

    fn push(&mut self, row: NewBulletin) -> Result<(), StoreError> {
        self.rows.push(row);
        if self.rows.len() == Self::CHUNK {
            self.added += self.store.queue_bulletins(&self.rows, self.now)?;
            self.rows.clear();
        }
        Ok(())
    }

    /// How many rows were new.
    fn finish(self) -> Result<usize, DeliverError> {
        Ok(self.added + self.store.queue_bulletins(&self.rows, self.now)?)
    }
}

/// A correction's row carries this and the statement's `updated` as its version.
pub const CORRECTION_PREFIX: &str = "correction:";

/// A digest's rows carry `digest:` and its slot as their statement id, and the ids
/// of the statements in it, space-separated, as their version.
pub const DIGEST_PREFIX: &str = "digest:";

/// The ledger key of the digest for one schedule slot.
pub fn digest_key(slot: DateTime<Utc>) -> String {
    format!(
        "{DIGEST_PREFIX}{}",
        slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// Record a pending digest for every confirmed subscriber who should get at least
/// one of `statements` (due versions, any language; the pipeline passes those no
/// bulletin or digest has carried yet): one message listing them, each in the
/// subscriber's language where a translation exists. Idempotent per `key`: a
/// subscriber already queued for this digest is never queued again. Returns how
/// many rows were added.
pub fn queue_digest(
    store: &MailStore,
    corpus: &Corpus,
    settings: &MailSettings,
    key: &str,
    statements: &[&Statement],
    now: DateTime<Utc>,
) -> Result<usize, DeliverError> {
    if !settings.enabled {
        return Ok(0);
    }
    let mut items = groups(corpus, statements, now);
    // Newest first, as on the site's index.
    items.sort_by(|a, b| b.published.cmp(&a.published).then(a.id.cmp(b.id)));
    if items.is_empty() {
        return Ok(0);
    }
    let subscribers = store.subscribers(Some(Status::Confirmed))?;
    let domain = sender_domain(corpus, settings);
    let done = store.bulletined(key)?;
    let mut batch = Batch::new(store, now);
    for sub in &subscribers {
        if done.contains(&sub.id) {
            continue;
        }
        let version = items
            .iter()
            .filter(|i| i.is_for(sub))
            .map(|i| i.id)
            .collect::<Vec<_>>()
            .join(" ");
        if version.is_empty() {
            continue;
        }
        batch.push(NewBulletin {
            statement_id: key.to_string(),
            message_id: message_id(key, &version, sub.id, &domain),
            version,
            lang: sub.lang.clone(),
            subscriber_id: sub.id,
            address: sub.address.clone(),
        })?;
    }
    batch.finish()
}

/// Render what one pending row sends: a statement's bulletin, or a digest. `None`
/// when nothing of it is left in `content/`.
fn prepare_row(
    composer: &Composer<'_>,
    corpus: &Corpus,
    row: &Bulletin,
    now: DateTime<Utc>,
) -> Result<Option<Prepared>, ComposeError> {
    if !row.statement_id.starts_with(DIGEST_PREFIX) {
        let correction = row.version.starts_with(CORRECTION_PREFIX);
        return corpus
            .get(&row.statement_id, &row.lang)
            .map(|s| {
                if correction {
                    composer.prepare_correction(s)
                } else {
                    composer.prepare(s)
                }
            })
            .transpose();
    }
    let default = &corpus.config.default_language;
    let statements: Vec<&Statement> = row
        .version
        .split(' ')
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
        .prepare_digest(&row.statement_id, &row.lang, &statements)
        .map(Some)
}

/// One pending row, ready to go.
struct Job {
    row: Bulletin,
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
    let mut prepared: HashMap<(String, String, String), Arc<Template>> = HashMap::new();
    let mut jobs = VecDeque::with_capacity(pending.len());
    // Rows that cannot be sent are failed in batches, never sent.
    let mut skipped = Vec::new();
    for row in pending {
        let skip = match names.get(&row.subscriber_id) {
            Some((_, Status::Confirmed, _)) => None,
            Some((_, status, _)) => Some(format!("subscriber is {status}")),
            None => Some("subscriber was removed".to_string()),
        };
        // A digest's version lists its statements: rows with the same list share one render.
        let key = (
            row.statement_id.clone(),
            row.lang.clone(),
            row.version.clone(),
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
            prep.is_none()
                .then(|| "the statement is no longer in content/".to_string())
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

struct Shared<'a> {
    composer: &'a Composer<'a>,
    settings: &'a MailSettings,
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
    bytes: std::sync::atomic::AtomicU64,
    /// Written only by the sender holding `Ledger::writing`.
    journal: Mutex<Journal<'a>>,
}

// Moved once per message, never stored in bulk: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Next {
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

    fn next(&self) -> Next {
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
    fn flush(&self) -> Result<(), StoreError> {
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
    fn sending(&self, job: &Job) -> Result<(), StoreError> {
        self.record(Some(Change::Sending { id: job.row.id }), None, true)
    }

    /// A temporary failure: retry later in this run with backoff, or after the
    /// last attempt of this run, leave it deferred until its next attempt (Postfix's
    /// backoff: 5 minutes, doubling per run, at most 4,000 s) or its expiry.
    fn defer(&self, mut job: Job, error: String, counted: bool) -> Result<(), StoreError> {
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
    fn done(
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

    fn compose(&self, job: &Job) -> Result<Composed, ComposeError> {
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
    fn rate_slot(&self) -> Option<Duration> {
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

// ---- outbox ----

fn outbox(shared: &Shared<'_>, dir: &Path) -> Result<(), DeliverError> {
    let result = outbox_loop(shared, dir);
    // Outcomes queued before an error are still recorded.
    let flushed = shared.flush();
    result?;
    Ok(flushed?)
}

fn outbox_loop(shared: &Shared<'_>, dir: &Path) -> Result<(), DeliverError> {
    let io = |source| DeliverError::Outbox {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    loop {
        let job = match shared.next() {
            Next::Job(j) => j,
            Next::Wait(d) => {
                shared.flush()?;
                std::thread::sleep(d);
                continue;
            }
            Next::Done => return Ok(()),
        };
        let composed = match shared.compose(&job) {
            Ok(c) => c,
            Err(e) => {
                shared.done(job, BulletinState::Failed, Some(e.to_string()))?;
                continue;
            }
        };
        shared.sending(&job)?;
        let name: String = job
            .row
            .message_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{name}.eml"));
        let tmp = dir.join(format!(".{name}.eml.tmp"));
        // As an MTA's final delivery writes it: the envelope sender (the VERP
        // address with a bounce address) is visible in the file.
        let return_path = format!(
            "Return-Path: <{}>\r\n",
            composed
                .envelope
                .from()
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        let mut file = Vec::with_capacity(return_path.len() + composed.bytes.len());
        file.extend_from_slice(return_path.as_bytes());
        file.extend_from_slice(&composed.bytes);
        std::fs::write(&tmp, &file).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        shared.bytes.fetch_add(file.len() as u64, Ordering::Relaxed);
        shared.done(job, BulletinState::Sent, None)?;
    }
}

// ---- SMTP ----

struct SmtpTarget {
    host: String,
    port: u16,
    tls: TlsMode,
    timeout: Duration,
    hello: ClientId,
    credentials: Option<Credentials>,
}

impl SmtpTarget {
    fn new(s: &SmtpSettings) -> Result<SmtpTarget, DeliverError> {
        let host = s.host.trim().to_string();
        let port = s.port();
        if s.tls == TlsMode::None {
            let addrs: Vec<_> = (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| DeliverError::Resolve {
                    host: host.clone(),
                    reason: e.to_string(),
                })?
                .collect();
            if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
                return Err(DeliverError::Insecure { host });
            }
        }
        let credentials = match (
            std::env::var(SMTP_USERNAME_ENV),
            std::env::var(SMTP_PASSWORD_ENV),
        ) {
            (Ok(u), Ok(p)) if !u.is_empty() => Some(Credentials::new(u, p)),
            _ => None,
        };
        let hello = match &s.hello_name {
            Some(h) => ClientId::Domain(h.clone()),
            None => ClientId::default(),
        };
        Ok(SmtpTarget {
            host,
            port,
            tls: s.tls,
            timeout: Duration::from_secs(s.timeout_secs.max(1)),
            hello,
            credentials,
        })
    }

    fn tls(&self) -> Result<TlsParameters, lettre::transport::smtp::Error> {
        TlsParameters::new(self.host.clone())
    }

    /// A connection ready for mail, and whether the server offers PIPELINING
    /// (lettre does not keep that keyword, so a second EHLO asks; RFC 5321 allows it).
    async fn connect(&self) -> Result<Connection, String> {
        let t = self.timeout;
        let mut conn = match self.tls {
            TlsMode::Implicit => {
                let tls = self.tls().map_err(|e| e.to_string())?;
                within(
                    t,
                    AsyncSmtpConnection::connect_tokio1(
                        (self.host.as_str(), self.port),
                        Some(t),
                        &self.hello,
                        Some(tls),
                        None,
                    ),
                )
                .await?
            }
            TlsMode::Starttls | TlsMode::None => {
                let tcp = tokio::time::timeout(
                    t,
                    tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
                )
                .await
                .map_err(|_| "timed out connecting".to_string())?
                .map_err(|e| format!("cannot connect: {e}"))?;
                // lettre's own connections leave Nagle on: ~40 ms per message.
                tcp.set_nodelay(true).map_err(|e| e.to_string())?;
                let mut conn = within(
                    t,
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello),
                )
                .await?;
                if self.tls == TlsMode::Starttls {
                    let tls = self.tls().map_err(|e| e.to_string())?;
                    within(t, conn.starttls(tls, &self.hello)).await?;
                }
                conn
            }
        };
        let ehlo = within(t, conn.command(Ehlo::new(self.hello.clone()))).await?;
        let pipelining = ehlo
            .message()
            .any(|l| l.split_whitespace().next() == Some("PIPELINING"));
        if let Some(c) = &self.credentials {
            within(t, conn.auth(&[Mechanism::Plain, Mechanism::Login], c)).await?;
        }
        Ok(Connection { conn, pipelining })
    }
}

/// Whether the SMTP server of `settings` offers SMTPUTF8 (RFC 6531): asked by
/// connecting and reading its EHLO answer. `herald serve` refuses internationalized
/// addresses at subscribe time when it does not.
pub async fn smtputf8_offered(settings: &SmtpSettings) -> Result<bool, DeliverError> {
    let target = SmtpTarget::new(settings)?;
    let mut c = target
        .connect()
        .await
        .map_err(|reason| DeliverError::Probe {
            host: target.host.clone(),
            reason,
        })?;
    let offered = c
        .conn
        .server_info()
        .supports_feature(Extension::SmtpUtfEight);
    let _ = tokio::time::timeout(target.timeout, c.conn.command(Quit)).await;
    Ok(offered)
}

async fn within<T>(
    t: Duration,
    f: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(t, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the server stopped answering (timed out)".into()),
    }
}

/// How one SMTP step ended.
enum Step {
    Ok,
    /// 5xx: the server answered and refused.
    Permanent(String),
    /// 4xx: the server answered; `close` when it also closes (421).
    Transient {
        error: String,
        close: bool,
    },
    /// No usable answer: timeout, broken connection, garbage.
    Broken(String),
}

async fn step<T>(
    t: Duration,
    f: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Step {
    match tokio::time::timeout(t, f).await {
        Ok(Ok(_)) => Step::Ok,
        Ok(Err(e)) if e.is_permanent() => Step::Permanent(e.to_string()),
        Ok(Err(e)) if e.is_transient() => Step::Transient {
            close: e.status().is_some_and(|c| c.to_string() == "421"),
            error: e.to_string(),
        },
        Ok(Err(e)) => Step::Broken(e.to_string()),
        Err(_) => Step::Broken("the server stopped answering (timed out)".into()),
    }
}

struct Connection {
    conn: AsyncSmtpConnection,
    pipelining: bool,
}

/// Bytes that go to the server as they are, in one write: lettre's `command`
/// writes any `Display` and reads one answer.
struct Raw<'a>(&'a str);

impl std::fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// `message` as SMTP DATA: lines starting with a dot get another (RFC 5321
/// 4.5.2), then the end-of-data line.
fn data_bytes(message: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(message.len() + 64);
    let mut line_start = true;
    let mut rest = message;
    while !rest.is_empty() {
        if line_start && rest[0] == b'.' {
            out.push(b'.');
        }
        match memchr::memchr(b'\n', rest) {
            Some(i) => {
                out.extend_from_slice(&rest[..=i]);
                rest = &rest[i + 1..];
                line_start = true;
            }
            None => {
                out.extend_from_slice(rest);
                rest = &[];
                line_start = false;
            }
        }
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

fn smtp(shared: &Shared<'_>, target: &SmtpTarget) -> Result<(), DeliverError> {
    // Probe the TLS setup once so a bad one is one clear error, not one per message.
    if target.tls != TlsMode::None {
        target.tls().map_err(|e| DeliverError::Tls(e.to_string()))?;
    }
    let workers = shared.settings.concurrency.max(1);
    let results: Vec<Result<(), DeliverError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(DeliverError::Runtime)?;
                    let result = rt.block_on(worker(shared, target));
                    // Outcomes queued before an error are still recorded.
                    let flushed = shared.flush();
                    result?;
                    Ok(flushed?)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or(Err(DeliverError::Store(StoreError::Poisoned)))
            })
            .collect()
    });
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

/// The envelope of one message, before any data: MAIL, RCPT and DATA, in one
/// write when the server offers PIPELINING (RFC 2920). The first failure is
/// the envelope's; every answer is read so the connection stays in step.
async fn envelope(c: &mut Connection, t: Duration, composed: &Composed, buf: &mut String) -> Step {
    let mut params = Vec::new();
    // An internationalized address goes out only to a server that takes it
    // (RFC 6531); otherwise nothing is sent, and the row fails with the reason.
    let e = &composed.envelope;
    let ascii = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
    if !e.from().is_none_or(ascii) || !e.to().iter().all(ascii) {
        if !c
            .conn
            .server_info()
            .supports_feature(Extension::SmtpUtfEight)
        {
            return Step::Permanent(
                "the address has non-ASCII characters and the SMTP server does not offer SMTPUTF8"
                    .to_string(),
            );
        }
        params.push(MailParameter::SmtpUtfEight);
    }
    if !composed.bytes.is_ascii()
        && c.conn
            .server_info()
            .supports_feature(Extension::EightBitMime)
    {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mail = Mail::new(composed.envelope.from().cloned(), params);
    let rcpts = composed
        .envelope
        .to()
        .iter()
        .map(|a| Rcpt::new(a.clone(), vec![]));
    if !c.pipelining {
        let mut result = step(t, c.conn.command(mail)).await;
        for rcpt in rcpts {
            if matches!(result, Step::Ok) {
                result = step(t, c.conn.command(rcpt)).await;
            }
        }
        if matches!(result, Step::Ok) {
            result = step(t, c.conn.command(Data)).await;
        }
        return result;
    }
    use std::fmt::Write;
    buf.clear();
    let answers = 2 + composed.envelope.to().len();
    let _ = write!(buf, "{mail}");
    for rcpt in rcpts {
        let _ = write!(buf, "{rcpt}");
    }
    let _ = write!(buf, "{Data}");
    let mut result = step(t, c.conn.command(Raw(buf))).await;
    let mut data_accepted = false;
    for i in 1..answers {
        // A broken or closing connection has nothing more to say.
        if matches!(
            result,
            Step::Broken(_) | Step::Transient { close: true, .. }
        ) {
            return result;
        }
        let answer = step(t, c.conn.read_response()).await;
        if i == answers - 1 {
            data_accepted = matches!(answer, Step::Ok);
        }
        if matches!(result, Step::Ok) || matches!(answer, Step::Broken(_)) {
            result = answer;
        }
    }
    // A server that took DATA after refusing the envelope gets an empty message
    // to end it (RFC 2920 3.1); there was no recipient, so nothing is delivered.
    if data_accepted
        && !matches!(result, Step::Ok)
        && let Step::Broken(e) = step(t, c.conn.command(Raw(".\r\n"))).await
    {
        return Step::Broken(e);
    }
    result
}

async fn worker(shared: &Shared<'_>, target: &SmtpTarget) -> Result<(), StoreError> {
    let t = target.timeout;
    let mut conn: Option<Connection> = None;
    let mut commands = String::new();
    let mut data = Vec::new();
    loop {
        let job = match shared.next() {
            Next::Job(j) => j,
            Next::Wait(d) => {
                shared.flush()?;
                tokio::time::sleep(d).await;
                continue;
            }
            Next::Done => break,
        };
        let composed = match shared.compose(&job) {
            Ok(c) => c,
            Err(e) => {
                shared.done(job, BulletinState::Failed, Some(e.to_string()))?;
                continue;
            }
        };
        data_bytes(&composed.bytes, &mut data);
        let Ok(wire) = std::str::from_utf8(&data) else {
            let e = "the message is not UTF-8".to_string();
            shared.done(job, BulletinState::Failed, Some(e))?;
            continue;
        };
        if let Some(wait) = shared.rate_slot().filter(|w| !w.is_zero()) {
            // Outcomes are not held back while this connection sleeps.
            shared.flush()?;
            tokio::time::sleep(wait).await;
        }
        let mut c = match conn.take() {
            Some(c) => c,
            None => match target.connect().await {
                Ok(c) => c,
                Err(e) => {
                    shared.defer(job, e, true)?;
                    continue;
                }
            },
        };
        // The envelope, before any data: a failure here cannot have delivered anything.
        match envelope(&mut c, t, &composed, &mut commands).await {
            Step::Ok => {}
            Step::Permanent(e) => {
                shared.done(job, BulletinState::Failed, Some(e))?;
                if matches!(step(t, c.conn.command(Rset)).await, Step::Ok) {
                    conn = Some(c);
                }
                continue;
            }
            Step::Transient { error, close } => {
                shared.defer(job, error, true)?;
                if !close && matches!(step(t, c.conn.command(Rset)).await, Step::Ok) {
                    conn = Some(c);
                }
                continue;
            }
            Step::Broken(e) => {
                shared.defer(job, e, true)?;
                continue;
            }
        }
        // From here the server may accept the message at any moment.
        shared.sending(&job)?;
        match step(t, c.conn.command(Raw(wire))).await {
            Step::Ok => {
                shared.bytes.fetch_add(wire.len() as u64, Ordering::Relaxed);
                shared.done(job, BulletinState::Sent, None)?;
                conn = Some(c);
            }
            Step::Permanent(e) => {
                shared.done(job, BulletinState::Failed, Some(e))?;
                conn = Some(c);
            }
            Step::Transient { error, close } => {
                // An explicit refusal after the data: nothing was accepted.
                shared.defer(job, error, false)?;
                if !close {
                    conn = Some(c);
                }
            }
            Step::Broken(e) => {
                shared.done(
                    job,
                    BulletinState::Ambiguous,
                    Some(format!(
                        "the connection broke after the message data was sent: {e}"
                    )),
                )?;
            }
        }
    }
    if let Some(mut c) = conn {
        let _ = tokio::time::timeout(t, c.conn.command(Quit)).await;
    }
    Ok(())
}

// ---- one message now (the confirmation mail) ----

/// Send one message outside the ledger (`herald serve`'s confirmation mail), on
/// the bulletins' path: over `[mail.smtp]` when it is set (same connection,
/// TLS, SMTPUTF8 and dot-stuffing code), else as an `.eml` file in `outbox`,
/// named by its Message-ID and written atomically.
pub async fn send_now(
    settings: &MailSettings,
    outbox: &Path,
    composed: &Composed,
) -> Result<(), DeliverError> {
    let Some(smtp) = &settings.smtp else {
        let head = crate::compose::find(&composed.bytes, b"\r\n\r\n", 0).unwrap_or(0);
        let id = crate::compose::header_fields(&composed.bytes[..head])
            .into_iter()
            .find(|f| f.to_ascii_lowercase().starts_with(b"message-id:"))
            .map(|f| String::from_utf8_lossy(&f[11..]).trim().to_string())
            .unwrap_or_else(|| "message".into());
        let name: String = id
            .chars()
            .filter(|c| !matches!(c, '<' | '>'))
            .map(|c| match c {
                c if c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_') => c,
                _ => '_',
            })
            .collect();
        let io = |source| DeliverError::Outbox {
            path: outbox.to_path_buf(),
            source,
        };
        let from = composed.envelope.from().map(|a| a.to_string());
        let mut file = format!("Return-Path: <{}>\r\n", from.unwrap_or_default()).into_bytes();
        file.extend_from_slice(&composed.bytes);
        std::fs::create_dir_all(outbox).map_err(io)?;
        let tmp = outbox.join(format!(".{name}.eml.tmp"));
        std::fs::write(&tmp, &file).map_err(io)?;
        return std::fs::rename(&tmp, outbox.join(format!("{name}.eml"))).map_err(io);
    };
    let target = SmtpTarget::new(smtp)?;
    let refused = |reason: String| DeliverError::Refused {
        host: target.host.clone(),
        reason,
    };
    let mut c = target.connect().await.map_err(refused)?;
    let mut buf = String::new();
    let mut step_result = envelope(&mut c, target.timeout, composed, &mut buf).await;
    if matches!(step_result, Step::Ok) {
        let mut data = Vec::new();
        data_bytes(&composed.bytes, &mut data);
        let wire = std::str::from_utf8(&data).map_err(|e| refused(e.to_string()))?;
        step_result = step(target.timeout, c.conn.command(Raw(wire))).await;
    }
    let _ = tokio::time::timeout(target.timeout, c.conn.command(Quit)).await;
    match step_result {
        Step::Ok => Ok(()),
        Step::Permanent(e) | Step::Transient { error: e, .. } | Step::Broken(e) => Err(refused(e)),
    }
}
