//! Atomic output: every file of a run is staged as a temporary file first and only
//! renamed into place by [`AtomicSink::commit`] once every channel has rendered, so
//! readers never see half a feed, and a run that fails or is stopped leaves nothing
//! new in `public/` (dropping the sink deletes what it staged). A file whose bytes
//! are unchanged is not touched at all (same bytes, same modification time).
//!
//! The sink also keeps the books for the ledger's `outputs` table: it starts from
//! what the last run recorded and hands back only the rows that differ, so a run
//! that keeps 40,000 files by key writes a handful of rows, not 40,000.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use herald_content::Sink;
// Staging and placing are herald-mail's atomic writer, shared with the outbox.
use herald_mail::atomic::{place_swapping, stage};

use crate::ledger::Output;

/// Counts of what a sink did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteStats {
    pub written: usize,
    pub unchanged: usize,
}

/// How the ledger's `outputs` table must change to describe `public/` after a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OutputsDelta {
    /// Rows new or different since the last run.
    pub upserts: Vec<Output>,
    /// Paths the last run wrote and this one did not: stale, to be removed.
    pub removed: Vec<String>,
    /// Paths whose new bytes were moved into place (not a ledger matter: the
    /// folders they changed are stamped again, see [`crate::dirs`]).
    pub placed: Vec<String>,
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
    /// What the last run left ([`AtomicSink::with_previous`]).
    previous: Vec<Output>,
    /// Index into `previous` by path.
    by_path: PathIndex,
    /// Files of `previous` may be kept by their key (false for `--rebuild`).
    reuse: bool,
    /// Every file of `previous` was found in place when the run was planned: a
    /// kept file is then not looked up again.
    previous_present: bool,
    state: Mutex<SinkState>,
}

#[derive(Default)]
struct SinkState {
    /// Which files of `previous` this run kept or wrote again (by index).
    seen: Vec<bool>,
    /// Files rendered this run: their ledger rows.
    put: BTreeMap<String, Output>,
    stats: WriteStats,
    /// Changed files waiting in `tmp` for [`AtomicSink::commit`]: path -> staged file.
    staged: BTreeMap<String, tempfile::TempPath>,
    /// Render keys offered for files that were then rendered.
    keys: herald_content::fast::HashMap<String, u128>,
    /// (size, SHA-256) read back for kept files the last run did not sum.
    read_back: BTreeMap<String, (u64, [u8; 32])>,
}

/// The error a `put` returns once the run is cancelled.
pub fn cancelled_error() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "stopped by signal")
}

