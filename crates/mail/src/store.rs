//! The mail tables in the project's SQLite file (`.herald/herald.db`): subscribers
//! and the bulletin ledger. The pipeline keeps its own tables in the same file; every
//! table here starts with `mail_`.
//!
//! One writing connection per `MailStore`, behind a mutex so a store can be shared
//! between threads (`herald serve`), and a small pool of read-only connections:
//! in WAL mode a reader never waits for a writer, in this process or another.
//! A writer waits at most [`MailStore::set_write_wait`] for the lock, then fails
//! with [`StoreError::Busy`].
//!
//! Subscriber ids are never reused (AUTOINCREMENT; a database made before that is
//! migrated when opened), each row has a random `token_key` its links carry, and a
//! pending row a `confirm_key` that its confirmation link carries and confirming
//! clears. Consent is a history: `mail_events` holds each subscribe, confirm,
//! preference change and unsubscribe with its time, source and IP.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::token::{Claim, Purpose};

/// `token_key`: carried by every link of the row. `confirm_key`: carried by its
/// confirmation link, cleared when used. `legacy_tokens`: which version 1 links
/// (no key) the row still accepts: 0 none, 1 unsubscribe and preferences, 2 those
/// and one confirmation (rows that existed before the migration).
const SUBSCRIBERS: &str = "
CREATE TABLE IF NOT EXISTS mail_subscribers (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    address        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name           TEXT NOT NULL DEFAULT '',
    lang           TEXT NOT NULL,
    topics         TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced', 'complained')),
    consent_at     TEXT,
    consent_source TEXT NOT NULL DEFAULT '',
    consent_ip     TEXT,
    hard_failures  INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    token_key      INTEGER NOT NULL,
    confirm_key    INTEGER,
    legacy_tokens  INTEGER NOT NULL DEFAULT 0,
    soft_bounce_since TEXT
);
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mail_bulletins (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('bulletin', 'digest', 'correction', 'confirmation')),
    statement_id  TEXT NOT NULL DEFAULT '',
    version       TEXT NOT NULL DEFAULT '',
    slot          TEXT NOT NULL DEFAULT '',
    statements    TEXT NOT NULL DEFAULT '',
    lang          TEXT NOT NULL,
    subscriber_id INTEGER NOT NULL,
    address       TEXT NOT NULL,
    message_id    TEXT NOT NULL UNIQUE,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'ambiguous')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    queued_at     TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    sent_at       TEXT,
    next_attempt_at TEXT,
    expires_at    TEXT,
    UNIQUE (kind, statement_id, subscriber_id, version, slot)
);
CREATE INDEX IF NOT EXISTS mail_bulletins_state ON mail_bulletins (state, id);
CREATE INDEX IF NOT EXISTS mail_bulletins_subscriber ON mail_bulletins (subscriber_id, statement_id);
CREATE TABLE IF NOT EXISTS mail_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mail_events (
    id            INTEGER PRIMARY KEY,
    subscriber_id INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('subscribe', 'confirm', 'preferences', 'unsubscribe', 'bounce',
                                                 'hard_bounce', 'soft_bounce', 'complaint')),
    at            TEXT NOT NULL,
    source        TEXT NOT NULL DEFAULT '',
    ip            TEXT,
    detail        TEXT NOT NULL DEFAULT '',
    bulletin_id   INTEGER,
    status_code   TEXT
);
CREATE INDEX IF NOT EXISTS mail_events_subscriber ON mail_events (subscriber_id, id);
CREATE TABLE IF NOT EXISTS mail_inbound (
    digest        TEXT PRIMARY KEY,
    at            TEXT NOT NULL,
    kind          TEXT NOT NULL,
    subscriber_id INTEGER,
    bulletin_id   INTEGER,
    detail        TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
";

/// The deferred queue, bounces, complaints and inbound mail, on a database made
/// before them (version 2): every row is kept. `mail_subscribers` and
/// `mail_events` are copied into tables with the wider CHECKs (SQLite cannot
/// change one in place); ids and the never-reuse sequence stay as they were.
const MIGRATE_V3_SUBSCRIBERS: &str = "
ALTER TABLE mail_subscribers RENAME TO mail_subscribers_v2;
CREATE TABLE mail_subscribers (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    address        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name           TEXT NOT NULL DEFAULT '',
    lang           TEXT NOT NULL,
    topics         TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced', 'complained')),
    consent_at     TEXT,
    consent_source TEXT NOT NULL DEFAULT '',
    consent_ip     TEXT,
    hard_failures  INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    token_key      INTEGER NOT NULL,
    confirm_key    INTEGER,
    legacy_tokens  INTEGER NOT NULL DEFAULT 0,
    soft_bounce_since TEXT
);
INSERT INTO mail_subscribers
    (id, address, name, lang, topics, status, consent_at, consent_source, consent_ip,
     hard_failures, created_at, updated_at, token_key, confirm_key, legacy_tokens)
SELECT id, address, name, lang, topics, status, consent_at, consent_source, consent_ip,
     hard_failures, created_at, updated_at, token_key, confirm_key, legacy_tokens
FROM mail_subscribers_v2;
CREATE TEMP TABLE mail_seq AS SELECT COALESCE(MAX(seq), 0) AS n FROM sqlite_sequence
    WHERE name IN ('mail_subscribers', 'mail_subscribers_v2');
DELETE FROM sqlite_sequence WHERE name IN ('mail_subscribers', 'mail_subscribers_v2');
INSERT INTO sqlite_sequence (name, seq) VALUES ('mail_subscribers', (SELECT MAX(n) FROM (
    SELECT n FROM temp.mail_seq UNION ALL SELECT COALESCE(MAX(id), 0) FROM mail_subscribers)));
DROP TABLE temp.mail_seq;
DROP TABLE mail_subscribers_v2;
";

const MIGRATE_V3_EVENTS: &str = "
ALTER TABLE mail_events RENAME TO mail_events_v2;
DROP INDEX IF EXISTS mail_events_subscriber;
CREATE TABLE mail_events (
    id            INTEGER PRIMARY KEY,
    subscriber_id INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('subscribe', 'confirm', 'preferences', 'unsubscribe', 'bounce',
                                                 'hard_bounce', 'soft_bounce', 'complaint')),
    at            TEXT NOT NULL,
    source        TEXT NOT NULL DEFAULT '',
    ip            TEXT,
    detail        TEXT NOT NULL DEFAULT '',
    bulletin_id   INTEGER,
    status_code   TEXT
);
INSERT INTO mail_events (id, subscriber_id, kind, at, source, ip, detail)
SELECT id, subscriber_id, kind, at, source, ip, detail FROM mail_events_v2;
DROP TABLE mail_events_v2;
CREATE INDEX mail_events_subscriber ON mail_events (subscriber_id, id);
";

const MIGRATE_V3_BULLETINS: &str = "
ALTER TABLE mail_bulletins ADD COLUMN next_attempt_at TEXT;
ALTER TABLE mail_bulletins ADD COLUMN expires_at TEXT;
";

/// Version 4: a `kind` column says what a row carries, instead of values packed
/// into `statement_id` and `version` (`digest:<slot>` with the ids as a list,
/// `correction:<time>`). Every row keeps its id (VERP tokens, events, inbound
/// records and the journal name rows by id), state, counts and times.
const MIGRATE_V4_BULLETINS: &str = "
ALTER TABLE mail_bulletins RENAME TO mail_bulletins_v3;
DROP INDEX IF EXISTS mail_bulletins_state;
DROP INDEX IF EXISTS mail_bulletins_subscriber;
DROP INDEX IF EXISTS mail_bulletins_due;
CREATE TABLE mail_bulletins (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('bulletin', 'digest', 'correction', 'confirmation')),
    statement_id  TEXT NOT NULL DEFAULT '',
    version       TEXT NOT NULL DEFAULT '',
    slot          TEXT NOT NULL DEFAULT '',
    statements    TEXT NOT NULL DEFAULT '',
    lang          TEXT NOT NULL,
    subscriber_id INTEGER NOT NULL,
    address       TEXT NOT NULL,
    message_id    TEXT NOT NULL UNIQUE,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'ambiguous')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    queued_at     TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    sent_at       TEXT,
    next_attempt_at TEXT,
    expires_at    TEXT,
    UNIQUE (kind, statement_id, subscriber_id, version, slot)
);
INSERT INTO mail_bulletins
    (id, kind, statement_id, version, slot, statements, lang, subscriber_id, address, message_id,
     state, attempts, last_error, queued_at, updated_at, sent_at, next_attempt_at, expires_at)
SELECT id,
    CASE WHEN substr(statement_id, 1, 7) = 'digest:' THEN 'digest'
         WHEN substr(version, 1, 11) = 'correction:' THEN 'correction'
         ELSE 'bulletin' END,
    CASE WHEN substr(statement_id, 1, 7) = 'digest:' THEN '' ELSE statement_id END,
    CASE WHEN substr(statement_id, 1, 7) = 'digest:' THEN ''
         WHEN substr(version, 1, 11) = 'correction:' THEN substr(version, 12)
         ELSE version END,
    CASE WHEN substr(statement_id, 1, 7) = 'digest:' THEN substr(statement_id, 8) ELSE '' END,
    CASE WHEN substr(statement_id, 1, 7) = 'digest:' THEN version ELSE '' END,
    lang, subscriber_id, address, message_id,
    state, attempts, last_error, queued_at, updated_at, sent_at, next_attempt_at, expires_at
