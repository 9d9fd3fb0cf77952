//! The mail tables in the project's SQLite file (`.herald/herald.db`): subscribers
//! and the bulletin ledger. The pipeline keeps its own tables in the same file; every
//! table here starts with `mail_`.
//!
//! One connection per `MailStore`, behind a mutex so a store can be shared between
//! threads (`herald serve`). WAL mode and a busy timeout let several processes use
//! the file at once.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mail_subscribers (
    id             INTEGER PRIMARY KEY,
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
    updated_at     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mail_bulletins (
    id            INTEGER PRIMARY KEY,
    statement_id  TEXT NOT NULL,
    version       TEXT NOT NULL,
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
    UNIQUE (statement_id, subscriber_id, version)
);
CREATE INDEX IF NOT EXISTS mail_bulletins_state ON mail_bulletins (state, id);
CREATE INDEX IF NOT EXISTS mail_bulletins_subscriber ON mail_bulletins (subscriber_id, statement_id);
CREATE TABLE IF NOT EXISTS mail_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("mail store {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("mail store: {0}")]
    Sql(#[from] rusqlite::Error),
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
    /// Hard failures on repeated bulletins: receives nothing.
    Bounced,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Unsubscribed => "unsubscribed",
            Status::Bounced => "bounced",
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

/// One ledger row: one statement version to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bulletin {
    pub id: i64,
    pub statement_id: String,
    /// The digest of the translation sent.
    pub version: String,
    pub lang: String,
    pub subscriber_id: i64,
    pub address: String,
    /// Without angle brackets.
    pub message_id: String,
    pub state: BulletinState,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// A row to queue (see [`MailStore::queue_bulletins`]).
#[derive(Debug, Clone)]
pub struct NewBulletin {
    pub statement_id: String,
    pub version: String,
    pub lang: String,
    pub subscriber_id: i64,
    pub address: String,
    pub message_id: String,
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_ts(column: &'static str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt {
            column,
            value: s.to_string(),
        })
}

const SUBSCRIBER_COLUMNS: &str = "id, address, name, lang, topics, status, consent_at, consent_source, consent_ip, hard_failures, created_at, updated_at";

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
        })
    }
}

const BULLETIN_COLUMNS: &str = "id, statement_id, version, lang, subscriber_id, address, message_id, state, attempts, last_error";

fn bulletin_from_row(r: &Row<'_>) -> rusqlite::Result<(Bulletin, String)> {
    let state: String = r.get(7)?;
    Ok((
        Bulletin {
            id: r.get(0)?,
            statement_id: r.get(1)?,
            version: r.get(2)?,
            lang: r.get(3)?,
            subscriber_id: r.get(4)?,
            address: r.get(5)?,
            message_id: r.get(6)?,
            state: BulletinState::Pending,
            attempts: u32::try_from(r.get::<_, i64>(8)?).unwrap_or(u32::MAX),
            last_error: r.get(9)?,
        },
        state,
    ))
}

fn cook_bulletin((mut b, state): (Bulletin, String)) -> Result<Bulletin, StoreError> {
    b.state = BulletinState::parse(&state)?;
    Ok(b)
}

/// The mail tables of one SQLite file.
#[derive(Debug)]
pub struct MailStore {
    conn: Mutex<Connection>,
    /// The sender's journal beside the database (none in memory).
    journal: Option<PathBuf>,
}

