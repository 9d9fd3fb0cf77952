//! Atomic output: every file goes to a temporary file first and is renamed into
//! place, so readers never see half a feed or half a PDF. A file whose bytes are
//! unchanged is not touched at all (same bytes, same modification time).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use herald_content::Sink;

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
    state: Mutex<SinkState>,
}

#[derive(Default)]
struct SinkState {
    files: BTreeMap<String, String>,
    stats: WriteStats,
    /// Paths whose bytes changed in this run.
    changed: Vec<String>,
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
            state: Mutex::new(SinkState::default()),
        })
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, SinkState>> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("output sink poisoned by a panic"))
    }

    /// Every file put so far: path -> hex XXH3-128 of its bytes.
    pub fn into_manifest(self) -> (BTreeMap<String, String>, WriteStats) {
        let st = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        (st.files, st.stats)
    }

    /// Keep a file from an earlier run in the manifest without rewriting it.
    pub fn keep(&self, path: &str, digest: &str) -> io::Result<()> {
        let mut st = self.lock()?;
        st.stats.unchanged += 1;
        st.files.insert(path.to_string(), digest.to_string());
        Ok(())
    }

    /// Paths whose bytes changed so far.
    pub fn changed(&self) -> Vec<String> {
        self.lock().map(|s| s.changed.clone()).unwrap_or_default()
    }

    pub fn stats(&self) -> WriteStats {
        self.lock().map(|s| s.stats).unwrap_or_default()
    }
}

/// A temporary file created with the mode an ordinary new file gets (0666 less the
/// umask), not tempfile's private 0600: the output is for a web server to read.
fn temp_builder() -> tempfile::Builder<'static, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(".herald-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(fs::Permissions::from_mode(0o666));
    }
    b
}

/// Write `bytes` to `target` atomically, using `tmp_dir` for the temporary file.
pub fn write_atomic(target: &Path, tmp_dir: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = temp_builder()
        .tempfile_in(tmp_dir)
        .or_else(|_| temp_builder().tempfile_in(dir))?;
    tmp.write_all(bytes)?;
    tmp.flush()?;
    match tmp.persist(target) {
        Ok(_) => Ok(()),
        // Different file systems: retry beside the target, where rename is atomic.
        Err(e) if e.error.kind() == io::ErrorKind::CrossesDevices => {
            let mut tmp = temp_builder().tempfile_in(dir)?;
            tmp.write_all(bytes)?;
            tmp.persist(target).map(|_| ()).map_err(|e| e.error)
        }
        Err(e) => Err(e.error),
    }
}

impl Sink for AtomicSink {
    fn put(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let rel = checked(path)?;
        // Only compared with itself, to tell a changed output: XXH3 is ten times
        // cheaper than SHA-256 over the 200 MB a large site writes.
        let digest = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes));
        let target = self.root.join(rel);
        let same = fs::metadata(&target).is_ok_and(|m| m.len() == bytes.len() as u64)
            && fs::read(&target).is_ok_and(|old| old == bytes);
        if !same && !self.dry_run {
            write_atomic(&target, &self.tmp, bytes).map_err(|e| {
                io::Error::new(e.kind(), format!("writing {}: {e}", target.display()))
            })?;
        }
        let mut st = self.lock()?;
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
    previous: &[(String, String)],
    current: &BTreeMap<String, String>,
) -> io::Result<usize> {
    let mut removed = 0;
    for (path, _) in previous {
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

    #[test]
    fn unchanged_files_keep_their_mtime() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let public = dir.path().join("public");
        let sink = AtomicSink::new(&public, &dir.path().join("tmp"), false)?;
        sink.put("en/index.html", b"hello")?;
        let m1 = fs::metadata(public.join("en/index.html"))?.modified()?;
        std::thread::sleep(std::time::Duration::from_millis(20));
        sink.put("en/index.html", b"hello")?;
        let m2 = fs::metadata(public.join("en/index.html"))?.modified()?;
        assert_eq!(m1, m2);
        assert_eq!(
            sink.stats(),
            WriteStats {
                written: 1,
                unchanged: 1
            }
        );
        sink.put("en/index.html", b"changed")?;
        assert_eq!(fs::read(public.join("en/index.html"))?, b"changed");
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn output_files_get_an_ordinary_files_mode() -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let public = dir.path().join("public");
        let sink = AtomicSink::new(&public, &dir.path().join("tmp"), false)?;
        sink.put("en/index.html", b"hello")?;
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
