//! Atomic output: every file of a run is staged as a temporary file first and only
//! renamed into place by [`AtomicSink::commit`] once every channel has rendered, so
//! readers never see half a feed, and a run that fails or is stopped leaves nothing
//! new in `public/` (dropping the sink deletes what it staged). A file whose bytes
//! are unchanged is not touched at all (same bytes, same modification time).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use herald_content::Sink;
// Staging and placing are herald-mail's atomic writer, shared with the outbox.
use herald_mail::atomic::{place, stage};

/// Render keys, sizes and SHA-256 sums of a run's files, by path.
#[derive(Debug, Default)]
pub struct Extras {
    pub keys: BTreeMap<String, u128>,
    pub sizes: BTreeMap<String, u64>,
    pub sums: BTreeMap<String, [u8; 32]>,
}

/// Counts of what a sink did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    pub written: usize,
    pub unchanged: usize,
}

/// Writes below `public/` atomically; remembers every path and digest it was given.
pub struct AtomicSink {
    root: PathBuf,
    tmp: PathBuf,
    dry_run: bool,
    /// Set by a signal: every later `put` fails, so the channels stop at the next file.
    cancel: Option<Arc<AtomicBool>>,
    /// Also keep each file's size and SHA-256, for the signed manifest.
    sha256: bool,
    /// What the last run left, by path, for [`Sink::reuse`].
    previous: std::collections::HashMap<String, crate::ledger::Output>,
    /// Every file of `previous` was found in place when the run was planned: a
    /// kept file is then not looked up again.
    previous_present: bool,
    state: Mutex<SinkState>,
}

#[derive(Default)]
struct SinkState {
    files: BTreeMap<String, String>,
    stats: WriteStats,
    /// Paths whose bytes changed in this run.
    changed: Vec<String>,
    /// Changed files waiting in `tmp` for [`AtomicSink::commit`]: path -> staged file.
    staged: BTreeMap<String, tempfile::TempPath>,
    /// Path -> (size, SHA-256) of what was put, when asked for.
    sums: BTreeMap<String, (u64, [u8; 32])>,
    /// Path -> render key the channel gave for it.
    keys: BTreeMap<String, u128>,
    /// Path -> size in bytes, where known.
    sizes: BTreeMap<String, u64>,
}

/// The error a `put` returns once the run is cancelled.
pub fn cancelled_error() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "stopped by signal")
}

/// Refuse paths that could escape `public/`.
fn checked(rel: &str) -> io::Result<&Path> {
    let p = Path::new(rel);
    let ok = !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(p)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("output path {rel:?} is not a plain relative path"),
        ))
    }
}

impl AtomicSink {
    /// `tmp` must be on the same file system as `root` for the rename to be atomic;
    /// when it is not, the temporary file is made beside its target instead.
    pub fn new(root: &Path, tmp: &Path, dry_run: bool) -> io::Result<AtomicSink> {
        if !dry_run {
            fs::create_dir_all(root)?;
            // Leftovers of a killed run are incomplete by definition.
            if tmp.exists() {
                fs::remove_dir_all(tmp)?;
            }
            fs::create_dir_all(tmp)?;
        }
        Ok(AtomicSink {
            root: root.to_path_buf(),
            tmp: tmp.to_path_buf(),
            dry_run,
            cancel: None,
            sha256: false,
            previous: Default::default(),
            previous_present: false,
            state: Mutex::new(SinkState::default()),
        })
    }

    /// Fail every `put` once `flag` is set.
    pub fn with_cancel(mut self, flag: Option<Arc<AtomicBool>>) -> AtomicSink {
        self.cancel = flag;
        self
    }

    /// What the last run recorded (path, digest, render key): a file whose key
    /// a channel offers again is kept, not rendered (see [`Sink::reuse`]).
    /// `present`: every one of them was found in `public/` just before.
    pub fn with_previous(mut self, outputs: &[crate::ledger::Output], present: bool) -> AtomicSink {
        self.previous = outputs
            .iter()
            .map(|o| (o.path.clone(), o.clone()))
            .collect();
        self.previous_present = present;
        self
    }

    /// What the ledger keeps of each file besides its digest, where known.
    pub fn extras(&self) -> Extras {
        self.lock()
            .map(|s| Extras {
                keys: s.keys.clone(),
                sizes: s.sizes.clone(),
                sums: s
                    .sums
                    .iter()
                    .map(|(p, (_, sum))| (p.clone(), *sum))
                    .collect(),
            })
            .unwrap_or_default()
    }