FROM mail_bulletins_v3 ORDER BY id;
DROP TABLE mail_bulletins_v3;
CREATE INDEX mail_bulletins_state ON mail_bulletins (state, id);
CREATE INDEX mail_bulletins_subscriber ON mail_bulletins (subscriber_id, statement_id);
";

/// Indexes on columns older databases get from the migration.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS mail_bulletins_due ON mail_bulletins (state, next_attempt_at);
";

/// A database made before ids were kept unique: rows keep their ids and accept
/// version 1 links; new ids start above every id a subscriber or a bulletin ever had.
const MIGRATE_V1: &str = "
ALTER TABLE mail_subscribers RENAME TO mail_subscribers_v1;
CREATE TABLE mail_subscribers (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    address        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name           TEXT NOT NULL DEFAULT '',
    lang           TEXT NOT NULL,
    topics         TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed', 'bounced')),
    consent_at     TEXT,
    consent_source TEXT NOT NULL DEFAULT '',
    consent_ip     TEXT,
    hard_failures  INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    token_key      INTEGER NOT NULL,
    confirm_key    INTEGER,
    legacy_tokens  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO mail_subscribers
    (id, address, name, lang, topics, status, consent_at, consent_source, consent_ip,
     hard_failures, created_at, updated_at, token_key, confirm_key, legacy_tokens)
SELECT id, address, name, lang, topics, status, consent_at, consent_source, consent_ip,
     hard_failures, created_at, updated_at, random(),
     CASE status WHEN 'pending' THEN random() END,
     CASE status WHEN 'pending' THEN 2 ELSE 1 END
FROM mail_subscribers_v1;
DROP TABLE mail_subscribers_v1;
INSERT INTO mail_events (subscriber_id, kind, at, source, ip, detail)
SELECT id, 'subscribe', created_at, consent_source, consent_ip, 'as recorded before the consent history'
FROM mail_subscribers ORDER BY id;
INSERT INTO mail_events (subscriber_id, kind, at, source, ip, detail)
SELECT id, 'confirm', consent_at, consent_source, NULL, 'as recorded before the consent history'
FROM mail_subscribers WHERE consent_at IS NOT NULL ORDER BY id;
DELETE FROM sqlite_sequence WHERE name = 'mail_subscribers';
INSERT INTO sqlite_sequence (name, seq) VALUES ('mail_subscribers', (SELECT COALESCE(MAX(n), 0) FROM (
    SELECT MAX(id) AS n FROM mail_subscribers UNION ALL SELECT MAX(subscriber_id) FROM mail_bulletins)));
";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("mail store {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("mail store {0}")]
    Db(#[from] crate::db::OpenError),
    #[error("mail store: {0}")]
    Sql(rusqlite::Error),
    /// Another connection held the write lock longer than the store waits.
    #[error(
        "the mail store is busy: another process or request is writing to it; try again in a moment"
    )]
    Busy,
    #[error("{0}")]
    Subscriber(#[from] SubscriberError),
    #[error("no subscriber {0}")]
    NotFound(String),
    #[error("{0} is already subscribed")]
    Exists(String),
    #[error("the mail store's lock was poisoned by a crashed thread")]
    Poisoned,
    /// A batch of ledger writes failed (the first error, as seen by another sender).
    #[error("mail store: {0}")]
    Write(String),
    #[error("corrupt value {value:?} in column {column}")]
    Corrupt { column: &'static str, value: String },
    #[error(
        "{path} line {line}: {message}. The journal holds sends that are not yet in the ledger: \
         keep the file and report the problem; remove it only if the messages it lists may be sent again"
    )]
    Journal {
        path: String,
        line: usize,
        message: String,
    },
    #[error("mail journal {path}: {source}")]
    JournalIo {
        path: String,
        source: std::io::Error,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StoreError::Busy
            }
            _ => StoreError::Sql(e),
        }
    }
}

/// A bad subscriber field, with what to do about it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubscriberError {
    #[error("{0:?} is not a valid email address: {1}")]
    Address(String, String),
    #[error("language {0:?} is not one of {1}")]
    Language(String, String),
    #[error("topic {0:?} is not lowercase letters, digits and dashes")]
    Topic(String),
    #[error("the name contains a line break or control character")]
    Name,
    #[error("status {0:?} is not pending, confirmed, unsubscribed or bounced")]
    Status(String),
}

/// Where a subscriber stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Subscribed, not yet confirmed (double opt-in): receives nothing.
    Pending,
    Confirmed,
    Unsubscribed,
    /// Hard failures on repeated bulletins, or soft ones that persisted: receives nothing.
    Bounced,
    /// Reported our mail as spam (an ARF report): never mailed again; only a new
    /// double opt-in subscribes them again.
    Complained,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Unsubscribed => "unsubscribed",
            Status::Bounced => "bounced",
            Status::Complained => "complained",
        }
    }
}

impl FromStr for Status {
    type Err = SubscriberError;
    fn from_str(s: &str) -> Result<Status, SubscriberError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pending" => Ok(Status::Pending),
            "confirmed" => Ok(Status::Confirmed),
            "unsubscribed" => Ok(Status::Unsubscribed),
            "bounced" => Ok(Status::Bounced),
            "complained" => Ok(Status::Complained),
            _ => Err(SubscriberError::Status(s.to_string())),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub id: i64,
    pub address: String,
    pub name: String,
    pub lang: String,
    /// Empty: every topic.
    pub topics: Vec<String>,
    pub status: Status,
    /// When the subscriber consented (confirmed, or was added with consent).
    pub consent_at: Option<DateTime<Utc>>,
    /// How consent was given: `import:file.csv`, `cli`, `web`, ...
    pub consent_source: String,
    pub consent_ip: Option<String>,
    pub hard_failures: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Carried by every link made for this row ([`crate::Secret::issue`]).
    pub token_key: i64,
    /// Carried by the row's confirmation link while one is open (a row added
    /// unconfirmed has one); cleared when the link is used.
    pub confirm_key: Option<i64>,
}

impl Subscriber {
    /// Whether a statement with these topics is for this subscriber.
    pub fn wants(&self, topics: &[String]) -> bool {
        self.topics.is_empty() || self.topics.iter().any(|t| topics.contains(t))
    }
}

/// A subscriber to add. Validate fields with [`NewSubscriber::validate`] (done by
/// [`MailStore::add_subscriber`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscriber {
    pub address: String,
    pub name: String,
    pub lang: String,
    pub topics: Vec<String>,
    pub status: Status,
    pub consent_source: String,
    pub consent_ip: Option<String>,
    /// When consent was given; `None` for a confirmed subscriber means "now".
    pub consent_at: Option<DateTime<Utc>>,
}

impl NewSubscriber {
    /// Check every field; `languages` are those of `herald.toml`. Normalizes the
    /// address (domain lowercased) and topics (sorted, deduplicated).
    pub fn validate(mut self, languages: &[String]) -> Result<NewSubscriber, SubscriberError> {
        self.address = parse_address(&self.address)?;
        if self.name.chars().any(char::is_control) || has_line_separator(&self.name) {
            return Err(SubscriberError::Name);
        }
        self.name = self.name.trim().to_string();
        self.lang = self.lang.trim().to_string();
        if !languages.contains(&self.lang) {
            return Err(SubscriberError::Language(self.lang, languages.join(", ")));
        }
        for t in &mut self.topics {
            *t = t.trim().to_string();
            if !herald_content::statement::is_slug(t) {
                return Err(SubscriberError::Topic(t.clone()));
            }
        }
        self.topics.sort();
        self.topics.dedup();
        Ok(self)
    }
}

fn has_line_separator(s: &str) -> bool {
    s.contains(['\u{2028}', '\u{2029}', '\u{85}'])
}

/// A deliverable address: `user@domain`, no display name, no spaces or control
/// characters, at most 254 characters. Returns it with the domain lowercased.
pub fn parse_address(input: &str) -> Result<String, SubscriberError> {
    let s = input.trim();
    let bad = |why: &str| Err(SubscriberError::Address(input.to_string(), why.to_string()));
    if s.is_empty() {
        return bad("it is empty");
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) || has_line_separator(s) {
        return bad("it contains spaces, line breaks or control characters");
    }
    if s.len() > 254 {
        return bad("it is longer than 254 characters");
    }
    if s.contains(['<', '>', ',', ';', '"', '(', ')', '[', ']', '\\']) {
        return bad("write the bare address, like name@example.org");
    }
    let Some((user, domain)) = s.rsplit_once('@') else {
        return bad("it has no @");
    };
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return bad("the domain needs a dot, like example.org");
    }
    match lettre::Address::new(user, domain.to_lowercase()) {
        Ok(a) => Ok(a.to_string()),
        Err(e) => bad(&e.to_string()),
    }
}

/// The state of one bulletin to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulletinState {
    /// Queued, or deferred after a temporary failure: will be sent.
    Pending,
    /// Written just before the message data went out; a row left here by a crash
    /// becomes `Ambiguous` (SMTP) on the next run.
    Sending,
    Sent,
    /// The server refused it for good (5xx): never retried.
    Failed,
    /// The connection broke after the data was sent: the server may have it. Not
    /// resent without `herald mail retry --ambiguous`.
    Ambiguous,
}