impl MailStore {
    /// Open (creating if needed) the database at `path` and its mail tables.
    pub fn open(path: &Path) -> Result<MailStore, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                open_err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("cannot create {}: {e}", dir.display())),
                ))
            })?;
        }
        let conn = Connection::open(path).map_err(open_err)?;
        let mut store = Self::init(conn).map_err(open_err)?;
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
        Ok(Self::init(conn)?)
    }

    fn init(conn: Connection) -> rusqlite::Result<MailStore> {
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Durable against a killed process; a power loss may lose the last
        // transactions (see docs/mail.md).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(MailStore {
            conn: Mutex::new(conn),
            journal: None,
        })
    }

    pub(crate) fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
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
        let conn = self.conn()?;
        insert_subscriber(&conn, &new, now)?;
        drop(conn);
        self.subscriber_by_address(&new.address)?
            .ok_or(StoreError::NotFound(new.address))
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
        let conn = self.conn()?;
        let raw = conn
            .query_row(
                &format!("SELECT {SUBSCRIBER_COLUMNS} FROM mail_subscribers WHERE id = ?1"),
                [id],
                RawSubscriber::from_row,
            )
            .optional()?;
        raw.map(RawSubscriber::cook).transpose()
    }

    /// By address, ignoring case.
    pub fn subscriber_by_address(&self, address: &str) -> Result<Option<Subscriber>, StoreError> {
        let conn = self.conn()?;
        let raw = conn
            .query_row(
                &format!("SELECT {SUBSCRIBER_COLUMNS} FROM mail_subscribers WHERE address = ?1"),
                [address.trim()],
                RawSubscriber::from_row,
            )
            .optional()?;
        raw.map(RawSubscriber::cook).transpose()
    }

    /// Every subscriber (or those with `status`), by id.
    pub fn subscribers(&self, status: Option<Status>) -> Result<Vec<Subscriber>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM mail_subscribers WHERE ?1 IS NULL OR status = ?1 ORDER BY id"
        ))?;
        let rows = stmt
            .query_map([status.map(Status::as_str)], RawSubscriber::from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(RawSubscriber::cook).collect()
    }

    /// Change a subscriber's status. Confirming records `now` as the consent time
    /// (and `source`, when given).
    pub fn set_status(
        &self,
        id: i64,
        status: Status,
        source: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let n = if status == Status::Confirmed {
            conn.execute(
                "UPDATE mail_subscribers SET status = ?2, consent_at = ?3, updated_at = ?3,
                 consent_source = COALESCE(?4, consent_source), hard_failures = 0 WHERE id = ?1",
                params![id, status.as_str(), ts(now), source],
            )?
        } else {
            conn.execute(
                "UPDATE mail_subscribers SET status = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, status.as_str(), ts(now)],
            )?
        };
        if n == 0 {
            return Err(StoreError::NotFound(format!("#{id}")));
        }
        if matches!(status, Status::Unsubscribed | Status::Bounced) {
            // Nothing still queued goes out after an unsubscribe.
            conn.execute(
                "UPDATE mail_bulletins SET state = 'failed', last_error = ?2, updated_at = ?3
                 WHERE subscriber_id = ?1 AND state = 'pending'",
                params![id, format!("subscriber {}", status.as_str()), ts(now)],
            )?;
        }
        Ok(())
    }

    /// Change language and topics (validated against `languages`).
    pub fn set_preferences(
        &self,
        id: i64,
        lang: &str,
        topics: &[String],
        languages: &[String],
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
        let n = self.conn()?.execute(
            "UPDATE mail_subscribers SET lang = ?2, topics = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, checked.lang, checked.topics.join(","), ts(now)],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("#{id}")));
        }
        Ok(())
    }

    /// Delete a subscriber and whatever is still queued for them; sent rows stay in
    /// the ledger. Returns whether the address was known.
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
        tx.execute("DELETE FROM mail_subscribers WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(true)
    }

    /// Delete pending (unconfirmed) subscriptions created before `before`.
    pub fn expire_pending(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(self.conn()?.execute(
            "DELETE FROM mail_subscribers WHERE status = 'pending' AND created_at < ?1",
            [ts(before)],
        )?)
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
                 (statement_id, version, lang, subscriber_id, address, message_id, state, queued_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)",
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
                    now
                ])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Subscriber ids that already have a bulletin row for `statement_id` (any version).
    pub fn bulletined(
        &self,
        statement_id: &str,
    ) -> Result<std::collections::HashSet<i64>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare("SELECT DISTINCT subscriber_id FROM mail_bulletins WHERE statement_id = ?1")?;
        let ids = stmt
            .query_map([statement_id], |r| r.get(0))?
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
             WHERE statement_id = ?1 GROUP BY subscriber_id",
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

    /// Whether any row is pending or left in `sending`: a run has mail to deliver.
    pub fn has_work(&self) -> Result<bool, StoreError> {
        Ok(self.conn()?.query_row(
            "SELECT EXISTS (SELECT 1 FROM mail_bulletins WHERE state IN ('pending', 'sending'))",
            [],
            |r| r.get(0),
        )?)
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
                        "UPDATE mail_bulletins SET state = ?2, last_error = ?3, updated_at = ?4, sent_at = COALESCE(?5, sent_at)
                         WHERE id = ?1",
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
                Change::Deferred { id, error, counted } => {
                    tx.prepare_cached(
                        "UPDATE mail_bulletins SET state = 'pending', last_error = ?2, updated_at = ?3,
                         attempts = attempts + ?4 WHERE id = ?1",
                    )?
                    .execute(params![id, error, now, i64::from(*counted)])?;
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
    },
}

fn insert_subscriber(
    conn: &Connection,
    new: &NewSubscriber,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let consent = match (new.consent_at, new.status) {
        (Some(at), _) => Some(ts(at)),
        (None, Status::Confirmed) => Some(ts(now)),
        (None, _) => None,
    };
    let r = conn.execute(
        "INSERT INTO mail_subscribers
         (address, name, lang, topics, status, consent_at, consent_source, consent_ip, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            new.address,
            new.name,
            new.lang,
            new.topics.join(","),
            new.status.as_str(),
            consent,
            new.consent_source,
            new.consent_ip,
            ts(now)
        ],
    );
    match r {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::Exists(new.address.clone()))
        }
        Err(e) => Err(e.into()),
    }
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
            .set_status(p.id, Status::Confirmed, Some("web"), later)
            .expect("confirm");
        let p = store.subscriber(p.id).expect("q").expect("there");
        assert_eq!(
            (p.status, p.consent_at, p.consent_source.as_str()),
            (Status::Confirmed, Some(later), "web")
        );
        store
            .set_preferences(p.id, "ru", &["health".into()], &langs(), later)
            .expect("prefs");
        let p = store.subscriber(p.id).expect("q").expect("there");
        assert_eq!(
            (p.lang.as_str(), p.topics.clone()),
            ("ru", vec!["health".to_string()])
        );
        assert!(
            store
                .set_preferences(p.id, "de", &[], &langs(), later)
                .is_err()
        );
        assert!(matches!(
            store.set_status(999, Status::Confirmed, None, later),
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
