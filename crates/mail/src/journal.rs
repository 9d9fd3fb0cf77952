//! The sender's journal: bulletin changes appended to a file beside the
//! database while a delivery runs, and applied to SQLite in large batches.
//!
//! A send must have its `sending` row on disk before the message data goes
//! out. Committing a SQLite transaction for that costs far more than the
//! message; appending one line to a file costs a single `write`. Both reach
//! the OS, not the platter (the database runs with `synchronous=NORMAL`), so a
//! killed process loses nothing either way.
//!
//! The file starts with a header naming its generation. A checkpoint applies
//! every change since the header in one transaction that also records the
//! generation as applied, then truncates the file and writes the next header.
//! Replaying a journal whose generation is already applied does nothing, so a
//! crash between the commit and the truncation cannot apply a change twice.
//! A torn last line (no newline) is ignored: its write never returned, so no
//! send followed it, and a row it would have finished stays `sending`, to be
//! reported ambiguous.
//!
//! The writer holds an exclusive lock on the file; a store opened meanwhile
//! (`herald status`, `herald serve`) leaves it alone and reads the ledger as of
//! the last checkpoint.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{Change, MailStore, StoreError, ts};

/// Changes applied to SQLite per checkpoint.
const CHECKPOINT: usize = 4096;
/// How long a new writer waits for a reader's replay to let go of the file.
const LOCK_WAIT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize)]
struct Header {
    generation: i64,
    now: String,
    bounce_after: u32,
}

/// The journal of one delivery run (see the module docs).
pub(crate) struct Journal<'a> {
    store: &'a MailStore,
    /// `None` for an in-memory store: changes go straight to SQLite.
    file: Option<(File, PathBuf)>,
    generation: i64,
    now: DateTime<Utc>,
    bounce_after: u32,
    unapplied: Vec<Change>,
    line: Vec<u8>,
    finished: bool,
}

fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::JournalIo {
        path: path.display().to_string(),
        source,
    }
}

fn open_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| io_err(path, e))
}

/// Apply what a journal left behind (a crashed or killed run), unless a live
/// writer holds it. Called when the store opens.
pub(crate) fn replay(store: &MailStore, path: &Path) -> Result<(), StoreError> {
    if !path.exists() {
        return Ok(());
    }
    let mut file = open_file(path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(()),
        Err(TryLockError::Error(e)) => return Err(io_err(path, e)),
    }
    replay_locked(store, &mut file, path)
}

/// Apply the journal in `file` (locked by the caller) if its generation is
/// new, then empty it. The file is never removed, so a writer and a replaying
/// reader always lock the same file.
fn replay_locked(store: &MailStore, file: &mut File, path: &Path) -> Result<(), StoreError> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| io_err(path, e))?;
    let complete = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(&bytes[..0], |i| &bytes[..=i]);
    let mut lines = complete.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    if let Some(head) = lines.next() {
        let bad = |line: usize, message: String| StoreError::Journal {
            path: path.display().to_string(),
            line,
            message,
        };
        let header: Header = serde_json::from_slice(head).map_err(|e| bad(1, e.to_string()))?;
        if header.generation > store.journal_generation()? {
            let now = DateTime::parse_from_rfc3339(&header.now)
                .map_err(|e| bad(1, format!("bad time {:?}: {e}", header.now)))?
                .with_timezone(&Utc);
            let mut changes = Vec::new();
            for (i, line) in lines.enumerate() {
                let group: Vec<Change> =
                    serde_json::from_slice(line).map_err(|e| bad(i + 2, e.to_string()))?;
                changes.extend(group);
            }
            store.apply_generation(&changes, header.bounce_after, now, header.generation)?;
        }
    }
    file.set_len(0).map_err(|e| io_err(path, e))
}

impl MailStore {
    /// Start the journal of a delivery run: replay what a previous run left,
    /// then begin a new generation.
    pub(crate) fn journal(
        &self,
        bounce_after: u32,
        now: DateTime<Utc>,
    ) -> Result<Journal<'_>, StoreError> {
        let mut journal = Journal {
            store: self,
            file: None,
            generation: 0,
            now,
            bounce_after,
            unapplied: Vec::new(),
            line: Vec::new(),
            finished: false,
        };
        let Some(path) = self.journal_path() else {
            return Ok(journal);
        };
        let mut file = open_file(path)?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StoreError::Write(format!(
                        "{} is held by another process that is sending mail; wait for it to finish",
                        path.display()
                    )));
                }
                Err(TryLockError::Error(e)) => return Err(io_err(path, e)),
            }
        }
        replay_locked(self, &mut file, path)?;
        journal.generation = self.journal_generation()? + 1;
        journal.file = Some((file, path.to_path_buf()));
        journal.write_header()?;
        Ok(journal)
    }
}