impl BulletinState {
    pub fn as_str(self) -> &'static str {
        match self {
            BulletinState::Pending => "pending",
            BulletinState::Sending => "sending",
            BulletinState::Sent => "sent",
            BulletinState::Failed => "failed",
            BulletinState::Ambiguous => "ambiguous",
        }
    }
    fn parse(s: &str) -> Result<BulletinState, StoreError> {
        Ok(match s {
            "pending" => BulletinState::Pending,
            "sending" => BulletinState::Sending,
            "sent" => BulletinState::Sent,
            "failed" => BulletinState::Failed,
            "ambiguous" => BulletinState::Ambiguous,
            _ => {
                return Err(StoreError::Corrupt {
                    column: "mail_bulletins.state",
                    value: s.to_string(),
                });
            }
        })
    }
}

impl std::fmt::Display for BulletinState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a ledger row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BulletinKind {
    /// A newly published statement (`statement_id`; `version`: the file digest).
    #[default]
    Bulletin,
    /// The statements published since the last digest (`slot`, `statements`).
    Digest,
    /// A statement whose `updated` moved on (`statement_id`; `version`: that time).
    Correction,
    /// A subscription's confirmation request.
    Confirmation,
}

impl BulletinKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BulletinKind::Bulletin => "bulletin",
            BulletinKind::Digest => "digest",
            BulletinKind::Correction => "correction",
            BulletinKind::Confirmation => "confirmation",
        }
    }
    fn parse(s: &str) -> Result<BulletinKind, StoreError> {
        Ok(match s {
            "bulletin" => BulletinKind::Bulletin,
            "digest" => BulletinKind::Digest,
            "correction" => BulletinKind::Correction,
            "confirmation" => BulletinKind::Confirmation,
            _ => {
                return Err(StoreError::Corrupt {
                    column: "mail_bulletins.kind",
                    value: s.to_string(),
                });
            }
        })
    }
}

impl std::fmt::Display for BulletinKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ledger row: one message to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bulletin {
    pub id: i64,
    pub kind: BulletinKind,
    /// The statement (bulletin, correction); empty otherwise.
    pub statement_id: String,
    /// Bulletin: the digest of the translation sent; correction: the statement's
    /// `updated` (RFC 3339); empty otherwise.
    pub version: String,
    /// Digest: its schedule slot (RFC 3339); empty otherwise.
    pub slot: String,
    /// Digest: the ids of the statements it lists, in order; empty otherwise.
    pub statements: Vec<String>,
    pub lang: String,
    pub subscriber_id: i64,
    pub address: String,
    /// Without angle brackets.
    pub message_id: String,
    pub state: BulletinState,
    pub attempts: u32,
    pub last_error: Option<String>,
}

impl Bulletin {
    /// What the row carries, for reports: the statement id, `digest <slot>`, or
    /// `confirmation`.
    pub fn label(&self) -> String {
        match self.kind {
            BulletinKind::Bulletin => self.statement_id.clone(),
            BulletinKind::Correction => format!("{} (correction)", self.statement_id),
            BulletinKind::Digest => format!("digest {}", self.slot),
            BulletinKind::Confirmation => "confirmation".to_string(),
        }
    }
}

/// A row to queue (see [`MailStore::queue_bulletins`]); the fields mean what
/// [`Bulletin`]'s do.
#[derive(Debug, Clone, Default)]
pub struct NewBulletin {
    pub kind: BulletinKind,
    pub statement_id: String,
    pub version: String,
    pub slot: String,
    pub statements: Vec<String>,
    pub lang: String,
    pub subscriber_id: i64,
    pub address: String,
    pub message_id: String,
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(crate) fn parse_ts(column: &'static str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt {
            column,
            value: s.to_string(),
        })
}

const SUBSCRIBER_COLUMNS: &str = "id, address, name, lang, topics, status, consent_at, consent_source, consent_ip, hard_failures, created_at, updated_at, token_key, confirm_key";

struct RawSubscriber {
    id: i64,
    address: String,
    name: String,
    lang: String,
    topics: String,
    status: String,
    consent_at: Option<String>,
    consent_source: String,
    consent_ip: Option<String>,
    hard_failures: i64,
    created_at: String,
    updated_at: String,
    token_key: i64,
    confirm_key: Option<i64>,
}

impl RawSubscriber {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawSubscriber> {
        Ok(RawSubscriber {
            id: r.get(0)?,
            address: r.get(1)?,
            name: r.get(2)?,
            lang: r.get(3)?,
            topics: r.get(4)?,
            status: r.get(5)?,
            consent_at: r.get(6)?,
            consent_source: r.get(7)?,
            consent_ip: r.get(8)?,
            hard_failures: r.get(9)?,
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
            token_key: r.get(12)?,
            confirm_key: r.get(13)?,
        })
    }

    fn cook(self) -> Result<Subscriber, StoreError> {
        Ok(Subscriber {
            id: self.id,
            status: Status::from_str(&self.status).map_err(|_| StoreError::Corrupt {
                column: "mail_subscribers.status",
                value: self.status.clone(),
            })?,
            address: self.address,
            name: self.name,
            lang: self.lang,
            topics: self
                .topics
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            consent_at: self
                .consent_at
                .as_deref()
                .map(|s| parse_ts("mail_subscribers.consent_at", s))
                .transpose()?,
            consent_source: self.consent_source,
            consent_ip: self.consent_ip,
            hard_failures: u32::try_from(self.hard_failures).unwrap_or(u32::MAX),
            created_at: parse_ts("mail_subscribers.created_at", &self.created_at)?,
            updated_at: parse_ts("mail_subscribers.updated_at", &self.updated_at)?,
            token_key: self.token_key,
            confirm_key: self.confirm_key,
        })
    }
}

const BULLETIN_COLUMNS: &str = "id, statement_id, version, lang, subscriber_id, address, message_id, state, attempts, last_error, kind, slot, statements";

/// The row, and its state and kind as stored (checked by [`cook_bulletin`]).
fn bulletin_from_row(r: &Row<'_>) -> rusqlite::Result<(Bulletin, String, String)> {
    let state: String = r.get(7)?;
    let kind: String = r.get(10)?;
    let statements: String = r.get(12)?;
    Ok((
        Bulletin {
            id: r.get(0)?,
            kind: BulletinKind::Bulletin,
            statement_id: r.get(1)?,
            version: r.get(2)?,
            slot: r.get(11)?,
            statements: statements
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            lang: r.get(3)?,
            subscriber_id: r.get(4)?,
            address: r.get(5)?,
            message_id: r.get(6)?,
            state: BulletinState::Pending,
            attempts: u32::try_from(r.get::<_, i64>(8)?).unwrap_or(u32::MAX),
            last_error: r.get(9)?,
        },
        state,
        kind,
    ))
}

fn cook_bulletin((mut b, state, kind): (Bulletin, String, String)) -> Result<Bulletin, StoreError> {
    b.state = BulletinState::parse(&state)?;
    b.kind = BulletinKind::parse(&kind)?;
    Ok(b)
}

/// What happened to a subscription, one row of its consent history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Asked to subscribe (a web form, an import, the CLI).
    Subscribe,
    /// Consent given (the confirmation link, or added with consent).
    Confirm,
    /// Language or topics changed.
    Preferences,
    Unsubscribe,
    /// Marked bounced (by an administrator, the sender's failures in a row, or
    /// bounces that came back by mail).
    Bounce,
    /// A hard bounce (DSN `failed`, 5.x.x) that came back by mail.
    HardBounce,
    /// A soft bounce (DSN 4.x.x or `delayed`) that came back by mail.
    SoftBounce,
    /// A spam complaint (ARF `Feedback-Type: abuse`).
    Complaint,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Subscribe => "subscribe",
            EventKind::Confirm => "confirm",
            EventKind::Preferences => "preferences",
            EventKind::Unsubscribe => "unsubscribe",
            EventKind::Bounce => "bounce",
            EventKind::HardBounce => "hard_bounce",
            EventKind::SoftBounce => "soft_bounce",
            EventKind::Complaint => "complaint",
        }
    }
    fn parse(s: &str) -> Result<EventKind, StoreError> {
        Ok(match s {
            "subscribe" => EventKind::Subscribe,
            "confirm" => EventKind::Confirm,
            "preferences" => EventKind::Preferences,
            "unsubscribe" => EventKind::Unsubscribe,
            "bounce" => EventKind::Bounce,
            "hard_bounce" => EventKind::HardBounce,
            "soft_bounce" => EventKind::SoftBounce,
            "complaint" => EventKind::Complaint,
            _ => {
                return Err(StoreError::Corrupt {
                    column: "mail_events.kind",
                    value: s.to_string(),
                });
            }
        })
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event of a subscriber's consent history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub subscriber_id: i64,
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    /// Where it came from: `web form (referer)`, `confirmation link`, `one-click`, `cli`, ...
    pub source: String,
    /// The client's address, where the person gave it.
    pub ip: Option<String>,
    /// For a bounce or complaint: the diagnostic, as the report gave it.
    pub detail: String,
    /// The bulletin a bounce or complaint answers.
    pub bulletin_id: Option<i64>,
    /// The DSN status code (`5.1.1`).
    pub status_code: Option<String>,
}

