//! The files below a folder of `content/`, as every reader of them sees them:
//! sorted, hidden ones skipped, symbolic links followed when their target stays
//! inside the project and reported otherwise. Nothing is skipped without a word.

use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::shown;

/// What a walk found: the files to read, and the links it refused.
#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<PathBuf>,
    pub problems: Vec<Diagnostic>,
}

fn hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with('.'))
}

/// Every file below `dir` (nothing when it does not exist). `root` is the project:
/// a link may point anywhere inside it. Errors other than links (a folder that
/// cannot be read) are returned as they are.
pub fn walk(root: &Path, dir: &Path) -> Result<Walk, walkdir::Error> {
    let mut out = Walk::default();
    if !dir.exists() {
        return Ok(out);
    }
    // The project as the file system names it, so `..` and links in `root` compare.
    let project = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    walk_into(root, &project, dir, false, &mut out)?;
    Ok(out)
}

/// Walk `dir`. Without `follow`, the folder's own entries are known from the
/// directory listing alone (no look at each file: 13,000 statements would cost
/// 13,000 lookups), and each symbolic link is checked here and, for a folder
/// inside the project, walked with links followed, where walkdir finds loops.
fn walk_into(
    root: &Path,
    project: &Path,
    dir: &Path,
    follow: bool,
    out: &mut Walk,
) -> Result<(), walkdir::Error> {
    let mut it = walkdir::WalkDir::new(dir)
        .follow_links(follow)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = it.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let Some(path) = e.path().map(Path::to_path_buf) else {
                    return Err(e);
                };
                let is_link = path.symlink_metadata().is_ok_and(|m| m.is_symlink());
                if e.loop_ancestor().is_some() {
                    out.problems.push(loop_problem(root, &path));
                } else if is_link {
                    out.problems.push(broken_problem(root, &path));
                } else {
                    return Err(e);
                }
                continue;
            }
        };
        if entry.depth() > 0 && hidden(entry.file_name()) {
            if entry.file_type().is_dir() {
                it.skip_current_dir();
            }
            continue;
        }
        if entry.path_is_symlink() {
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(path) else {
                out.problems.push(broken_problem(root, path));
                continue;
            };
            let target = path.canonicalize().ok();
            if !target.as_deref().is_some_and(|t| t.starts_with(project)) {
                out.problems.push(Diagnostic::file(
                    "symlink",
                    &shown(root, path),
                    format!(
                        "this symbolic link points outside the project, to {}",
                        target.as_deref().unwrap_or(path).display()
                    ),
                    "copy the file into the project instead: herald follows links only within the project folder",
                ));
                if entry.file_type().is_dir() {
                    it.skip_current_dir();
                }
                continue;
            }
            if follow {
                // walkdir follows it (and reports loops below it).
                if meta.is_file() {
                    out.files.push(entry.into_path());
                }
                continue;
            }
            if meta.is_dir() {
                // A link to a folder that holds it would never end.
                let here = path
                    .parent()
                    .and_then(|p| p.canonicalize().ok())
                    .unwrap_or_default();
                if target.as_deref().is_some_and(|t| here.starts_with(t)) {
                    out.problems.push(loop_problem(root, path));
                } else {
                    walk_into(root, project, path, true, out)?;
                }
            } else if meta.is_file() {
                out.files.push(entry.into_path());
            }
            continue;
        }
        if entry.file_type().is_file() {
            out.files.push(entry.into_path());
        }
    }
    Ok(())
}

fn loop_problem(root: &Path, path: &Path) -> Diagnostic {
    Diagnostic::file(
        "symlink",
        &shown(root, path),
        "this symbolic link points to a folder that contains it (a loop)",
        "remove the link or point it at another folder",
    )
}

fn broken_problem(root: &Path, path: &Path) -> Diagnostic {
    let target = std::fs::read_link(path)
        .map(|t| t.display().to_string())
        .unwrap_or_default();
    Diagnostic::file(
        "symlink",
        &shown(root, path),
        format!("this symbolic link is broken: {target} does not exist"),
        "point the link at an existing file inside the project, or remove it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_inside_are_followed_and_others_reported() {
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("secret.md"), "x").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let content = root.join("content/assets");
        fs::create_dir_all(content.join("real")).expect("mkdir");
        fs::create_dir_all(root.join("shared")).expect("mkdir");
        fs::write(content.join("real/a.txt"), "a").expect("write");
        fs::write(content.join(".hidden"), "h").expect("write");
        fs::write(root.join("shared/b.txt"), "b").expect("write");
        symlink(root.join("shared"), content.join("linked")).expect("link");
        symlink(root.join("shared/b.txt"), content.join("b-link.txt")).expect("link");
        symlink(outside.path().join("secret.md"), content.join("out.md")).expect("link");
        symlink(outside.path(), content.join("out-dir")).expect("link");
        symlink(root.join("missing"), content.join("broken")).expect("link");
        symlink(&content, content.join("real/loop")).expect("link");
        let w = walk(root, &content).expect("walk");
        let files: Vec<String> = w
            .files
            .iter()
            .map(|p| {
                p.strip_prefix(&content)
                    .expect("below")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(files, ["b-link.txt", "linked/b.txt", "real/a.txt"]);
        let mut problems: Vec<(String, &str)> = w
            .problems
            .iter()
            .map(|d| (d.file.display().to_string(), d.message.as_str()))
            .collect();
        problems.sort();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].0.ends_with("assets/broken") && problems[0].1.contains("broken"));
        assert!(problems[1].0.ends_with("assets/out-dir") && problems[1].1.contains("outside"));
        assert!(problems[2].0.ends_with("assets/out.md") && problems[2].1.contains("outside"));
        assert!(problems[3].0.ends_with("real/loop") && problems[3].1.contains("loop"));
    }
}