/// Refuse paths that could escape `public/`.
/// The digest the ledger records for a file's bytes (`Output::digest`). Only
/// compared with itself, to tell a changed output: XXH3 is ten times cheaper
/// than SHA-256 over the 200 MB a large site writes.
fn digest(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

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
            previous: Vec::new(),
            by_path: PathIndex::default(),
            reuse: true,
            previous_present: false,
            state: Mutex::new(SinkState::default()),
        })
    }

    /// Fail every `put` once `flag` is set.
    pub fn with_cancel(mut self, flag: Option<Arc<AtomicBool>>) -> AtomicSink {
        self.cancel = flag;
        self
    }

    /// What the last run recorded: a file whose key a channel offers again is
    /// kept, not rendered (see [`Sink::reuse`]), unless `reuse` is false; one no
    /// channel offers or writes is stale. `present`: every one of them was found
    /// in `public/` just before.
    pub fn with_previous(mut self, outputs: Vec<Output>, present: bool, reuse: bool) -> AtomicSink {
        self.by_path = PathIndex::new(&outputs);
        if let Ok(st) = self.state.get_mut() {
            st.seen = vec![false; outputs.len()];
        }
        self.previous = outputs;
        self.previous_present = present;
        self.reuse = reuse;
        self
    }

    /// The size of the file at `path` as this run leaves it, where known.
    pub fn size(&self, path: &str) -> Option<u64> {
        let st = self.lock().ok()?;
        match st.put.get(path) {
            Some(o) => o.size,
            None => {
                let i = self.by_path.get(&self.previous, path)?;
                if st.seen[i] {
                    self.previous[i].size
                } else {
                    None
                }
            }
        }
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
        for (path, o) in &st.put {
            if let (Some(n), Some(sum)) = (o.size, o.sha256) {
                out.insert(path.clone(), (n, sum));
            }
        }
        let mut read_back = Vec::new();
        for (i, o) in self.previous.iter().enumerate() {
            if !st.seen[i] || st.put.contains_key(&o.path) {
                continue;
            }
            let sum = match (o.size, o.sha256, st.read_back.get(&o.path)) {
                (Some(n), Some(sum), _) => (n, sum),
                (_, _, Some(s)) => *s,
                _ => {
                    let target = self.root.join(checked(&o.path)?);
                    let bytes = fs::read(&target).map_err(|e| {
                        io::Error::new(e.kind(), format!("reading {}: {e}", target.display()))
                    })?;
                    let sum = (bytes.len() as u64, sha2::Sha256::digest(&bytes).into());
                    read_back.push((o.path.clone(), sum));
                    sum
                }
            };
            out.insert(o.path.clone(), sum);
        }
        // Read back once: the ledger keeps them for the next run.
        st.read_back.extend(read_back);
        Ok(out)
    }

    /// True once the run was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// Move every staged file into place (parents created), then hand back how
    /// the ledger's `outputs` must change, and the files swapped out. Until this
    /// runs nothing of the run is visible in `public/`. Stale files are not
    /// removed here (see [`remove_stale`]).
    pub fn commit(self) -> io::Result<(OutputsDelta, WriteStats, OldFiles)> {
        let mut st = self
            .state
            .into_inner()
            .map_err(|_| io::Error::other("output sink poisoned by a panic"))?;
        // One by one: a swap is a few microseconds; the old files it hands back
        // are what costs, and the caller deletes those elsewhere.
        let mut placed = Vec::with_capacity(st.staged.len());
        let mut old = OldFiles::default();
        for (rel, staged) in std::mem::take(&mut st.staged) {
            let target = self.root.join(checked(&rel)?);
            let swapped = place_swapping(staged, &target).map_err(|e| {
                io::Error::new(e.kind(), format!("writing {}: {e}", target.display()))
            })?;
            old.0.extend(swapped);
            placed.push(rel);
        }
        let stats = st.stats;
        let mut delta = delta(self.previous, st, self.sha256);
        delta.placed = placed;
        Ok((delta, stats, old))
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, SinkState>> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("output sink poisoned by a panic"))
    }

    /// Staged files are dropped (deleted), not placed: for dry runs and checks.
    pub fn discard(self) -> WriteStats {
        let st = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        st.stats
    }

    pub fn stats(&self) -> WriteStats {
        self.lock().map(|s| s.stats).unwrap_or_default()
    }
}

/// The files a commit swapped out of `public/`, in the staging folder: deleted
/// when dropped. Freeing their blocks costs about as much as the swap saved, so
/// the pipeline deletes them on another thread while it writes the ledger.
#[derive(Default)]
pub struct OldFiles(Vec<tempfile::TempPath>);

impl OldFiles {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Delete them on a thread of their own; join it to know they are gone.
    pub fn delete_beside(self) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || drop(self))
    }
}

/// Positions of the last run's files by path, without a copy of each path: a
/// 64-bit hash of the path leads to its position, and the path there is
/// compared. The rare paths whose hashes collide are kept apart by name.
struct PathIndex {
    by_hash: herald_content::fast::HashMap<u64, usize>,
    collided: std::collections::HashMap<String, usize>,
    /// XXH3-64; tests give one that collides.
    hash: fn(&str) -> u64,
}

impl Default for PathIndex {
    fn default() -> Self {
        PathIndex {
            by_hash: Default::default(),
            collided: Default::default(),
            hash: |path| xxhash_rust::xxh3::xxh3_64(path.as_bytes()),
        }
    }
}

impl PathIndex {
    fn new(outputs: &[Output]) -> PathIndex {
        Self::with_hash(outputs, PathIndex::default().hash)
    }

    fn with_hash(outputs: &[Output], hash: fn(&str) -> u64) -> PathIndex {
        let mut index = PathIndex {
            hash,
            ..PathIndex::default()
        };
        index.by_hash.reserve(outputs.len());
        for (i, o) in outputs.iter().enumerate() {
            if let Some(first) = index.by_hash.insert(hash(&o.path), i) {
                // Keep the first under the hash; both under their names.
                index.by_hash.insert(hash(&o.path), first);
                index.collided.insert(outputs[first].path.clone(), first);
                index.collided.insert(o.path.clone(), i);
            }
        }
        index
    }