/// Who made a change: the source and IP recorded with its event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Origin<'a> {
    pub source: &'a str,
    pub ip: Option<&'a str>,
}

impl<'a> Origin<'a> {
    pub fn new(source: &'a str) -> Origin<'a> {
        Origin { source, ip: None }
    }
}

fn record_event(
    conn: &Connection,
    id: i64,
    kind: EventKind,
    at: &str,
    origin: Origin<'_>,
    detail: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO mail_events (subscriber_id, kind, at, source, ip, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, kind.as_str(), at, origin.source, origin.ip, detail])?;
    Ok(())
}

/// The answer to a confirmation link (see [`MailStore::confirm`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// Confirmed now, by this link.
    Now(Box<Subscriber>),
    /// The row is there but the link no longer confirms it: it was used, or a
    /// subscription after an unsubscribe made a new one.
    Used,
    /// No row the link was made for.
    Gone,
}

/// How long a writer waits for the lock by default (the CLI, `publish`).
const DEFAULT_WRITE_WAIT: Duration = crate::db::BUSY_WAIT;
/// Read-only connections open at most. A WAL file has few read marks: more
/// readers than that, each wanting the newest snapshot while a writer commits,
/// retry and sleep inside SQLite; a reader waits here for a free connection instead.
const READERS: usize = 4;

/// The mail tables of one SQLite file.
#[derive(Debug)]
pub struct MailStore {
    conn: Mutex<Connection>,
    /// Read-only connections of a file store (none in memory: reads use `conn`).
    readers: Option<Readers>,
    /// Milliseconds a writer waits for the lock.
    write_wait: AtomicU64,
    /// The sender's journal beside the database (none in memory).
    journal: Option<PathBuf>,
}

#[derive(Debug)]
struct Readers {
    path: PathBuf,
    pool: Mutex<Pool>,
    free: parking_lot::Condvar,
}

#[derive(Debug, Default)]
struct Pool {
    idle: Vec<Connection>,
    open: usize,
}

impl MailStore {
    /// Open (creating if needed) the database at `path` and its mail tables.
    pub fn open(path: &Path) -> Result<MailStore, StoreError> {
        let conn = crate::db::open(path, DEFAULT_WRITE_WAIT)?;
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let mut store = Self::init(conn).map_err(open_err)?;
        store.readers = Some(Readers {
            path: path.to_path_buf(),
            pool: Mutex::new(Pool::default()),
            free: parking_lot::Condvar::new(),
        });
        let mut journal = path.as_os_str().to_owned();
        journal.push("-mail-journal");
        let journal = PathBuf::from(journal);
        crate::journal::replay(&store, &journal)?;
        store.journal = Some(journal);
        Ok(store)
    }

    pub(crate) fn journal_path(&self) -> Option<&Path> {
        self.journal.as_deref()
    }

