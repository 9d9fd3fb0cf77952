//! The one opener of herald's SQLite file (`.herald/herald.db`), used by the
//! pipeline's ledger and by [`crate::MailStore`]: both hold tables in the same
//! file, so both must open it in the same mode. It lives here, not in `herald`,
//! because herald depends on herald-mail and not the other way round.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How long a writer waits for another connection's write lock, by default.
pub const BUSY_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create {}: {source}", .path.display())]
    Dir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", .path.display())]
    Sqlite {
        path: std::path::PathBuf,
        source: rusqlite::Error,
    },
}

/// Open (creating it and its folder if needed) the database at `path` for
/// reading and writing, tuned as every herald connection is (see [`tune`]).
pub fn open(path: &Path, busy: Duration) -> Result<Connection, OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let sqlite = |source| OpenError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(sqlite)?;
    tune(&conn, busy).map_err(sqlite)?;
    Ok(conn)
}

/// A read-only connection to an existing database: in WAL mode it never waits
/// for a writer.
pub fn open_read_only(path: &Path, busy: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy)?;
    Ok(conn)
}

/// WAL (readers never wait for the writer, in this process or another),
/// `synchronous = NORMAL` (durable against a killed process; a power loss may
/// lose the last transactions, see docs/mail.md), a 32 MB page cache (a large
/// site's first publish writes tens of thousands of rows in one transaction:
/// the default 2 MB spilled it to the WAL page by page), reads through a memory
/// map (a publish reads tens of thousands of ledger rows each run: mapped pages
/// are not copied through `read` calls) and the busy wait.
pub fn tune(conn: &Connection, busy: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -32_000)?;
    // Address space only, up to 256 MB; SQLite falls back to reads past it.
    conn.pragma_update(None, "mmap_size", 256 * 1024 * 1024)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opened_in_wal_with_the_folder_made() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("a/b/herald.db");
        let conn = open(&path, BUSY_WAIT).expect("open");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("sync");
        assert_eq!((mode.as_str(), sync), ("wal", 1));
        let ro = open_read_only(&path, BUSY_WAIT).expect("read-only");
        assert!(ro.execute_batch("CREATE TABLE t (x)").is_err());
    }

    #[test]
    fn a_file_in_the_way_of_the_folder_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("f"), "").expect("file");
        let e = open(&dir.path().join("f/herald.db"), BUSY_WAIT).expect_err("no folder");
        assert!(
            matches!(&e, OpenError::Dir { path, .. } if path.ends_with("f")),
            "{e}"
        );
    }
}