    fn get(&self, outputs: &[Output], path: &str) -> Option<usize> {
        if !self.collided.is_empty()
            && let Some(&i) = self.collided.get(path)
        {
            return Some(i);
        }
        let &i = self.by_hash.get(&(self.hash)(path))?;
        (outputs[i].path == path).then_some(i)
    }
}

/// The rows that differ between what the last run recorded and what this one left.
/// `sha256`: this run keeps sums; a run without drops them, as a cold one would.
fn delta(previous: Vec<Output>, mut st: SinkState, sha256: bool) -> OutputsDelta {
    let mut out = OutputsDelta::default();
    for (i, mut o) in previous.into_iter().enumerate() {
        match st.put.remove(&o.path) {
            Some(now) if now != o => out.upserts.push(now),
            Some(_) => {}
            None if !st.seen[i] => out.removed.push(o.path),
            None => {
                if let Some((n, sum)) = st.read_back.remove(&o.path) {
                    (o.size, o.sha256) = (Some(n), Some(sum));
                    out.upserts.push(o);
                } else if !sha256 && o.sha256.is_some() {
                    o.sha256 = None;
                    out.upserts.push(o);
                }
            }
        }
    }
    out.upserts.extend(st.put.into_values());
    // In key order, rows go to the end of the table's b-tree instead of
    // splitting pages all over it.
    out.upserts.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    out.removed.sort_unstable();
    out
}

impl Sink for AtomicSink {
    fn reuse(&self, path: &str, key: u128) -> io::Result<bool> {
        if self.is_cancelled() {
            return Err(cancelled_error());
        }
        let rel = checked(path)?;
        let kept = self.by_path.get(&self.previous, path).filter(|&i| {
            self.reuse
                && self.previous[i].key == Some(key)
                && (self.previous_present || self.root.join(rel).is_file())
        });
        let mut st = self.lock()?;
        match kept {
            Some(i) => {
                st.seen[i] = true;
                st.stats.unchanged += 1;
            }
            None => {
                st.keys.insert(path.to_string(), key);
            }
        }
        Ok(kept.is_some())
    }

    fn put(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        self.put_changed(path, bytes).map(|_| ())
    }

    fn previous(&self, path: &str) -> Option<Vec<u8>> {
        // A rebuild makes everything again, from the content alone.
        if !self.reuse || self.is_cancelled() {
            return None;
        }
        let rel = checked(path).ok()?;
        let i = self.by_path.get(&self.previous, path)?;
        let bytes = fs::read(self.root.join(rel)).ok()?;
        // Only what herald wrote: a file changed by hand since is not taken over.
        (digest(&bytes) == self.previous[i].digest).then_some(bytes)
    }
}

impl AtomicSink {
    /// [`Sink::put`], saying whether the bytes differ from the file in place.
    pub fn put_changed(&self, path: &str, bytes: &[u8]) -> io::Result<bool> {
        if self.is_cancelled() {
            return Err(cancelled_error());
        }
        let rel = checked(path)?;
        let digest = digest(bytes);
        let target = self.root.join(rel);
        let prev = self.by_path.get(&self.previous, path);
        // The same length and the digest the ledger recorded for the file in
        // place answer without reading it back (the 3 MB sitemap, on every
        // edit). A file changed by hand keeps its recorded digest: like a file
        // kept by its key, it is made again by `publish --rebuild`, which reads.
        let same = fs::metadata(&target).is_ok_and(|m| m.len() == bytes.len() as u64)
            && match prev {
                Some(i) if self.reuse && self.previous[i].digest == digest => true,
                _ => fs::read(&target).is_ok_and(|old| old == bytes),
            };
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
        let sha256 = self.sha256.then(|| {
            use sha2::Digest;
            sha2::Sha256::digest(bytes).into()
        });
        let mut st = self.lock()?;
        if let Some(staged) = staged {
            st.staged.insert(path.to_string(), staged);
        }
        if same {
            st.stats.unchanged += 1;
        } else {
            st.stats.written += 1;
        }
        if let Some(i) = prev {
            st.seen[i] = true;
        }
        let key = st.keys.remove(path);
        st.put.insert(
            path.to_string(),
            Output {
                path: path.to_string(),
                digest,
                key,
                size: Some(bytes.len() as u64),
                sha256,
            },
        );
        Ok(!same)
    }
}

/// One channel's view of the shared sink: what it wrote, kept and changed,
/// counted apart, so that channels can render side by side.
pub struct Tally<'a> {
    sink: &'a AtomicSink,
    state: Mutex<(WriteStats, Vec<String>)>,
}