    /// The last journal generation applied to the ledger.
    pub(crate) fn journal_generation(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT value FROM mail_meta WHERE key = 'journal_generation'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// Apply a journal generation's changes and mark it applied, in one transaction.
    pub(crate) fn apply_generation(
        &self,
        changes: &[Change],
        bounce_after: u32,
        now: DateTime<Utc>,
        generation: i64,
    ) -> Result<(), StoreError> {
        self.commit(changes, bounce_after, now, Some(generation))
    }

    fn commit(
        &self,
        changes: &[Change],
        bounce_after: u32,
        now: DateTime<Utc>,
        generation: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        Self::apply(&tx, changes, bounce_after, &ts(now))?;
        if let Some(generation) = generation {
            tx.execute(
                "INSERT INTO mail_meta (key, value) VALUES ('journal_generation', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [generation],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A private in-memory store, for tests and previews.
    pub fn in_memory() -> Result<MailStore, StoreError> {
        let conn = Connection::open_in_memory()?;
        crate::db::tune(&conn, DEFAULT_WRITE_WAIT)?;
        Ok(Self::init(conn)?)
    }

    /// The tables on a connection [`crate::db`] opened and tuned.
    fn init(mut conn: Connection) -> rusqlite::Result<MailStore> {
        conn.execute_batch(SCHEMA)?;
        migrate(&mut conn)?;
        Ok(MailStore {
            conn: Mutex::new(conn),
            readers: None,
            write_wait: AtomicU64::new(DEFAULT_WRITE_WAIT.as_millis() as u64),
            journal: None,
        })
    }

    /// How long a write waits for the lock (held by another request of this
    /// process, or another process) before it fails with [`StoreError::Busy`].
    /// Default 10 s; `herald serve` waits less and answers 503.
    pub fn set_write_wait(&self, wait: Duration) -> Result<(), StoreError> {
        self.write_wait
            .store(wait.as_millis() as u64, Ordering::Relaxed);
        self.conn()?.busy_timeout(wait)?;
        Ok(())
    }

    fn wait(&self) -> Duration {
        Duration::from_millis(self.write_wait.load(Ordering::Relaxed))
    }

    /// The writing connection, within the write wait.
    pub(crate) fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.try_lock_for(self.wait()).ok_or(StoreError::Busy)
    }

    /// Run `f` on the writing connection if it is free, else on a read-only one:
    /// either way it sees the last committed state and never waits for a writer
    /// (WAL). In memory, on the one connection.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(readers) = &self.readers else {
            return f(&*self.conn()?);
        };
        // The writing connection when it is free: readers that keep the WAL in use
        // stop checkpoints from restarting it, and every write gets slower.
        if let Some(conn) = self.conn.try_lock() {
            return f(&conn);
        }
        let conn = {
            let mut pool = readers.pool.lock();
            loop {
                if let Some(c) = pool.idle.pop() {
                    break Some(c);
                }
                if pool.open < READERS {
                    pool.open += 1;
                    break None;
                }
                readers.free.wait(&mut pool);
            }
        };
        let conn = match conn {
            Some(c) => c,
            None => {
                let opened = crate::db::open_read_only(&readers.path, self.wait());
                match opened {
                    Ok(c) => c,
                    Err(e) => {
                        readers.pool.lock().open -= 1;
                        readers.free.notify_one();
                        return Err(e.into());
                    }
                }
            }
        };
        let result = f(&conn);
        readers.pool.lock().idle.push(conn);
        readers.free.notify_one();
        result
    }

    // ---- subscribers ----

    /// Add a subscriber (validated against `languages`). If `status` is confirmed,
    /// `now` is recorded as the consent time.
    pub fn add_subscriber(
        &self,
        new: NewSubscriber,
        languages: &[String],
        now: DateTime<Utc>,
    ) -> Result<Subscriber, StoreError> {
        let new = new.validate(languages)?;
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let id = insert_subscriber(&tx, &new, now)?;
        let s = subscriber_where(&tx, "id = ?1", id)?;
        tx.commit()?;
        s.ok_or(StoreError::NotFound(new.address))
    }

    /// Add many subscribers in one transaction: all or none. Each must be valid
    /// already (see [`NewSubscriber::validate`]).
    pub fn add_subscribers(
        &self,
        all: &[NewSubscriber],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        for new in all {
            insert_subscriber(&tx, new, now)?;
        }
        tx.commit()?;
        Ok(all.len())
    }

    pub fn subscriber(&self, id: i64) -> Result<Option<Subscriber>, StoreError> {
        self.read(|c| subscriber_where(c, "id = ?1", id))
    }

    /// By address, ignoring case.
    pub fn subscriber_by_address(&self, address: &str) -> Result<Option<Subscriber>, StoreError> {
        self.read(|c| subscriber_where(c, "address = ?1", address.trim()))
    }

    /// The row a genuine token (see [`crate::Secret::verify`]) still acts on, if
    /// any: the row it was made for, with the key it carries. A version 1 token
    /// (no key) acts only on a row that existed before the migration, and as a
    /// confirmation only once.
    pub fn bound(&self, claim: Claim, purpose: Purpose) -> Result<Option<Subscriber>, StoreError> {
        let row = self.read(|c| {
            let raw = c
                .prepare_cached(&format!(
                    "SELECT {SUBSCRIBER_COLUMNS}, legacy_tokens FROM mail_subscribers WHERE id = ?1"
                ))?
                .query_row([claim.subscriber], |r| {
                    Ok((RawSubscriber::from_row(r)?, r.get::<_, i64>(14)?))
                })
                .optional()?;
            raw.map(|(raw, legacy)| Ok((raw.cook()?, legacy)))
                .transpose()
        })?;
        let Some((s, legacy)) = row else {
            return Ok(None);
        };
        let confirm_key = s.confirm_key;
        let ok = match (purpose, claim.key) {
            (Purpose::Confirm, Some(k)) => confirm_key == Some(k),
            (Purpose::Confirm, None) => legacy >= 2 && s.status != Status::Confirmed,
            (Purpose::Unsubscribe | Purpose::Preferences, Some(k)) => s.token_key == k,
            (Purpose::Unsubscribe | Purpose::Preferences, None) => legacy >= 1,
        };
        Ok(ok.then_some(s))
    }

    /// Every subscriber (or those with `status`), by id.
    pub fn subscribers(&self, status: Option<Status>) -> Result<Vec<Subscriber>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SUBSCRIBER_COLUMNS} FROM mail_subscribers WHERE ?1 IS NULL OR status = ?1 ORDER BY id"
            ))?;
            let rows = stmt
                .query_map([status.map(Status::as_str)], RawSubscriber::from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(RawSubscriber::cook).collect()
        })
    }

    /// The consent history of subscriber `id` (or of everyone), oldest first.
    pub fn events(&self, id: Option<i64>) -> Result<Vec<Event>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT subscriber_id, kind, at, source, ip, detail, bulletin_id, status_code FROM mail_events
                 WHERE ?1 IS NULL OR subscriber_id = ?1 ORDER BY subscriber_id, id",
            )?;
            let rows = stmt
                .query_map([id], |r| {
                    Ok((
                        (
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                        ),
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<i64>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(
                    |((subscriber_id, kind, at, source), ip, detail, bulletin_id, status_code)| {
                        Ok(Event {
                            subscriber_id,
                            kind: EventKind::parse(&kind)?,
                            at: parse_ts("mail_events.at", &at)?,
                            source,
                            ip,
                            detail,
                            bulletin_id,
                            status_code,
                        })
                    },
                )
                .collect()
        })
    }

    /// Change a subscriber's status, with an event. Confirming records `now` as
    /// the consent time (and the origin's source, when not empty).
    pub fn set_status(
        &self,
        id: i64,
        status: Status,
        origin: Origin<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        change_status(&tx, id, status, origin, "", &ts(now))?;
        tx.commit()?;
        Ok(())
    }

    /// Start (or repeat) the double opt-in of a row that is not confirmed: the
    /// key its confirmation link carries. The key stays the same until the link
    /// is used; the row's expiry counts from now. Records a subscribe event.
    pub fn begin_confirmation(
        &self,
        id: i64,
        origin: Origin<'_>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let now = ts(now);
        let key: Option<i64> = tx
            .query_row(
                "UPDATE mail_subscribers SET
                   legacy_tokens = CASE WHEN confirm_key IS NULL THEN MIN(legacy_tokens, 1) ELSE legacy_tokens END,
                   confirm_key = COALESCE(confirm_key, random()),
                   updated_at = ?2
                 WHERE id = ?1 AND status != 'confirmed' RETURNING confirm_key",
                params![id, now],
                |r| r.get(0),
            )
            .optional()?;
        let key = key.ok_or(StoreError::NotFound(format!("#{id} (unconfirmed)")))?;
        record_event(
            &tx,
            id,
            EventKind::Subscribe,
            &now,
            origin,
            "confirmation link sent",
        )?;
        tx.commit()?;
        Ok(key)
    }

    /// Use a confirmation link, once: the row it was made for becomes confirmed
    /// and the link's key is cleared, in one transaction (a replay racing the
    /// first use finds it cleared).
    pub fn confirm(
        &self,
        claim: Claim,
        origin: Origin<'_>,
        now: DateTime<Utc>,
    ) -> Result<Confirmed, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let now = ts(now);
        let n = tx.execute(
            "UPDATE mail_subscribers SET status = 'confirmed', consent_at = ?3, updated_at = ?3,
               hard_failures = 0, confirm_key = NULL, legacy_tokens = MIN(legacy_tokens, 1)
             WHERE id = ?1 AND ((?2 IS NOT NULL AND confirm_key = ?2)
               OR (?2 IS NULL AND legacy_tokens >= 2 AND status != 'confirmed'))",
            params![claim.subscriber, claim.key, now],
        )?;
        if n == 0 {
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM mail_subscribers WHERE id = ?1)",
                [claim.subscriber],
                |r| r.get(0),
            )?;
            return Ok(if exists {
                Confirmed::Used
            } else {
                Confirmed::Gone
            });
        }
        record_event(&tx, claim.subscriber, EventKind::Confirm, &now, origin, "")?;
        let s = subscriber_where(&tx, "id = ?1", claim.subscriber)?;
        tx.commit()?;
        Ok(s.map_or(Confirmed::Gone, |s| Confirmed::Now(Box::new(s))))
    }

    /// One-click unsubscribe with a token: the row it was made for, if it is
    /// still there, is unsubscribed (with an event; a repeat changes nothing).
    /// Returns whether a row was unsubscribed now.
    pub fn unsubscribe(
        &self,
        claim: Claim,
        origin: Origin<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let Some(s) = self.bound(claim, Purpose::Unsubscribe)? else {
            return Ok(false);
        };
        if s.status == Status::Unsubscribed {
            return Ok(false);
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        // Checked again under the write lock: a concurrent repeat is a no-op.
        let n = tx.execute(
            "UPDATE mail_subscribers SET status = 'unsubscribed', updated_at = ?2
             WHERE id = ?1 AND status != 'unsubscribed'",
            params![s.id, ts(now)],
        )?;
        if n == 1 {
            after_status(&tx, s.id, Status::Unsubscribed, &ts(now))?;
            record_event(&tx, s.id, EventKind::Unsubscribe, &ts(now), origin, "")?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// Change language and topics (validated against `languages`), with an event.
    pub fn set_preferences(
        &self,
        id: i64,
        lang: &str,
        topics: &[String],
        languages: &[String],
        origin: Origin<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let checked = NewSubscriber {
            address: "x@example.org".into(),
            name: String::new(),
            lang: lang.to_string(),
            topics: topics.to_vec(),
            status: Status::Confirmed,
            consent_source: String::new(),
            consent_ip: None,
            consent_at: None,
        }
        .validate(languages)?;
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let topics = checked.topics.join(",");
        let n = tx.execute(
            "UPDATE mail_subscribers SET lang = ?2, topics = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, checked.lang, topics, ts(now)],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("#{id}")));
        }
        let detail = format!(
            "lang={} topics={}",
            checked.lang,
            if topics.is_empty() { "*" } else { &topics }
        );
        record_event(&tx, id, EventKind::Preferences, &ts(now), origin, &detail)?;
        tx.commit()?;
        Ok(())
    }

    /// Delete a subscriber, their consent history and whatever is still queued
    /// for them; sent rows stay in the ledger. Returns whether the address was known.
    pub fn remove_subscriber(&self, address: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM mail_subscribers WHERE address = ?1",
                [address.trim()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else {
            return Ok(false);
        };
        tx.execute(
            "DELETE FROM mail_bulletins WHERE subscriber_id = ?1 AND state = 'pending'",
            [id],
        )?;
        tx.execute("DELETE FROM mail_events WHERE subscriber_id = ?1", [id])?;
        tx.execute("DELETE FROM mail_subscribers WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(true)
    }

    /// Delete pending (unconfirmed) subscriptions whose last confirmation link
    /// was sent (or, without one, that were created) before `before`.
    pub fn expire_pending(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM mail_events WHERE subscriber_id IN
             (SELECT id FROM mail_subscribers WHERE status = 'pending' AND updated_at < ?1)",
            [ts(before)],
        )?;
        let n = tx.execute(
            "DELETE FROM mail_subscribers WHERE status = 'pending' AND updated_at < ?1",
            [ts(before)],
        )?;
        tx.commit()?;
        Ok(n)
    }

    // ---- bulletins ----

    /// Insert rows, skipping any (statement, subscriber, version) already there.
    /// One transaction. Returns how many were new.
    pub fn queue_bulletins(
        &self,
        rows: &[NewBulletin],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let mut n = 0;
        {
            let mut stmt = tx.prepare(
                "INSERT OR IGNORE INTO mail_bulletins
                 (statement_id, version, lang, subscriber_id, address, message_id, state, queued_at, updated_at,
                  kind, slot, statements)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7, ?8, ?9, ?10)",
            )?;
            let now = ts(now);
            for r in rows {
                n += stmt.execute(params![
                    r.statement_id,
                    r.version,
                    r.lang,
                    r.subscriber_id,
                    r.address,
                    r.message_id,
                    now,
                    r.kind.as_str(),
                    r.slot,
                    r.statements.join(" ")
                ])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Subscriber ids that already have a bulletin or correction row for
    /// `statement_id` (any version).
    pub fn bulletined(
        &self,
        statement_id: &str,
    ) -> Result<std::collections::HashSet<i64>, StoreError> {
        self.subscribers_with(
            "kind IN ('bulletin', 'correction') AND statement_id = ?1",
            statement_id,
        )
    }

    /// Subscriber ids that already have a digest row for `slot`.
    pub fn digested(&self, slot: &str) -> Result<std::collections::HashSet<i64>, StoreError> {
        self.subscribers_with("kind = 'digest' AND slot = ?1", slot)
    }

    fn subscribers_with(
        &self,
        condition: &str,
        value: &str,
    ) -> Result<std::collections::HashSet<i64>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT DISTINCT subscriber_id FROM mail_bulletins WHERE {condition}"
        ))?;
        let ids = stmt
            .query_map([value], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }

    /// For each subscriber with a row for `statement_id`, when their first was queued.
    pub fn first_queued(
        &self,
        statement_id: &str,
    ) -> Result<std::collections::HashMap<i64, DateTime<Utc>>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT subscriber_id, MIN(queued_at) FROM mail_bulletins
             WHERE kind IN ('bulletin', 'correction') AND statement_id = ?1 GROUP BY subscriber_id",
        )?;
        let rows = stmt
            .query_map([statement_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(id, at)| Ok((id, parse_ts("mail_bulletins.queued_at", &at)?)))
            .collect()
    }

    /// Rows in `state`, by id.
    pub fn bulletins(&self, state: Option<BulletinState>) -> Result<Vec<Bulletin>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {BULLETIN_COLUMNS} FROM mail_bulletins WHERE ?1 IS NULL OR state = ?1 ORDER BY id"
        ))?;
        let rows = stmt
            .query_map([state.map(BulletinState::as_str)], bulletin_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(cook_bulletin).collect()
    }

    /// Rows matching `condition` (one parameter, `?1`), by id.
    pub(crate) fn bulletins_where(
        &self,
        condition: &str,
        value: rusqlite::types::Value,
    ) -> Result<Vec<Bulletin>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {BULLETIN_COLUMNS} FROM mail_bulletins WHERE {condition} ORDER BY id"
            ))?;
            let rows = stmt
                .query_map([value], bulletin_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(cook_bulletin).collect()
        })
    }

    /// Record a confirmation mail `herald serve` sent at once (not from the
    /// queue): `sent`, or `failed` with `error`. It makes a lost confirmation
    /// visible in `herald mail status`, and its Message-ID lets `herald mail
    /// receive` match a bounce to the address it was sent to.
    pub fn record_confirmation(
        &self,
        subscriber_id: i64,
        address: &str,
        lang: &str,
        message_id: &str,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = ts(now);
        // One row per mail: the slot is the sending time (two sends in the
        // same instant are the same send).
        self.conn()?.execute(
            "INSERT OR IGNORE INTO mail_bulletins
             (kind, slot, lang, subscriber_id, address, message_id, state, attempts, last_error,
              queued_at, updated_at, sent_at)
             VALUES ('confirmation', ?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?1, ?1, ?8)",
            params![
                at,
                lang,
                subscriber_id,
                address,
                message_id,
                if error.is_some() { "failed" } else { "sent" },
                error,
                error.is_none().then_some(&at),
            ],
        )?;
        Ok(())
    }

    /// How many rows are in each state.
    pub fn bulletin_counts(&self) -> Result<Vec<(BulletinState, u64)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare("SELECT state, COUNT(*) FROM mail_bulletins GROUP BY state ORDER BY state")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(s, n)| Ok((BulletinState::parse(&s)?, u64::try_from(n).unwrap_or(0))))
            .collect()
    }

    /// Whether a run at `now` has mail to deliver: a row left in `sending`, or a
    /// pending one that is due (never deferred, its next attempt has come, or it
    /// has expired and must be failed). Deferred rows not yet due are no work.
    pub fn has_work(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self.conn()?.query_row(
            "SELECT EXISTS (SELECT 1 FROM mail_bulletins WHERE state = 'sending'
               OR (state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?1
                   OR expires_at <= ?1)))",
            [ts(now)],
            |r| r.get(0),
        )?)
    }

    /// Pending rows that a run at `now` sends (never deferred, or their next
    /// attempt has come), by id.
    pub fn due_bulletins(&self, now: DateTime<Utc>) -> Result<Vec<Bulletin>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {BULLETIN_COLUMNS} FROM mail_bulletins WHERE state = 'pending'
             AND (next_attempt_at IS NULL OR next_attempt_at <= ?1) ORDER BY id"
        ))?;
        let rows = stmt
            .query_map([ts(now)], bulletin_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(cook_bulletin).collect()
    }

    /// Deferred rows whose queue lifetime is over at `now` become `failed` with
    /// their last reason; returned as they were.
    pub fn expire_deferred(&self, now: DateTime<Utc>) -> Result<Vec<Bulletin>, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let rows = {
            let mut stmt = tx.prepare(&format!(
                "UPDATE mail_bulletins SET state = 'failed', updated_at = ?1, next_attempt_at = NULL,
                 last_error = 'expired in the deferred queue: ' || COALESCE(last_error, 'no reason recorded')
                 WHERE state = 'pending' AND expires_at <= ?1 RETURNING {BULLETIN_COLUMNS}"
            ))?;
            stmt.query_map([ts(now)], bulletin_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        rows.into_iter().map(cook_bulletin).collect()
    }

    /// Deferred rows (pending with a next attempt): how many, and the earliest
    /// next attempt.
    pub fn deferred(&self) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
        self.read(|c| {
            let (n, next): (i64, Option<String>) = c.query_row(
                "SELECT COUNT(*), MIN(next_attempt_at) FROM mail_bulletins
                 WHERE state = 'pending' AND next_attempt_at IS NOT NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok((
                u64::try_from(n).unwrap_or(0),
                next.map(|t| parse_ts("mail_bulletins.next_attempt_at", &t))
                    .transpose()?,
            ))
        })
    }

    /// Rows a crash left in `sending`: to `ambiguous` (the server may have the
    /// message) or, when `resend` (an idempotent outbox), back to `pending`.
    pub fn recover_interrupted(
        &self,
        resend: bool,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let conn = self.conn()?;
        Ok(if resend {
            conn.execute(
                "UPDATE mail_bulletins SET state = 'pending', updated_at = ?1 WHERE state = 'sending'",
                [ts(now)],
            )?
        } else {
            conn.execute(
                "UPDATE mail_bulletins SET state = 'ambiguous', updated_at = ?1,
                 last_error = 'interrupted while the message was being sent: the server may have it'
                 WHERE state = 'sending'",
                [ts(now)],
            )?
        })
    }

    /// Every pending row becomes `sent` (benchmarks of what comes back).
    #[doc(hidden)]
    pub fn mark_all_sent_for_bench(&self) -> Result<usize, StoreError> {
        Ok(self.conn()?.execute(
            "UPDATE mail_bulletins SET state = 'sent' WHERE state = 'pending'",
            [],
        )?)
    }

    /// `herald mail retry --ambiguous`: put ambiguous rows back in the queue.
    pub fn retry_ambiguous(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(self.conn()?.execute(
            "UPDATE mail_bulletins SET state = 'pending', updated_at = ?1 WHERE state = 'ambiguous'",
            [ts(now)],
        )?)
    }

    /// Apply `changes` in order, in one transaction: a row is never `sending`
    /// on disk after a change that follows it in `changes` has been committed,
    /// and a batch is all or nothing. Hard failures count against the subscriber,
    /// who is marked bounced after `bounce_after` of them in a row. (A delivery
    /// to a file-backed store writes its changes through the journal instead.)
    pub(crate) fn record(
        &self,
        changes: &[Change],
        bounce_after: u32,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.commit(changes, bounce_after, now, None)
    }

    fn apply(
        tx: &Connection,
        changes: &[Change],
        bounce_after: u32,
        now: &str,
    ) -> Result<(), StoreError> {
        for change in changes {
            match change {
                Change::Sending { id } => {
                    tx.prepare_cached(
                        "UPDATE mail_bulletins SET state = 'sending', attempts = attempts + 1, updated_at = ?2 WHERE id = ?1",
                    )?
                    .execute(params![id, now])?;
                }
                Change::Done {
                    id,
                    subscriber_id,
                    state,
                    error,
                } => {
                    let sent_at = (*state == BulletinState::Sent).then_some(now);
                    tx.prepare_cached(
                        "UPDATE mail_bulletins SET state = ?2, last_error = ?3, updated_at = ?4, sent_at = COALESCE(?5, sent_at),
                         next_attempt_at = NULL WHERE id = ?1",
                    )?
                    .execute(params![id, state.as_str(), error, now, sent_at])?;
                    match state {
                        BulletinState::Sent => {
                            tx.prepare_cached(
                                "UPDATE mail_subscribers SET hard_failures = 0 WHERE id = ?1 AND hard_failures > 0",
                            )?
                            .execute([subscriber_id])?;
                        }
                        BulletinState::Failed => {
                            tx.prepare_cached(
                                "UPDATE mail_subscribers SET hard_failures = hard_failures + 1,
                                 status = CASE WHEN hard_failures + 1 >= ?2 AND status = 'confirmed' THEN 'bounced' ELSE status END,
                                 updated_at = ?3 WHERE id = ?1",
                            )?
                            .execute(params![subscriber_id, bounce_after.max(1), now])?;
                        }
                        _ => {}
                    }
                }
                Change::Deferred {
                    id,
                    error,
                    counted,
                    next_attempt_at,
                    expires_at,
                } => {
                    tx.prepare_cached(
                        "UPDATE mail_bulletins SET state = 'pending', last_error = ?2, updated_at = ?3,
                         attempts = attempts + ?4, next_attempt_at = ?5,
                         expires_at = COALESCE(expires_at, ?6) WHERE id = ?1",
                    )?
                    .execute(params![
                        id,
                        error,
                        now,
                        i64::from(*counted),
                        next_attempt_at,
                        expires_at
                    ])?;
                }
            }
        }
        Ok(())
    }
}