    /// The size of the file at `path` as this run leaves it, where known.
    pub fn size(&self, path: &str) -> Option<u64> {
        self.lock().ok()?.sizes.get(path).copied()
    }

    /// Keep the size and SHA-256 of every file (see [`AtomicSink::sums`]).
    pub fn with_sha256(mut self, on: bool) -> AtomicSink {
        self.sha256 = on;
        self
    }

    /// Size and SHA-256 of every file so far: hashed when put, kept from the ledger
    /// for files kept from an earlier run, or read back from `public/` (a ledger
    /// from before sums, or a run without a manifest before).
    pub fn sums(&self) -> io::Result<BTreeMap<String, (u64, [u8; 32])>> {
        use sha2::Digest;
        let mut st = self.lock()?;
        let mut out = BTreeMap::new();
        for path in st.files.keys() {
            let sum = match st.sums.get(path) {
                Some(s) => *s,
                None => {
                    let target = self.root.join(checked(path)?);
                    let bytes = fs::read(&target).map_err(|e| {
                        io::Error::new(e.kind(), format!("reading {}: {e}", target.display()))
                    })?;
                    (bytes.len() as u64, sha2::Sha256::digest(&bytes).into())
                }
            };
            out.insert(path.clone(), sum);
        }
        // Read back once: the ledger keeps them for the next run.
        st.sums = out.clone();
        Ok(out)
    }

    /// True once the run was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// Move every staged file into place (parents created), then hand back the
    /// manifest. Until this runs nothing of the run is visible in `public/`.
    pub fn commit(self) -> io::Result<(BTreeMap<String, String>, WriteStats)> {
        let st = self
            .state
            .into_inner()
            .map_err(|_| io::Error::other("output sink poisoned by a panic"))?;
        for (rel, staged) in st.staged {
            let target = self.root.join(checked(&rel)?);
            place(staged, &target).map_err(|e| {
                io::Error::new(e.kind(), format!("writing {}: {e}", target.display()))
            })?;
        }
        Ok((st.files, st.stats))
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, SinkState>> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("output sink poisoned by a panic"))
    }

    /// Every file put so far: path -> hex XXH3-128 of its bytes. Staged files are
    /// dropped (deleted), not placed: for dry runs and checks.
    pub fn into_manifest(self) -> (BTreeMap<String, String>, WriteStats) {
        let st = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        (st.files, st.stats)
    }

    /// Paths whose bytes changed so far.
    pub fn changed(&self) -> Vec<String> {
        self.lock().map(|s| s.changed.clone()).unwrap_or_default()
    }

    pub fn stats(&self) -> WriteStats {
        self.lock().map(|s| s.stats).unwrap_or_default()
    }
}

impl Sink for AtomicSink {
    fn reuse(&self, path: &str, key: u128) -> io::Result<bool> {
        if self.is_cancelled() {
            return Err(cancelled_error());
        }
        let rel = checked(path)?;
        let kept = self.previous.get(path).filter(|o| {
            o.key == Some(key) && (self.previous_present || self.root.join(rel).is_file())
        });
        let mut st = self.lock()?;
        st.keys.insert(path.to_string(), key);
        if let Some(o) = kept {
            st.stats.unchanged += 1;
            st.files.insert(path.to_string(), o.digest.clone());
            if let Some(n) = o.size {
                st.sizes.insert(path.to_string(), n);
                if let (true, Some(sum)) = (self.sha256, o.sha256) {
                    st.sums.insert(path.to_string(), (n, sum));
                }
            }
        }
        Ok(kept.is_some())
    }

    fn put(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        if self.is_cancelled() {
            return Err(cancelled_error());
        }
        let rel = checked(path)?;
        // Only compared with itself, to tell a changed output: XXH3 is ten times
        // cheaper than SHA-256 over the 200 MB a large site writes.
        let digest = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes));
        let target = self.root.join(rel);
        let same = fs::metadata(&target).is_ok_and(|m| m.len() == bytes.len() as u64)
            && fs::read(&target).is_ok_and(|old| old == bytes);
        let staged = if !same && !self.dry_run {
            Some(stage(&self.tmp, bytes).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "staging {} in {}: {e}",
                        target.display(),
                        self.tmp.display()
                    ),
                )
            })?)
        } else {
            None
        };
        let sum = self.sha256.then(|| {
            use sha2::Digest;
            (bytes.len() as u64, sha2::Sha256::digest(bytes).into())
        });
        let mut st = self.lock()?;
        if let Some(sum) = sum {
            st.sums.insert(path.to_string(), sum);
        }
        if let Some(staged) = staged {
            st.staged.insert(path.to_string(), staged);
        }
        st.sizes.insert(path.to_string(), bytes.len() as u64);
        if same {
            st.stats.unchanged += 1;
        } else {
            st.stats.written += 1;
            st.changed.push(path.to_string());
        }
        st.files.insert(path.to_string(), digest);
        Ok(())
    }
}