impl<'a> Tally<'a> {
    pub fn new(sink: &'a AtomicSink) -> Tally<'a> {
        Tally {
            sink,
            state: Mutex::default(),
        }
    }

    /// Files this channel wrote or left unchanged.
    pub fn stats(&self) -> WriteStats {
        self.state.lock().map(|s| s.0).unwrap_or_default()
    }

    /// Paths whose bytes this channel changed.
    pub fn changed(&self) -> Vec<String> {
        self.state.lock().map(|s| s.1.clone()).unwrap_or_default()
    }

    pub fn size(&self, path: &str) -> Option<u64> {
        self.sink.size(path)
    }

    pub fn is_cancelled(&self) -> bool {
        self.sink.is_cancelled()
    }
}

impl Sink for Tally<'_> {
    fn reuse(&self, path: &str, key: u128) -> io::Result<bool> {
        let kept = self.sink.reuse(path, key)?;
        if kept {
            let mut st = self
                .state
                .lock()
                .map_err(|_| io::Error::other("output tally poisoned by a panic"))?;
            st.0.unchanged += 1;
        }
        Ok(kept)
    }

    fn previous(&self, path: &str) -> Option<Vec<u8>> {
        self.sink.previous(path)
    }

    fn put(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let changed = self.sink.put_changed(path, bytes)?;
        let mut st = self
            .state
            .lock()
            .map_err(|_| io::Error::other("output tally poisoned by a panic"))?;
        if changed {
            st.0.written += 1;
            st.1.push(path.to_string());
        } else {
            st.0.unchanged += 1;
        }
        Ok(())
    }
}