/// One change to a bulletin row (see [`MailStore::record`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Change {
    /// Written, and committed, before the message data goes out.
    Sending { id: i64 },
    /// The final outcome of a send.
    Done {
        id: i64,
        subscriber_id: i64,
        state: BulletinState,
        error: Option<String>,
    },
    /// A temporary failure: back to pending, with the error, to be retried.
    /// `counted`: whether it adds an attempt (a refusal after the data was
    /// already counted by `Sending`).
    Deferred {
        id: i64,
        error: String,
        counted: bool,
        /// Not sent again before this (RFC 3339); journals written before the
        /// deferred queue have none.
        #[serde(default)]
        next_attempt_at: Option<String>,
        /// Failed when still deferred at this time; set by the first deferral only.
        #[serde(default)]
        expires_at: Option<String>,
    },
}

/// Bring an older database's tables to this version, once, under the write lock.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let table = |c: &Connection, name: &str| -> rusqlite::Result<Option<String>> {
        c.query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
    };
    let current = |c: &Connection| -> rusqlite::Result<bool> {
        Ok(
            table(c, "mail_subscribers")?.is_some_and(|sql| sql.contains("complained"))
                && table(c, "mail_events")?.is_some_and(|sql| sql.contains("status_code"))
                && table(c, "mail_bulletins")?.is_some_and(|sql| sql.contains("'confirmation'")),
        )
    };
    // Up to date (the usual case): no write lock taken, so opening never waits for a writer.
    if current(conn)? {
        return conn.execute_batch(INDEXES);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    match table(&tx, "mail_subscribers")? {
        None => tx.execute_batch(SUBSCRIBERS)?,
        Some(sql) if !sql.contains("token_key") => {
            tracing::info!(
                "mail store: migrating mail_subscribers (ids never reused, links bound to rows, consent history)"
            );
            tx.execute_batch(MIGRATE_V1)?;
        }
        Some(_) => {}
    }
    if table(&tx, "mail_events")?.is_some_and(|sql| !sql.contains("status_code")) {
        tx.execute_batch(MIGRATE_V3_EVENTS)?;
    }
    if table(&tx, "mail_subscribers")?.is_some_and(|sql| !sql.contains("complained")) {
        tracing::info!("mail store: migrating for bounces, complaints and the deferred queue");
        tx.execute_batch(MIGRATE_V3_SUBSCRIBERS)?;
    }
    if table(&tx, "mail_bulletins")?.is_some_and(|sql| !sql.contains("expires_at")) {
        tx.execute_batch(MIGRATE_V3_BULLETINS)?;
    }
    if table(&tx, "mail_bulletins")?.is_some_and(|sql| !sql.contains("'confirmation'")) {
        tracing::info!("mail store: migrating mail_bulletins to version 4 (a kind per row)");
        tx.execute_batch(MIGRATE_V4_BULLETINS)?;
    }
    tx.execute_batch(INDEXES)?;
    tx.commit()
}

