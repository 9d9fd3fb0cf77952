//! The one atomic file writer of herald: `public/` (the pipeline's `AtomicSink`
//! stages with [`stage`] and commits with [`place`]) and the mail outbox
//! ([`write`]). A reader sees the old file or the new one, never half of one.
//! It lives here because herald-mail is the lowest crate that writes files
//! (herald-content must not) and herald depends on it.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// A temporary file created with the mode an ordinary new file gets (0666 less the
/// umask), not tempfile's private 0600: the output is for a web server (or a mail
/// pickup) to read.
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

/// Write `bytes` into a new temporary file in `dir`, closed; deleted when the
/// returned path is dropped, unless [`place`]d.
pub fn stage(dir: &Path, bytes: &[u8]) -> io::Result<tempfile::TempPath> {
    let mut tmp = temp_builder().tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.flush()?;
    Ok(tmp.into_temp_path())
}

/// Rename a staged file to `target` (its folder created); across file systems,
/// copy it beside the target first so the last step is still a rename.
pub fn place(staged: tempfile::TempPath, target: &Path) -> io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    match staged.persist(target) {
        Ok(()) => Ok(()),
        Err(e) if e.error.kind() == io::ErrorKind::CrossesDevices => {
            let staged = e.path;
            let mut tmp = temp_builder().tempfile_in(dir)?;
            io::copy(&mut fs::File::open(&staged)?, &mut tmp)?;
            tmp.persist(target).map(|_| ()).map_err(|e| e.error)
        }
        Err(e) => Err(e.error),
    }
}

/// Like [`place`], but an existing `target` is swapped out rather than replaced
/// (Linux's `RENAME_EXCHANGE`): ext4 writes a replaced file's data out before a
/// rename over it, which made placing a few hundred changed pages cost 0.2 ms
/// each; an exchange does not. Readers still see the old file or the new one.
/// The old file is handed back under the staged name, deleted when dropped, so
/// the caller can delete it where it costs nothing (another thread).
pub fn place_swapping(
    staged: tempfile::TempPath,
    target: &Path,
) -> io::Result<Option<tempfile::TempPath>> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        // Any failure (no old file, a file system without exchange, another
        // device) leaves both in place: then an ordinary place. A folder where
        // the file should be is never swapped out: placing reports it.
        let is_dir = fs::symlink_metadata(target).is_ok_and(|m| m.is_dir());
        if !is_dir && renameat_with(CWD, &*staged, CWD, target, RenameFlags::EXCHANGE).is_ok() {
            return Ok(Some(staged));
        }
    }
    place(staged, target).map(|()| None)
}

/// Write `bytes` to `target` atomically: staged beside it, then renamed.
pub fn write(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    place(stage(dir, bytes)?, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let target = dir.path().join("a/b.eml");
        write(&target, b"first").expect("write");
        write(&target, b"second, longer").expect("rewrite");
        assert_eq!(fs::read(&target).expect("read"), b"second, longer");
        let names: Vec<_> = fs::read_dir(dir.path().join("a"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("b.eml")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&target).expect("meta").permissions().mode();
            assert_ne!(
                mode & 0o044,
                0,
                "readable by others (umask allowing): {mode:o}"
            );
        }
    }

    /// A swap leaves the new bytes in place and the old ones under the staged
    /// name, gone once dropped; with no old file it is an ordinary place.
    #[test]
    fn a_swap_hands_back_the_old_file() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("a/page.html");
        let none = place_swapping(stage(dir.path(), b"first")?, &target)?;
        assert!(none.is_none());
        assert_eq!(fs::read(&target)?, b"first");
        let old = place_swapping(stage(dir.path(), b"second")?, &target)?;
        assert_eq!(fs::read(&target)?, b"second");
        if cfg!(target_os = "linux") {
            let old = old.expect("the old file handed back");
            assert_eq!(fs::read(&old)?, b"first");
            let path = old.to_path_buf();
            drop(old);
            assert!(!path.exists());
        }
        let left: Vec<_> = fs::read_dir(dir.path())?.collect();
        assert_eq!(left.len(), 1, "only the folder a/ is left: {left:?}");
        // A folder in the way is an error, as with a plain place, not swapped out.
        let folder = dir.path().join("a/folder");
        fs::create_dir_all(folder.join("inside"))?;
        assert!(place_swapping(stage(dir.path(), b"x")?, &folder).is_err());
        assert!(folder.join("inside").is_dir());
        Ok(())
    }

    #[test]
    fn a_dropped_stage_is_deleted() {
        let dir = tempfile::tempdir().expect("tmp");
        let staged = stage(dir.path(), b"x").expect("stage");
        let path = staged.to_path_buf();
        assert!(path.exists());
        drop(staged);
        assert!(!path.exists());
    }
}
