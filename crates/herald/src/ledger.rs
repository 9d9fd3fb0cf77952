//! The ledger: what was published, per statement version and channel, in SQLite
//! (`.herald/herald.db`). Channel crates with their own state (mail) keep their own
//! tables in the same file.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    /// The file or its folder could not be opened (herald-mail's opener).
    #[error("ledger {0}")]
    Open(#[from] herald_mail::db::OpenError),
}

pub struct Ledger {
    conn: Connection,
    path: String,
}

/// A statement version recorded as published on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub statement: String,
    pub lang: String,
    pub channel: String,
    pub version: String,
    pub published_at: String,
}

/// A file in `public/` as the last publish left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub path: String,
    /// Hex XXH3-128 of its bytes.
    pub digest: String,
    /// The render key it was made from (see `herald_content::key`); none for files
    /// rendered every time.
    pub key: Option<u128>,
    /// Its size in bytes, when known (files kept by key are not looked at).
    pub size: Option<u64>,
    /// Its SHA-256, when a signed manifest needed it: kept files are not read again.
    pub sha256: Option<[u8; 32]>,
}

impl AsRef<str> for Output {
    fn as_ref(&self) -> &str {
        &self.path
    }
}

/// The permanent identity of a published statement in one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub first_published: DateTime<Utc>,
    pub tag_uri: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS publications (
    statement    TEXT NOT NULL,
    lang         TEXT NOT NULL,
    channel      TEXT NOT NULL,
    version      TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (statement, lang, channel, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    statement       TEXT NOT NULL,
    lang            TEXT NOT NULL,
    first_published TEXT NOT NULL,
    tag_uri         TEXT NOT NULL,
    PRIMARY KEY (statement, lang)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outputs (
    path   TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    key    TEXT,
    size   INTEGER,
    sha256 TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id         INTEGER PRIMARY KEY,
    now        TEXT NOT NULL,
    started_at TEXT NOT NULL,
    summary    TEXT NOT NULL
);
";

/// One publication row as a key (see [`Ledger::publication_keys`]): one-shot
/// XXH3 over the length-prefixed parts, on the stack, as it runs for each of
/// tens of thousands of rows.
pub fn publication_key(statement: &str, lang: &str, channel: &str, version: &str) -> u128 {
    let parts = [statement, lang, channel, version];
    let len: usize = parts.iter().map(|p| p.len() + 4).sum();
    let mut stack = [0u8; 256];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if len <= stack.len() {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let mut at = 0;
    for p in parts {
        buf[at..at + 4].copy_from_slice(&(p.len() as u32).to_le_bytes());
        buf[at + 4..at + 4 + p.len()].copy_from_slice(p.as_bytes());
        at += 4 + p.len();
    }
    xxhash_rust::xxh3::xxh3_128(buf)
}

pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Ledger {
    /// Open (creating if needed) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let shown = path.display().to_string();
        let conn = herald_mail::db::open(path, herald_mail::db::BUSY_WAIT)?;
        let err = |source| LedgerError::Sqlite {
            path: shown.clone(),
            source,
        };
        conn.execute_batch(SCHEMA).map_err(err)?;
        // Ledgers from before render keys: the column is added empty, so the next
        // publish renders every file once and records its key.
        for (column, kind) in [("key", "TEXT"), ("size", "INTEGER"), ("sha256", "TEXT")] {
            let has: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM pragma_table_info('outputs') WHERE name = ?1",
                    [column],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if has == 0 {
                conn.execute_batch(&format!("ALTER TABLE outputs ADD COLUMN {column} {kind}"))
                    .map_err(err)?;
            }
        }
        Ok(Ledger { conn, path: shown })
    }

    fn err(&self, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Every recorded (statement, lang, channel, version), as [`publication_key`]s:
    /// what the plan asks of tens of thousands of rows, without a string each.
    pub fn publication_keys(&self) -> Result<herald_content::fast::HashSet<u128>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT statement, lang, channel, version FROM publications")
            .map_err(|e| self.err(e))?;
        let mut out = herald_content::fast::HashSet::default();
        out.reserve(self.rows("publications")?);
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let text = |i| r.get_ref(i).and_then(|v| Ok(v.as_str()?));
            let key = (|| {
                Ok::<_, rusqlite::Error>(publication_key(text(0)?, text(1)?, text(2)?, text(3)?))
            })()
            .map_err(|e| self.err(e))?;
            out.insert(key);
        }
        Ok(out)
    }

    /// Every (statement, lang, channel, version) recorded, for planning.
    pub fn publications(&self) -> Result<Vec<Publication>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT statement, lang, channel, version, published_at FROM publications",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Publication {
                    statement: r.get(0)?,
                    lang: r.get(1)?,
                    channel: r.get(2)?,
                    version: r.get(3)?,
                    published_at: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn entries(&self) -> Result<Vec<(String, String, Entry)>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT statement, lang, first_published, tag_uri FROM entries")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let first: String = r.get(2)?;
                let first = DateTime::parse_from_rfc3339(&first)
                    .map(|d| d.with_timezone(&Utc))
                    .map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            2,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })?;
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    Entry {
                        first_published: first,
                        tag_uri: r.get(3)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(self.rows("entries")?);
        for row in rows {
            out.push(row.map_err(|e| self.err(e))?);
        }
        Ok(out)
    }

    pub fn get_state(&self, key: &str) -> Result<Option<String>, LedgerError> {
        self.conn
            .query_row("SELECT value FROM state WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn set_state(&mut self, key: &str, value: &str) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO state (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn clear_state(&mut self, key: &str) -> Result<(), LedgerError> {
        self.conn
            .execute("DELETE FROM state WHERE key = ?1", [key])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The path of every file the last publish recorded.
    pub fn output_paths(&self) -> Result<Vec<String>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path FROM outputs")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Every file of the last publish with its render key. The optional columns
    /// are parsed in place, without a string per row.
    pub fn outputs_keyed(&self) -> Result<Vec<Output>, LedgerError> {
        use rusqlite::types::ValueRef;
        fn text(v: ValueRef<'_>) -> Option<&str> {
            match v {
                ValueRef::Text(t) => std::str::from_utf8(t).ok(),
                _ => None,
            }
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path, digest, key, size, sha256 FROM outputs")
            .map_err(|e| self.err(e))?;
        // Sized first: growing a vector of 42,000 rows copied it over and over
        // into new memory, a third of this read.
        let mut out = Vec::with_capacity(self.rows("outputs")?);
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let get = |i| r.get_ref(i).map_err(|e| self.err(e));
            let mut sha256 = None;
            if let Some(h) = text(get(4)?) {
                let mut sum = [0u8; 32];
                if hex::decode_to_slice(h, &mut sum).is_ok() {
                    sha256 = Some(sum);
                }
            }
            out.push(Output {
                path: r.get(0).map_err(|e| self.err(e))?,
                digest: r.get(1).map_err(|e| self.err(e))?,
                key: text(get(2)?).and_then(|k| u128::from_str_radix(k, 16).ok()),
                size: match get(3)? {
                    ValueRef::Integer(n) => u64::try_from(n).ok(),
                    _ => None,
                },
                sha256,
            });
        }
        Ok(out)
    }

    /// Record a finished publish in one transaction: either all of it or none.
    pub fn commit(&mut self, rec: &Record<'_>) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let err = |source| LedgerError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO publications (statement, lang, channel, version, published_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err)?;
            let when = stamp(rec.now);
            // In key order, rows go to the end of each table's b-tree instead of
            // splitting pages all over it.
            let mut publications: Vec<_> = rec.publications.iter().collect();
            publications.sort_unstable();
            for p in publications {
                ins.execute(params![p.0, p.1, p.2, p.3, when])
                    .map_err(err)?;
            }
            let mut ent = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO entries (statement, lang, first_published, tag_uri)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(err)?;
            let mut entries: Vec<_> = rec.entries.iter().collect();
            entries.sort_unstable_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            for (id, lang, e) in entries {
                ent.execute(params![id, lang, stamp(e.first_published), e.tag_uri])
                    .map_err(err)?;
            }
            if let Some(delta) = &rec.outputs {
                // Only the rows that differ: an incremental publish changes a
                // handful of the tens of thousands.
                let mut out = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO outputs (path, digest, key, size, sha256) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(err)?;
                for o in &delta.upserts {
                    out.execute(params![
                        o.path,
                        o.digest,
                        o.key.map(|k| format!("{k:032x}")),
                        o.size.and_then(|n| i64::try_from(n).ok()),
                        o.sha256.map(hex::encode)
                    ])
                    .map_err(err)?;
                }
                let mut del = tx
                    .prepare_cached("DELETE FROM outputs WHERE path = ?1")
                    .map_err(err)?;
                for gone in &delta.removed {
                    del.execute(params![gone]).map_err(err)?;
                }
            }
            let mut st = tx
                .prepare_cached("INSERT OR REPLACE INTO state (key, value) VALUES (?1, ?2)")
                .map_err(err)?;
            for (k, v) in &rec.state {
                st.execute(params![k, v]).map_err(err)?;
            }
            if let Some(summary) = &rec.run_summary {
                tx.execute(
                    "INSERT INTO runs (now, started_at, summary) VALUES (?1, ?2, ?3)",
                    params![when, stamp(rec.started_at), summary],
                )
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// The row count of `table`, as a capacity (0 when it cannot be counted).
    fn rows(&self, table: &str) -> Result<usize, LedgerError> {
        Ok(usize::try_from(self.count(table)?).unwrap_or(0))
    }

    /// Row counts per table, for `status` and tests.
    pub fn count(&self, table: &str) -> Result<i64, LedgerError> {
        // Table names come from our own code, never from input.
        let sql = match table {
            "publications" | "entries" | "outputs" | "state" | "runs" => {
                format!("SELECT COUNT(*) FROM {table}")
            }
            _ => return Ok(0),
        };
        self.conn
            .query_row(&sql, [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// The last recorded run: (now, summary).
    pub fn last_run(&self) -> Result<Option<(String, String)>, LedgerError> {
        self.conn
            .query_row(
                "SELECT now, summary FROM runs ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// Everything one publish records.
#[derive(Debug, Default)]
pub struct Record<'a> {
    pub now: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    /// (statement, lang, channel, version)
    pub publications: Vec<(&'a str, &'a str, &'static str, &'a str)>,
    pub entries: Vec<(String, String, Entry)>,
    /// How the files in `public/` changed, when the channels ran.
    pub outputs: Option<crate::output::OutputsDelta>,
    pub state: Vec<(String, String)>,
    pub run_summary: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger as the last release wrote it: `outputs` with path and digest only.
    #[test]
    fn an_outputs_table_without_keys_is_carried_over_row_for_row() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("herald.db");
        {
            let conn = Connection::open(&path).expect("db");
            conn.execute_batch(
                "CREATE TABLE outputs (path TEXT PRIMARY KEY, digest TEXT NOT NULL) WITHOUT ROWID;
                 INSERT INTO outputs VALUES ('en/index.html', 'aa'), ('style.css', 'bb');
                 CREATE TABLE publications (statement TEXT NOT NULL, lang TEXT NOT NULL,
                     channel TEXT NOT NULL, version TEXT NOT NULL, published_at TEXT NOT NULL,
                     PRIMARY KEY (statement, lang, channel, version)) WITHOUT ROWID;
                 INSERT INTO publications VALUES ('2014/a', 'en', 'site', 'v1', '2014-07-30T03:00:00Z');",
            )
            .expect("old schema");
        }
        let mut ledger = Ledger::open(&path).expect("open");
        let mut rows = ledger.outputs_keyed().expect("outputs");
        rows.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            rows,
            [
                Output {
                    path: "en/index.html".into(),
                    digest: "aa".into(),
                    key: None,
                    size: None,
                    sha256: None,
                },
                Output {
                    path: "style.css".into(),
                    digest: "bb".into(),
                    key: None,
                    size: None,
                    sha256: None,
                },
            ]
        );
        assert_eq!(ledger.count("publications").expect("count"), 1);
        assert!(
            ledger
                .publication_keys()
                .expect("keys")
                .contains(&publication_key("2014/a", "en", "site", "v1"))
        );
        // The new columns take what a publish records, and open again unchanged.
        ledger
            .commit(&Record {
                outputs: Some(crate::output::OutputsDelta {
                    upserts: vec![Output {
                        path: "style.css".into(),
                        digest: "cc".into(),
                        key: Some(7),
                        size: Some(12),
                        sha256: Some([1; 32]),
                    }],
                    removed: vec!["en/index.html".into()],
                    placed: Vec::new(),
                }),
                ..Default::default()
            })
            .expect("commit");
        drop(ledger);
        let again = Ledger::open(&path).expect("reopen");
        let rows = again.outputs_keyed().expect("outputs");
        assert_eq!(rows.len(), 1, "a path no longer published is dropped");
        assert_eq!(
            (rows[0].key, rows[0].size, rows[0].sha256),
            (Some(7), Some(12), Some([1; 32]))
        );
    }
}