impl Journal<'_> {
    fn write_header(&mut self) -> Result<(), StoreError> {
        let Some((file, path)) = &mut self.file else {
            return Ok(());
        };
        self.line.clear();
        serde_json::to_writer(
            &mut self.line,
            &Header {
                generation: self.generation,
                now: ts(self.now),
                bounce_after: self.bounce_after,
            },
        )
        .map_err(|e| StoreError::Write(e.to_string()))?;
        self.line.push(b'\n');
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&self.line))
            .map_err(|e| io_err(path, e))
    }

    /// Record `changes`, in order, before returning: one line in the journal
    /// (or, for an in-memory store, one transaction).
    pub(crate) fn append(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let Some((file, path)) = &mut self.file else {
            return self.store.record(changes, self.bounce_after, self.now);
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, changes)
            .map_err(|e| StoreError::Write(e.to_string()))?;
        self.line.push(b'\n');
        file.write_all(&self.line).map_err(|e| io_err(path, e))?;
        self.unapplied.extend_from_slice(changes);
        if self.unapplied.len() >= CHECKPOINT {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Apply the journal to SQLite and start the next generation.
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        let Some((file, path)) = &mut self.file else {
            return Ok(());
        };
        self.store.apply_generation(
            &self.unapplied,
            self.bounce_after,
            self.now,
            self.generation,
        )?;
        self.unapplied.clear();
        file.set_len(0).map_err(|e| io_err(path, e))?;
        self.generation += 1;
        self.write_header()
    }

    /// Apply everything and leave the journal empty.
    pub(crate) fn finish(&mut self) -> Result<(), StoreError> {
        if self.finished {
            return Ok(());
        }
        self.checkpoint()?;
        if let Some((file, path)) = &mut self.file {
            file.set_len(0).map_err(|e| io_err(path, e))?;
        }
        self.finished = true;
        Ok(())
    }
}

#[cfg(test)]
impl Journal<'_> {
    /// Close the file as a killed process would: nothing applied, lock released.
    fn abandon(mut self) {
        self.finished = true;
    }
}