fn subscriber_where(
    conn: &Connection,
    condition: &str,
    value: impl rusqlite::ToSql,
) -> Result<Option<Subscriber>, StoreError> {
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM mail_subscribers WHERE {condition}"
        ))?
        .query_row([value], RawSubscriber::from_row)
        .optional()?;
    raw.map(RawSubscriber::cook).transpose()
}

/// Set `status` with its event (none for an unchanged status).
fn change_status(
    tx: &Connection,
    id: i64,
    status: Status,
    origin: Origin<'_>,
    detail: &str,
    now: &str,
) -> Result<(), StoreError> {
    let before: Option<String> = tx
        .query_row(
            "SELECT status FROM mail_subscribers WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(before) = before else {
        return Err(StoreError::NotFound(format!("#{id}")));
    };
    let source = Some(origin.source).filter(|s| !s.is_empty());
    if status == Status::Confirmed {
        tx.execute(
            "UPDATE mail_subscribers SET status = ?2, consent_at = ?3, updated_at = ?3,
             consent_source = COALESCE(?4, consent_source), hard_failures = 0,
             confirm_key = NULL, legacy_tokens = MIN(legacy_tokens, 1) WHERE id = ?1",
            params![id, status.as_str(), now, source],
        )?;
    } else {
        tx.execute(
            "UPDATE mail_subscribers SET status = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, status.as_str(), now],
        )?;
    }
    after_status(tx, id, status, now)?;
    if before != status.as_str() {
        let kind = match status {
            Status::Pending => EventKind::Subscribe,
            Status::Confirmed => EventKind::Confirm,
            Status::Unsubscribed => EventKind::Unsubscribe,
            Status::Bounced => EventKind::Bounce,
            Status::Complained => EventKind::Complaint,
        };
        record_event(tx, id, kind, now, origin, detail)?;
    }
    Ok(())
}

/// Nothing still queued goes out after an unsubscribe or a bounce.
pub(crate) fn after_status(
    tx: &Connection,
    id: i64,
    status: Status,
    now: &str,
) -> Result<(), StoreError> {
    if matches!(
        status,
        Status::Unsubscribed | Status::Bounced | Status::Complained
    ) {
        tx.prepare_cached(
            "UPDATE mail_bulletins SET state = 'failed', last_error = ?2, updated_at = ?3
             WHERE subscriber_id = ?1 AND state = 'pending'",
        )?
        .execute(params![id, format!("subscriber {}", status.as_str()), now])?;
    }
    Ok(())
}