/// Remove files a previous publish wrote that this one did not (a statement
/// withdrawn, a topic gone). Returns how many were removed.
pub fn remove_stale(
    root: &Path,
    previous: &[crate::ledger::Output],
    current: &BTreeMap<String, String>,
) -> io::Result<usize> {
    let mut removed = 0;
    for crate::ledger::Output { path, .. } in previous {
        if current.contains_key(path) {
            continue;
        }
        let Ok(rel) = checked(path) else { continue };
        let target = root.join(rel);
        match fs::remove_file(&target) {
            Ok(()) => {
                removed += 1;
                // Tidy now-empty folders, never above `root`.
                let mut dir = target.parent();
                while let Some(d) = dir {
                    if d == root || fs::remove_dir(d).is_err() {
                        break;
                    }
                    dir = d.parent();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_and_commit(public: &Path, tmp: &Path, path: &str, bytes: &[u8]) -> io::Result<()> {
        let sink = AtomicSink::new(public, tmp, false)?;
        sink.put(path, bytes)?;
        sink.commit().map(|_| ())
    }

    #[test]
    fn unchanged_files_keep_their_mtime() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let public = dir.path().join("public");
        let tmp = dir.path().join("tmp");
        put_and_commit(&public, &tmp, "en/index.html", b"hello")?;
        let m1 = fs::metadata(public.join("en/index.html"))?.modified()?;
        std::thread::sleep(std::time::Duration::from_millis(20));
        let sink = AtomicSink::new(&public, &tmp, false)?;
        sink.put("en/index.html", b"hello")?;
        assert_eq!(
            sink.stats(),
            WriteStats {
                written: 0,
                unchanged: 1
            }
        );
        sink.commit()?;
        let m2 = fs::metadata(public.join("en/index.html"))?.modified()?;
        assert_eq!(m1, m2);
        put_and_commit(&public, &tmp, "en/index.html", b"changed")?;
        assert_eq!(fs::read(public.join("en/index.html"))?, b"changed");
        Ok(())
    }

    #[test]
    fn nothing_is_visible_before_commit_and_a_dropped_sink_leaves_nothing() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let public = dir.path().join("public");
        let tmp = dir.path().join("tmp");
        put_and_commit(&public, &tmp, "en/index.html", b"old")?;
        let sink = AtomicSink::new(&public, &tmp, false)?;
        sink.put("en/index.html", b"new")?;
        sink.put("en/feed.xml", b"<feed/>")?;
        assert_eq!(fs::read(public.join("en/index.html"))?, b"old");
        assert!(!public.join("en/feed.xml").exists());
        assert_eq!(fs::read_dir(&tmp)?.count(), 2, "both staged");
        drop(sink);
        assert_eq!(fs::read(public.join("en/index.html"))?, b"old");
        assert!(!public.join("en/feed.xml").exists());
        assert_eq!(fs::read_dir(&tmp)?.count(), 0, "staged files deleted");
        Ok(())
    }

    #[test]
    fn a_cancelled_sink_refuses_puts() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let flag = Arc::new(AtomicBool::new(false));
        let sink = AtomicSink::new(&dir.path().join("p"), &dir.path().join("t"), false)?
            .with_cancel(Some(flag.clone()));
        sink.put("a.html", b"a")?;
        flag.store(true, Ordering::SeqCst);
        let err = sink.put("b.html", b"b").expect_err("cancelled");
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn output_files_get_an_ordinary_files_mode() -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let public = dir.path().join("public");
        put_and_commit(&public, &dir.path().join("tmp"), "en/index.html", b"hello")?;
        // The same umask applies to both: a web server must read what it may read.
        fs::write(dir.path().join("plain"), b"hello")?;
        let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(
            mode(&public.join("en/index.html"))?,
            mode(&dir.path().join("plain"))?
        );
        Ok(())
    }

    #[test]
    fn refuses_escaping_paths() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let sink = AtomicSink::new(&dir.path().join("p"), &dir.path().join("t"), false)?;
        for bad in ["../x", "/etc/passwd", "a/../../b", ""] {
            assert!(sink.put(bad, b"x").is_err(), "{bad}");
        }
        Ok(())
    }
}