impl Drop for Journal<'_> {
    fn drop(&mut self) {
        // On an error path: what is journaled reaches SQLite now if it can,
        // and otherwise on the next open.
        if let Err(e) = self.finish() {
            tracing::warn!("mail journal left for the next run: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BulletinState, NewBulletin, NewSubscriber, Status};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7)
            .single()
            .expect("valid")
    }

    /// A store file with one subscriber and one pending bulletin row.
    fn store(dir: &Path) -> (PathBuf, i64, i64) {
        let db = dir.join("herald.db");
        let store = MailStore::open(&db).expect("open");
        let sub = store
            .add_subscriber(
                NewSubscriber {
                    address: "desk@example.org".into(),
                    name: "Desk".into(),
                    lang: "en".into(),
                    topics: vec![],
                    status: Status::Confirmed,
                    consent_source: "test".into(),
                    consent_ip: None,
                    consent_at: None,
                },
                &["en".into()],
                now(),
            )
            .expect("subscriber");
        store
            .queue_bulletins(
                &[NewBulletin {
                    statement_id: "2026/s".into(),
                    version: "v1".into(),
                    lang: "en".into(),
                    subscriber_id: sub.id,
                    address: sub.address.clone(),
                    message_id: "<m@example.org>".into(),
                    ..NewBulletin::default()
                }],
                now(),
            )
            .expect("queue");
        let row = store.bulletins(None).expect("rows")[0].id;
        (db, row, sub.id)
    }

    fn journal_of(db: &Path) -> PathBuf {
        PathBuf::from(format!("{}-mail-journal", db.display()))
    }

    fn failed(id: i64, subscriber_id: i64) -> Change {
        Change::Done {
            id,
            subscriber_id,
            state: BulletinState::Failed,
            error: Some("550 no such user\nsecond line".into()),
        }
    }

    fn hard_failures(store: &MailStore, id: i64) -> i64 {
        store
            .conn()
            .expect("conn")
            .query_row(
                "SELECT hard_failures FROM mail_subscribers WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .expect("row")
    }

    #[test]
    fn a_killed_writer_is_replayed_once_on_the_next_open() {
        let dir = tempfile::tempdir().expect("tmp");
        let (db, row, sub) = store(dir.path());
        let store = MailStore::open(&db).expect("open");
        let mut journal = store.journal(3, now()).expect("journal");
        journal
            .append(&[Change::Sending { id: row }, failed(row, sub)])
            .expect("append");
        // Nothing is in SQLite yet: a kill here must lose nothing.
        assert_eq!(
            store.bulletins(None).expect("rows")[0].state,
            BulletinState::Pending
        );
        journal.abandon();
        drop(store);

        let store = MailStore::open(&db).expect("reopen");
        let b = &store.bulletins(None).expect("rows")[0];
        assert_eq!(b.state, BulletinState::Failed);
        assert_eq!(b.attempts, 1);
        assert_eq!(
            b.last_error.as_deref(),
            Some("550 no such user\nsecond line")
        );
        assert_eq!(hard_failures(&store, sub), 1);
        drop(store);
        // Opening again applies nothing twice.
        let store = MailStore::open(&db).expect("again");
        assert_eq!(hard_failures(&store, sub), 1);
        assert_eq!(store.bulletins(None).expect("rows")[0].attempts, 1);
    }

    #[test]
    fn a_generation_already_applied_is_not_applied_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let (db, row, sub) = store(dir.path());
        let store = MailStore::open(&db).expect("open");
        let mut journal = store.journal(3, now()).expect("journal");
        journal.append(&[failed(row, sub)]).expect("append");
        // A crash after the checkpoint's commit, before the file was emptied.
        store
            .apply_generation(&[failed(row, sub)], 3, now(), journal.generation)
            .expect("apply");
        journal.abandon();
        drop(store);
        let store = MailStore::open(&db).expect("reopen");
        assert_eq!(hard_failures(&store, sub), 1);
        assert_eq!(std::fs::metadata(journal_of(&db)).expect("file").len(), 0);
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let (db, row, sub) = store(dir.path());
        let header = format!(
            "{{\"generation\":1,\"now\":\"{}\",\"bounce_after\":3}}\n",
            ts(now())
        );
        let sending = format!("[{{\"sending\":{{\"id\":{row}}}}}]\n");
        let torn = format!("[{{\"done\":{{\"id\":{row},\"subscriber_id\":{sub},\"sta");
        std::fs::write(journal_of(&db), format!("{header}{sending}{torn}")).expect("write");
        let store = MailStore::open(&db).expect("open");
        let b = &store.bulletins(None).expect("rows")[0];
        assert_eq!(b.state, BulletinState::Sending);
        drop(store);

        let header2 = header.replace("\"generation\":1", "\"generation\":2");
        std::fs::write(journal_of(&db), format!("{header2}{sending}not json\n")).expect("write");
        let e = MailStore::open(&db).expect_err("a corrupt journal");
        let msg = e.to_string();
        assert!(msg.contains("herald.db-mail-journal line 3"), "{msg}");
        assert!(msg.contains("keep the file"), "{msg}");
        // Nothing of the bad generation was applied.
        let conn = rusqlite::Connection::open(&db).expect("sqlite");
        let attempts: i64 = conn
            .query_row("SELECT attempts FROM mail_bulletins", [], |r| r.get(0))
            .expect("row");
        assert_eq!(attempts, 1);
    }

    #[test]
    fn a_store_opened_during_a_send_replays_it_before_sending_itself() {
        let dir = tempfile::tempdir().expect("tmp");
        let (db, row, _) = store(dir.path());
        let sender = MailStore::open(&db).expect("open");
        let mut journal = sender.journal(3, now()).expect("journal");
        journal
            .append(&[Change::Sending { id: row }])
            .expect("append");
        // Opened while the sender is live: it reads the ledger without the journal.
        let later = MailStore::open(&db).expect("open");
        journal.abandon();
        drop(sender);
        assert_eq!(
            later.bulletins(None).expect("rows")[0].state,
            BulletinState::Pending
        );
        // Its own send starts by applying what the killed one left.
        let _mine = later.journal(3, now()).expect("journal");
        assert_eq!(
            later.bulletins(None).expect("rows")[0].state,
            BulletinState::Sending
        );
        assert_eq!(later.recover_interrupted(false, now()).expect("recover"), 1);
    }

    #[test]
    fn a_live_writer_is_left_alone_and_finish_applies_everything() {
        let dir = tempfile::tempdir().expect("tmp");
        let (db, row, sub) = store(dir.path());
        let store = MailStore::open(&db).expect("open");
        let mut journal = store.journal(3, now()).expect("journal");
        journal
            .append(&[Change::Sending { id: row }])
            .expect("append");
        // Another process (`herald status`) opens the store meanwhile.
        let reader = MailStore::open(&db).expect("reader");
        assert_eq!(
            reader.bulletins(None).expect("rows")[0].state,
            BulletinState::Pending
        );
        assert!(std::fs::metadata(journal_of(&db)).expect("file").len() > 0);
        journal
            .append(&[Change::Done {
                id: row,
                subscriber_id: sub,
                state: BulletinState::Sent,
                error: None,
            }])
            .expect("append");
        journal.finish().expect("finish");
        assert_eq!(std::fs::metadata(journal_of(&db)).expect("file").len(), 0);
        assert_eq!(
            reader.bulletins(None).expect("rows")[0].state,
            BulletinState::Sent
        );
    }

    #[test]
    fn checkpoints_bound_what_waits_in_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let (db, row, _) = store(dir.path());
        let store = MailStore::open(&db).expect("open");
        let mut journal = store.journal(3, now()).expect("journal");
        for _ in 0..CHECKPOINT {
            journal
                .append(&[Change::Sending { id: row }])
                .expect("append");
        }
        // The checkpoint ran: SQLite has every change, the file only a header.
        assert_eq!(
            store.bulletins(None).expect("rows")[0].attempts as usize,
            CHECKPOINT
        );
        let text = std::fs::read_to_string(journal_of(&db)).expect("read");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("\"generation\":2"), "{text}");
    }
}
