//! One herald at a time: an exclusive lock on `.herald/lock`, so that two processes
//! (a timer run and `herald run`, or two editors) never publish or send at once.
//!
//! The lock is an OS file lock (`flock` on Unix, `LockFileEx` on Windows, through
//! `fs4`): it is released when the [`Lock`] is dropped and, because the OS releases it
//! when the file closes, also when the process dies however it dies. The lock file is
//! never deleted (deleting it would let two processes lock two different files); the
//! holder writes its pid and start time into it for the message others show.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// The lock file's name inside the state directory (`.herald/`).
pub const LOCK_FILE: &str = "lock";

const MAX_PAUSE: Duration = Duration::from_millis(200);

/// How long a refused process waits for a holder that has just taken the lock to write
/// its details (it writes them right after locking, so this is normally microseconds).
const HOLDER_GRACE: Duration = Duration::from_secs(1);

/// The holder's details, asking again for up to `grace` while the file is empty or half
/// written: the holder locks first and writes second, so a refusal can fall in between.
fn read_holder(path: &Path, grace: Duration) -> Option<Holder> {
    let begun = Instant::now();
    loop {
        let holder = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| Holder::from_file(&t));
        if holder.is_some() || begun.elapsed() >= grace {
            return holder;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Who holds the lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// When it took the lock.
    pub started: DateTime<Utc>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pid {}, running since {}",
            self.pid,
            self.started.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

impl Holder {
    fn to_file(&self) -> String {
        format!("pid={}\nstarted={}\n", self.pid, self.started.to_rfc3339())
    }

    /// `None` when the file is empty or half written (its holder is just starting).
    fn from_file(text: &str) -> Option<Holder> {
        let mut pid = None;
        let mut started = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", v)) => pid = v.trim().parse().ok(),
                Some(("started", v)) => {
                    started = DateTime::parse_from_rfc3339(v.trim())
                        .ok()
                        .map(|t| t.with_timezone(&Utc));
                }
                _ => {}
            }
        }
        Some(Holder {
            pid: pid?,
            started: started?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot create the state directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot lock {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "another herald is running ({}) and holds {}; gave up after waiting {:.1} s. \
         Let it finish (or stop it), then run again; to wait longer, set [schedule] lock_wait_seconds in herald.toml",
        holder.as_ref().map_or_else(|| "its pid is not recorded yet".to_string(), Holder::to_string),
        path.display(),
        waited.as_secs_f64()
    )]
    Busy {
        path: PathBuf,
        /// `None` when the holder had not yet written its details.
        holder: Option<Holder>,
        waited: Duration,
    },
}

/// Held while this process may publish and send. Released on drop.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
    holder: Holder,
}

impl Lock {
    /// Lock `dir/lock` (creating `dir`), waiting up to `wait` for another holder to let go.
    pub fn acquire(dir: &Path, wait: Duration) -> Result<Lock, LockError> {
        std::fs::create_dir_all(dir).map_err(|source| LockError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(LOCK_FILE);
        let io_error = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        // Not truncated on open: the current holder's details must survive for others to read.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        // Waiting is measured on the monotonic clock; no publishing time is involved.
        let begun = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => break,
                Err(fs4::TryLockError::WouldBlock) => {}
                Err(fs4::TryLockError::Error(e)) => return Err(io_error(e)),
            }
            let waited = begun.elapsed();
            if waited >= wait {
                let holder = read_holder(&path, HOLDER_GRACE);
                return Err(LockError::Busy {
                    path,
                    holder,
                    waited,
                });
            }
            std::thread::sleep(pause.min(wait - waited));
            pause = (pause * 2).min(MAX_PAUSE);
        }
        // The wall clock here only labels the lock for humans reading the error above;
        // it is not the publishing clock (`--now`), which may be simulated.
        let holder = Holder {
            pid: std::process::id(),
            started: Utc::now(),
        };
        let mut lock = Lock { file, path, holder };
        lock.write_holder().map_err(|source| LockError::Io {
            path: lock.path.clone(),
            source,
        })?;
        Ok(lock)
    }

    fn write_holder(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        // Not synced: the lock is the flock, and these details only label it for
        // humans; after a crash they are stale whether they reached the disk or not.
        self.file.write_all(self.holder.to_file().as_bytes())
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This process, as recorded in the lock file.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Clear our details while still holding it, so nobody reads a stale pid later.
        // Errors are moot: closing the file releases the lock regardless.
        let _ = self.file.set_len(0);
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Child, ChildStdout, Command, Stdio};

    use super::*;

    /// Set in a child process: the directory to lock.
    const CHILD_DIR: &str = "HERALD_LOCK_TEST_DIR";
    /// Starts the child's report line, apart from the test harness's own output.
    const REPORT: &str = "@@ ";

    /// In a child process (this test binary run again for one test): take the lock without
    /// waiting, say what happened on stdout, and hold it until stdin closes or we are killed.
    fn child_main(dir: &str) {
        match Lock::acquire(Path::new(dir), Duration::ZERO) {
            Ok(lock) => {
                println!("\n{REPORT}acquired {}", lock.holder().pid);
                let _ = io::stdout().flush();
                let _ = io::stdin().read_to_end(&mut Vec::new());
                drop(lock);
            }
            Err(LockError::Busy { holder, .. }) => {
                println!("\n{REPORT}busy {}", holder.map_or(0, |h| h.pid));
            }
            Err(e) => println!("\n{REPORT}error {e}"),
        }
        let _ = io::stdout().flush();
    }

    fn spawn_child(test: &str, dir: &Path) -> Child {
        let exe = std::env::current_exe().expect("test binary path");
        Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child")
    }

    /// The child's report line (the test harness prints its own lines around it).
    fn report(out: ChildStdout) -> String {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix(REPORT).map(str::to_string))
            .unwrap_or_default()
    }

    #[test]
    fn second_process_is_refused_with_the_holders_pid_until_the_holder_dies() {
        if let Ok(dir) = std::env::var(CHILD_DIR) {
            return child_main(&dir);
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join(".herald");
        let mut child = spawn_child(
            "lock::tests::second_process_is_refused_with_the_holders_pid_until_the_holder_dies",
            &dir,
        );
        let line = report(child.stdout.take().expect("stdout"));
        assert_eq!(line, format!("acquired {}", child.id()));

        let begun = Instant::now();
        let err = Lock::acquire(&dir, Duration::from_millis(300)).expect_err("held by the child");
        assert!(begun.elapsed() >= Duration::from_millis(300));
        match &err {
            LockError::Busy { holder, path, .. } => {
                assert_eq!(holder.as_ref().map(|h| h.pid), Some(child.id()));
                assert_eq!(path, &dir.join(LOCK_FILE));
            }
            other => panic!("{other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&format!("pid {}", child.id())),
            "{message}"
        );
        assert!(
            message.contains("running since") && message.contains("lock_wait_seconds"),
            "{message}"
        );

        // Killed without a chance to clean up: the OS lets go of the lock.
        child.kill().expect("kill child");
        child.wait().expect("reap child");
        let lock = Lock::acquire(&dir, Duration::from_secs(5)).expect("free after the holder died");
        assert_eq!(lock.holder().pid, std::process::id());
    }

    #[test]
    fn two_processes_started_together_only_one_holds_the_lock() {
        if let Ok(dir) = std::env::var(CHILD_DIR) {
            return child_main(&dir);
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let name = "lock::tests::two_processes_started_together_only_one_holds_the_lock";
        let mut children = [spawn_child(name, tmp.path()), spawn_child(name, tmp.path())];
        let lines: Vec<String> = children
            .iter_mut()
            .map(|c| report(c.stdout.take().expect("stdout")))
            .collect();
        // Both have answered while the winner still holds it; now let it go.
        for c in &mut children {
            drop(c.stdin.take());
            c.wait().expect("reap child");
        }
        let winners: Vec<&Child> = children
            .iter()
            .zip(&lines)
            .filter(|(c, l)| **l == format!("acquired {}", c.id()))
            .map(|(c, _)| c)
            .collect();
        assert_eq!(winners.len(), 1, "{lines:?}");
        let loser = lines
            .iter()
            .find(|l| l.starts_with("busy "))
            .expect("one was refused");
        assert_eq!(*loser, format!("busy {}", winners[0].id()), "{lines:?}");
    }

    #[test]
    fn waits_for_the_holder_to_let_go_and_records_itself() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state");
        let first = Lock::acquire(&dir, Duration::ZERO).expect("free");
        let recorded = std::fs::read_to_string(dir.join(LOCK_FILE)).expect("lock file");
        assert_eq!(Holder::from_file(&recorded).as_ref(), Some(first.holder()));

        // Within one process a second open file is a second lock: refused at once.
        match Lock::acquire(&dir, Duration::ZERO) {
            Err(LockError::Busy { holder, .. }) => {
                assert_eq!(holder.as_ref(), Some(first.holder()))
            }
            other => panic!("{other:?}"),
        }

        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
        });
        let begun = Instant::now();
        let second = Lock::acquire(&dir, Duration::from_secs(10)).expect("released while waiting");
        assert!(begun.elapsed() >= Duration::from_millis(250));
        releaser.join().expect("thread");
        drop(second);
        // Released cleanly: nothing stale is left to read.
        assert_eq!(
            std::fs::read_to_string(dir.join(LOCK_FILE)).expect("lock file"),
            ""
        );
    }

    #[test]
    fn unusable_directory_is_a_clear_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let blocker = tmp.path().join("not-a-dir");
        std::fs::write(&blocker, "x").expect("write");
        let err = Lock::acquire(&blocker.join("state"), Duration::ZERO)
            .expect_err("a file is in the way");
        assert!(matches!(err, LockError::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }

    #[test]
    fn a_refusal_waits_briefly_for_a_holder_that_has_not_written_yet() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join(LOCK_FILE);
        std::fs::write(&path, "").expect("write");
        let h = Holder {
            pid: 31938,
            started: Utc::now(),
        };
        let text = h.to_file();
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                std::fs::write(path, text).expect("write");
            })
        };
        assert_eq!(
            read_holder(&path, Duration::from_secs(5)).map(|h| h.pid),
            Some(31938)
        );
        writer.join().expect("thread");
        // A holder that never writes: no pid rather than a guess, once the grace is over.
        std::fs::write(&path, "pid=1").expect("write");
        assert_eq!(read_holder(&path, Duration::from_millis(30)), None);
    }

    #[test]
    fn holder_details_parse_back() {
        let h = Holder {
            pid: 4242,
            started: DateTime::parse_from_rfc3339("2026-11-28T02:48:37Z")
                .expect("time")
                .with_timezone(&Utc),
        };
        assert_eq!(Holder::from_file(&h.to_file()), Some(h.clone()));
        assert_eq!(
            h.to_string(),
            "pid 4242, running since 2026-11-28 02:48:37 UTC"
        );
        assert_eq!(Holder::from_file(""), None);
        assert_eq!(Holder::from_file("pid=12\nstar"), None);
    }
}