/// Remove the files a previous publish wrote that this one did not (a statement
/// withdrawn, a topic gone), tidying folders left empty. Returns how many were
/// removed.
pub fn remove_stale(root: &Path, stale: &[String]) -> io::Result<usize> {
    let mut removed = 0;
    for path in stale {
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

    /// The ledger's row for `bytes` written at `path` under `key`.
    fn recorded(path: &str, bytes: &[u8], key: Option<u128>) -> Output {
        Output {
            path: path.into(),
            digest: digest(bytes),
            key,
            size: Some(bytes.len() as u64),
            sha256: None,
        }
    }

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

    /// The ledger hears only what changed: a kept file is no row, a file put
    /// again with the same bytes and key is no row, a new key or new bytes are
    /// one row each, and a file nobody offered is stale.
    #[test]
    fn commit_hands_back_only_the_rows_that_differ() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let public = dir.path().join("public");
        let tmp = dir.path().join("tmp");
        let mut previous = Vec::new();
        for (path, bytes, key) in [
            ("a.html", b"a" as &[u8], 1),
            ("b.html", b"b", 2),
            ("c.html", b"c", 3),
            ("d.html", b"d", 4),
            ("gone.html", b"g", 5),
        ] {
            put_and_commit(&public, &tmp, path, bytes)?;
            previous.push(recorded(path, bytes, Some(key)));
        }
        let sink = AtomicSink::new(&public, &tmp, false)?.with_previous(previous, true, true);
        assert!(sink.reuse("a.html", 1)?, "same key: kept");
        assert!(!sink.reuse("b.html", 102)?, "new key");
        sink.put("b.html", b"b")?;
        assert!(!sink.reuse("c.html", 33)?);
        sink.put("c.html", b"c, changed")?;
        assert!(sink.reuse("d.html", 4)?, "kept too");
        sink.put("new.html", b"n")?;
        assert_eq!(sink.size("a.html"), Some(1));
        assert_eq!(sink.size("c.html"), Some(10));
        let (delta, stats, _) = sink.commit()?;
        let paths: Vec<&str> = delta.upserts.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(paths, ["b.html", "c.html", "new.html"]);
        assert_eq!(delta.upserts[0].key, Some(102));
        assert_eq!(delta.upserts[2].key, None, "put without a key");
        assert_eq!(delta.removed, ["gone.html"]);
        assert_eq!(stats.written, 2);
        assert_eq!(remove_stale(&public, &delta.removed)?, 1);
        assert!(!public.join("gone.html").exists());
        assert!(public.join("d.html").exists(), "kept by its key");
        Ok(())
    }

    /// The earlier run's bytes are handed out only while the file holds exactly
    /// what the ledger recorded, and never to a rebuild.
    #[test]
    fn previous_bytes_only_as_recorded() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let public = dir.path().join("public");
        let tmp = dir.path().join("tmp");
        put_and_commit(&public, &tmp, "kept.json", b"as written")?;
        put_and_commit(&public, &tmp, "edited.json", b"as written")?;
        fs::write(public.join("edited.json"), b"edited by hand")?;
        let previous = || {
            vec![
                recorded("kept.json", b"as written", Some(1)),
                recorded("edited.json", b"as written", Some(1)),
            ]
        };
        let sink = AtomicSink::new(&public, &tmp, false)?.with_previous(previous(), true, true);
        assert_eq!(
            sink.previous("kept.json").as_deref(),
            Some(&b"as written"[..])
        );
        assert_eq!(sink.previous("edited.json"), None, "changed since");
        assert_eq!(sink.previous("never.json"), None, "not recorded");
        let rebuild = AtomicSink::new(&public, &tmp, false)?.with_previous(previous(), true, false);
        assert_eq!(
            rebuild.previous("kept.json"),
            None,
            "a rebuild takes nothing over"
        );
        Ok(())
    }

    /// Bytes equal to the ledger's record of the file in place count as
    /// unchanged without reading the file; a rebuild reads it, and so repairs a
    /// file changed by hand.
    #[test]
    fn a_put_equal_to_the_record_trusts_the_record_until_a_rebuild() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let public = dir.path().join("public");
        let tmp = dir.path().join("tmp");
        put_and_commit(&public, &tmp, "sitemap.xml", b"recorded")?;
        // Changed by hand, same length.
        fs::write(public.join("sitemap.xml"), b"RECORDED")?;
        let previous = || vec![recorded("sitemap.xml", b"recorded", None)];
        let sink = AtomicSink::new(&public, &tmp, false)?.with_previous(previous(), true, true);
        sink.put("sitemap.xml", b"recorded")?;
        assert_eq!(sink.stats().unchanged, 1);
        sink.commit()?;
        assert_eq!(fs::read(public.join("sitemap.xml"))?, b"RECORDED");
        let rebuild = AtomicSink::new(&public, &tmp, false)?.with_previous(previous(), true, false);
        rebuild.put("sitemap.xml", b"recorded")?;
        assert_eq!(rebuild.stats().written, 1);
        rebuild.commit()?;
        assert_eq!(fs::read(public.join("sitemap.xml"))?, b"recorded");
        Ok(())
    }

    /// `--rebuild`: nothing is kept by key, yet files nobody wrote are stale.
    #[test]
    fn a_rebuild_keeps_nothing_and_still_finds_stale_files() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let public = dir.path().join("public");
        let tmp = dir.path().join("tmp");
        put_and_commit(&public, &tmp, "a.html", b"a")?;
        let previous = vec![
            recorded("a.html", b"a", Some(1)),
            Output {
                path: "old.html".into(),
                digest: "00".into(),
                key: Some(2),
                size: Some(1),
                sha256: None,
            },
        ];
        let sink = AtomicSink::new(&public, &tmp, false)?.with_previous(previous, true, false);
        assert!(!sink.reuse("a.html", 1)?, "a rebuild renders");
        sink.put("a.html", b"a")?;
        let (delta, _, _) = sink.commit()?;
        assert!(
            delta.upserts.is_empty(),
            "same bytes, same key: {:?}",
            delta.upserts
        );
        assert_eq!(delta.removed, ["old.html"]);
        Ok(())
    }

    /// Paths whose hashes collide are still found, each at its own position,
    /// and a path never recorded is not mistaken for one that shares its hash.
    #[test]
    fn the_path_index_keeps_colliding_paths_apart() {
        let output = |path: &str| Output {
            path: path.into(),
            digest: String::new(),
            key: None,
            size: None,
            sha256: None,
        };
        let outputs = [output("a.html"), output("b.html"), output("c.html")];
        let index = PathIndex::with_hash(&outputs, |_| 7);
        for (i, o) in outputs.iter().enumerate() {
            assert_eq!(index.get(&outputs, &o.path), Some(i), "{}", o.path);
        }
        assert_eq!(index.get(&outputs, "d.html"), None);
        let index = PathIndex::new(&outputs);
        assert_eq!(index.get(&outputs, "c.html"), Some(2));
        assert_eq!(index.get(&outputs, "d.html"), None);
    }
}