/// Insert a row (a fresh id, never used before, and a random token key) and its
/// first events. Returns the id.
fn insert_subscriber(
    conn: &Connection,
    new: &NewSubscriber,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let consent = match (new.consent_at, new.status) {
        (Some(at), _) => Some(ts(at)),
        (None, Status::Confirmed) => Some(ts(now)),
        (None, _) => None,
    };
    let r = conn
        .prepare_cached(
            "INSERT INTO mail_subscribers
             (address, name, lang, topics, status, consent_at, consent_source, consent_ip, created_at, updated_at,
              token_key, confirm_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, random(), CASE WHEN ?5 != 'confirmed' THEN random() END)",
        )?
        .execute(params![
            new.address,
            new.name,
            new.lang,
            new.topics.join(","),
            new.status.as_str(),
            consent,
            new.consent_source,
            new.consent_ip,
            ts(now)
        ]);
    match r {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(StoreError::Exists(new.address.clone()));
        }
        Err(e) => return Err(e.into()),
    }
    let id = conn.last_insert_rowid();
    let origin = Origin {
        source: &new.consent_source,
        ip: new.consent_ip.as_deref(),
    };
    record_event(
        conn,
        id,
        EventKind::Subscribe,
        &ts(now),
        origin,
        &format!("added as {}", new.status),
    )?;
    if let Some(at) = &consent {
        record_event(
            conn,
            id,
            EventKind::Confirm,
            at,
            origin,
            "consent given before adding",
        )?;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn langs() -> Vec<String> {
        vec!["en".into(), "ru".into(), "kk".into()]
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("valid")
    }

    fn new(address: &str) -> NewSubscriber {
        NewSubscriber {
            address: address.into(),
            name: "Aigerim Nurlanovna".into(),
            lang: "kk".into(),
            topics: vec!["migration".into(), "trafficking".into(), "migration".into()],
            status: Status::Confirmed,
            consent_source: "cli".into(),
            consent_ip: None,
            consent_at: None,
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address(" A.b+x@Example.ORG "),
            Ok("A.b+x@example.org".into())
        );
        for bad in [
            "",
            "plain",
            "a@b",
            "a b@example.org",
            "a@example.org\r\nBcc: x@evil.org",
            "Name <a@example.org>",
            "a@@example.org",
            "@example.org",
            "a@.example.org",
            "a@example.org.",
        ] {
            let e = parse_address(bad).expect_err(bad);
            assert!(e.to_string().contains("not a valid email address"), "{e}");
        }
    }

    #[test]
    fn subscriber_round_trip_and_duplicates() {
        let store = MailStore::in_memory().expect("store");
        let s = store
            .add_subscriber(new("reader@Example.org"), &langs(), now())
            .expect("added");
        assert_eq!(s.address, "reader@example.org");
        assert_eq!(s.topics, vec!["migration", "trafficking"]);
        assert_eq!(s.status, Status::Confirmed);
        assert_eq!(s.consent_at, Some(now()));
        assert_eq!(store.subscriber(s.id).expect("q"), Some(s.clone()));
        assert_eq!(
            store
                .subscriber_by_address("READER@example.org")
                .expect("q")
                .map(|x| x.id),
            Some(s.id)
        );
        let dup = store.add_subscriber(new("Reader@example.org"), &langs(), now());
        assert!(matches!(dup, Err(StoreError::Exists(_))), "{dup:?}");
        assert!(s.wants(&["migration".into()]));
        assert!(!s.wants(&["health".into()]));
    }

    #[test]
    fn invalid_fields_refused() {
        let store = MailStore::in_memory().expect("store");
        let mut n = new("x@example.org");
        n.lang = "fr".into();
        let e = store.add_subscriber(n, &langs(), now()).expect_err("lang");
        assert!(
            e.to_string().contains("\"fr\" is not one of en, ru, kk"),
            "{e}"
        );
        let mut n = new("x@example.org");
        n.name = "Evil\r\nBcc: a@b.org".into();
        assert!(matches!(
            store.add_subscriber(n, &langs(), now()),
            Err(StoreError::Subscriber(SubscriberError::Name))
        ));
        let mut n = new("x@example.org");
        n.topics = vec!["Human Rights".into()];
        assert!(matches!(
            store.add_subscriber(n, &langs(), now()),
            Err(StoreError::Subscriber(SubscriberError::Topic(_)))
        ));
        assert!(store.subscribers(None).expect("list").is_empty());
    }

    #[test]
    fn status_preferences_remove_expire() {
        let store = MailStore::in_memory().expect("store");
        let mut n = new("p@example.org");
        n.status = Status::Pending;
        let p = store.add_subscriber(n, &langs(), now()).expect("added");
        assert_eq!(p.consent_at, None);
        let later = now() + chrono::Duration::hours(1);
        store
            .set_status(p.id, Status::Confirmed, Origin::new("web"), later)
            .expect("confirm");
        let p = store.subscriber(p.id).expect("q").expect("there");
        assert_eq!(
            (p.status, p.consent_at, p.consent_source.as_str()),
            (Status::Confirmed, Some(later), "web")
        );
        store
            .set_preferences(
                p.id,
                "ru",
                &["health".into()],
                &langs(),
                Origin::default(),
                later,
            )
            .expect("prefs");
        let p = store.subscriber(p.id).expect("q").expect("there");
        assert_eq!(
            (p.lang.as_str(), p.topics.clone()),
            ("ru", vec!["health".to_string()])
        );
        assert!(
            store
                .set_preferences(p.id, "de", &[], &langs(), Origin::default(), later)
                .is_err()
        );
        assert!(matches!(
            store.set_status(999, Status::Confirmed, Origin::default(), later),
            Err(StoreError::NotFound(_))
        ));

        let mut n = new("old@example.org");
        n.status = Status::Pending;
        store.add_subscriber(n, &langs(), now()).expect("added");
        assert_eq!(store.expire_pending(later).expect("expire"), 1);
        assert_eq!(
            store
                .subscribers(Some(Status::Confirmed))
                .expect("list")
                .len(),
            1
        );
        assert!(store.remove_subscriber("P@example.org").expect("rm"));
        assert!(!store.remove_subscriber("P@example.org").expect("rm"));
        assert!(store.subscribers(None).expect("list").is_empty());
    }

    fn secret() -> crate::Secret {
        crate::Secret::from_bytes(&[9u8; 32]).expect("key")
    }

    fn claim(token: &str, purpose: Purpose) -> Claim {
        secret().verify(token, purpose, now()).expect("genuine")
    }

    fn pending(address: &str) -> NewSubscriber {
        NewSubscriber {
            status: Status::Pending,
            consent_source: "web form".into(),
            consent_ip: Some("192.0.2.7".into()),
            ..new(address)
        }
    }

    #[test]
    fn ids_are_never_reused_after_remove_or_sweep() {
        let store = MailStore::in_memory().expect("store");
        let later = now() + chrono::Duration::hours(1);
        // Remove: the attacker's row goes, the victim's is new.
        let attacker = store
            .add_subscriber(pending("attacker@example.org"), &langs(), now())
            .expect("add");
        let key = store
            .begin_confirmation(attacker.id, Origin::new("web form"), now())
            .expect("key");
        let confirm = secret().issue(Purpose::Confirm, attacker.id, key, None);
        let prefs = secret().issue(Purpose::Preferences, attacker.id, attacker.token_key, None);
        assert!(store.remove_subscriber("attacker@example.org").expect("rm"));
        let victim = store
            .add_subscriber(pending("victim@example.org"), &langs(), later)
            .expect("add");
        store
            .begin_confirmation(victim.id, Origin::new("web form"), later)
            .expect("key");
        assert!(victim.id > attacker.id, "{} reused", victim.id);
        assert_eq!(
            store
                .bound(claim(&prefs, Purpose::Preferences), Purpose::Preferences)
                .expect("q"),
            None
        );
        assert_eq!(
            store
                .confirm(claim(&confirm, Purpose::Confirm), Origin::default(), later)
                .expect("q"),
            Confirmed::Gone
        );
        // Sweep: the same for an expired pending row.
        let swept = store
            .add_subscriber(pending("swept@example.org"), &langs(), later)
            .expect("add");
        assert_eq!(
            store
                .expire_pending(later + chrono::Duration::seconds(1))
                .expect("sweep"),
            2
        );
        let next = store
            .add_subscriber(pending("next@example.org"), &langs(), later)
            .expect("add");
        assert!(next.id > swept.id);
        assert_eq!(store.subscriber(victim.id).expect("q"), None);
        assert_eq!(store.events(Some(swept.id)).expect("events"), vec![]);
    }

    #[test]
    fn a_confirmation_link_works_once_even_after_unsubscribe() {
        let store = MailStore::in_memory().expect("store");
        let s = store
            .add_subscriber(pending("once@example.org"), &langs(), now())
            .expect("add");
        let key = store
            .begin_confirmation(s.id, Origin::new("web form"), now())
            .expect("key");
        // A second mail carries the same key until the link is used.
        assert_eq!(
            store
                .begin_confirmation(s.id, Origin::new("web form"), now())
                .expect("key"),
            key
        );
        let link = claim(
            &secret().issue(Purpose::Confirm, s.id, key, None),
            Purpose::Confirm,
        );
        let Confirmed::Now(c) = store
            .confirm(link, Origin::new("confirmation link"), now())
            .expect("confirm")
        else {
            panic!("not confirmed")
        };
        assert_eq!(c.status, Status::Confirmed);
        assert_eq!(
            store.confirm(link, Origin::default(), now()).expect("q"),
            Confirmed::Used
        );
        let unsub = claim(
            &secret().issue(Purpose::Unsubscribe, s.id, s.token_key, None),
            Purpose::Unsubscribe,
        );
        assert!(
            store
                .unsubscribe(unsub, Origin::new("one-click"), now())
                .expect("unsub")
        );
        assert!(
            !store
                .unsubscribe(unsub, Origin::new("one-click"), now())
                .expect("repeat")
        );
        assert_eq!(
            store.confirm(link, Origin::default(), now()).expect("q"),
            Confirmed::Used
        );
        assert_eq!(
            store.subscriber(s.id).expect("q").map(|s| s.status),
            Some(Status::Unsubscribed)
        );
        // Subscribing again makes a new key: the old link still does nothing.
        let again = store
            .begin_confirmation(s.id, Origin::new("web form"), now())
            .expect("key");
        assert_ne!(again, key);
        assert_eq!(
            store.confirm(link, Origin::default(), now()).expect("q"),
            Confirmed::Used
        );
        // A token made for one purpose does not act for another key.
        let wrong = Claim {
            subscriber: s.id,
            key: Some(key),
        };
        assert_eq!(store.bound(wrong, Purpose::Unsubscribe).expect("q"), None);
    }

    #[test]
    fn consent_history_records_each_step() {
        let store = MailStore::in_memory().expect("store");
        let s = store
            .add_subscriber(pending("h@example.org"), &langs(), now())
            .expect("add");
        let key = store
            .begin_confirmation(
                s.id,
                Origin {
                    source: "web form",
                    ip: Some("192.0.2.8"),
                },
                now(),
            )
            .expect("key");
        let link = Claim {
            subscriber: s.id,
            key: Some(key),
        };
        store
            .confirm(
                link,
                Origin {
                    source: "confirmation link",
                    ip: Some("192.0.2.9"),
                },
                now(),
            )
            .expect("confirm");
        store
            .set_preferences(
                s.id,
                "ru",
                &[],
                &langs(),
                Origin::new("preferences page"),
                now(),
            )
            .expect("prefs");
        let unsub = Claim {
            subscriber: s.id,
            key: Some(s.token_key),
        };
        store
            .unsubscribe(unsub, Origin::new("unsubscribe link"), now())
            .expect("unsub");
        let kinds: Vec<(EventKind, String, Option<String>)> = store
            .events(Some(s.id))
            .expect("events")
            .into_iter()
            .map(|e| (e.kind, e.source, e.ip))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (
                    EventKind::Subscribe,
                    "web form".into(),
                    Some("192.0.2.7".into())
                ),
                (
                    EventKind::Subscribe,
                    "web form".into(),
                    Some("192.0.2.8".into())
                ),
                (
                    EventKind::Confirm,
                    "confirmation link".into(),
                    Some("192.0.2.9".into())
                ),
                (EventKind::Preferences, "preferences page".into(), None),
                (EventKind::Unsubscribe, "unsubscribe link".into(), None),
            ]
        );
    }

    #[test]
    fn a_busy_writer_fails_fast_and_readers_do_not_wait() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("herald.db");
        let store = MailStore::open(&path).expect("open");
        let s = store
            .add_subscriber(new("r@example.org"), &langs(), now())
            .expect("add");
        store
            .set_write_wait(Duration::from_millis(100))
            .expect("wait");
        // Another process holds the write lock (as a sender applying its journal does).
        let other = Connection::open(&path).expect("open");
        other
            .execute_batch("BEGIN IMMEDIATE; UPDATE mail_subscribers SET name = 'x';")
            .expect("lock");
        let e = store.add_subscriber(new("w@example.org"), &langs(), now());
        assert!(matches!(e, Err(StoreError::Busy)), "{e:?}");
        assert_eq!(
            store.subscriber(s.id).expect("read").map(|s| s.name),
            Some(s.name.clone())
        );
        assert_eq!(store.subscribers(None).expect("read").len(), 1);
        other.execute_batch("COMMIT").expect("commit");
        store
            .add_subscriber(new("w@example.org"), &langs(), now())
            .expect("added once free");
    }

    #[test]
    fn file_store_is_wal_and_reopens() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join(".herald/herald.db");
        {
            let store = MailStore::open(&path).expect("open");
            store
                .add_subscriber(new("a@example.org"), &langs(), now())
                .expect("add");
        }
        let store = MailStore::open(&path).expect("reopen");
        assert_eq!(store.subscribers(None).expect("list").len(), 1);
        let mode: String = store
            .conn()
            .expect("conn")
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(mode, "wal");
    }
}
