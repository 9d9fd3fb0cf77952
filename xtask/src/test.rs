//! `cargo xtask test`: provision what the tests use, then `cargo test --workspace`.
//!
//! The tests run real tools (poppler, qpdf, smtp-sink, chromium, Python's feedparser
//! and dkimpy...). The lists below are the one place that names them. Debian packages
//! are installed with apt-get when this runs as root; otherwise a missing one stops
//! the run at once with the command to install it. Python packages go into a virtual
//! environment under `target/` (never the system Python), whose `bin/` comes first on
//! the tests' `PATH`, so their `python3` is that one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// How to tell that a Debian package is there.
enum Probe {
    /// A program on `PATH` (or at this absolute path).
    Program(&'static [&'static str]),
    /// Only the package itself (fonts): ask dpkg.
    Package,
}

/// (Debian package, probe, what needs it).
const DEBIAN: &[(&str, Probe, &str)] = &[
    (
        "poppler-utils",
        Probe::Program(&["pdftotext", "pdffonts", "pdfinfo", "pdftoppm"]),
        "herald-pdf tests",
    ),
    ("qpdf", Probe::Program(&["qpdf"]), "herald-pdf tests"),
    (
        "xsltproc",
        Probe::Program(&["xsltproc"]),
        "herald-feed tests",
    ),
    (
        "postfix",
        Probe::Program(&["/usr/sbin/smtp-sink"]),
        "herald-mail and e2e delivery tests (smtp-sink; the daemon stays stopped)",
    ),
    (
        "spamassassin",
        Probe::Program(&["spamassassin"]),
        "herald-mail tests",
    ),
    ("openssl", Probe::Program(&["openssl"]), "herald-mail tests"),
    (
        "chromium",
        Probe::Program(&["/usr/bin/chromium"]),
        "herald-serve browser test",
    ),
    ("wrk", Probe::Program(&["wrk"]), "herald-serve load bench"),
    (
        "fonts-dejavu-core",
        Probe::Package,
        "chromium screenshots (Latin and Cyrillic)",
    ),
    (
        "npm",
        Probe::Program(&["npm"]),
        "installs axe-core (accessibility test) into target/axe",
    ),
    (
        "nginx",
        Probe::Program(&["/usr/sbin/nginx"]),
        "serving public/ behind a web server",
    ),
    (
        "minisign",
        Probe::Program(&["minisign"]),
        "release signatures; `minisign -V` on herald's manifest",
    ),
    (
        "libnss3-tools",
        Probe::Program(&["certutil"]),
        "herald-pdf signing tests (an NSS database for pdfsig)",
    ),
];

/// (pip requirement, module the tests import).
const PYTHON: &[(&str, &str)] = &[
    ("feedparser>=6,<7", "feedparser"),
    ("dkimpy[ed25519]>=1.1", "dkim"),
    ("pynacl", "nacl"),
    ("pyhanko>=0.25", "pyhanko"),
    ("pyhanko-certvalidator>=0.26", "pyhanko_certvalidator"),
    // JSON-LD and OpenGraph of the site's pages (tests/e2e/previews.rs).
    ("extruct>=0.17", "extruct"),
];

/// npm packages the tests load into the browser: (package@range, file they read).
/// Installed with npm into `target/axe/` (never globally).
const NPM: &[(&str, &str)] = &[("axe-core@4", "axe-core/axe.min.js")];

/// Install the npm packages into `target/axe/node_modules` unless present.
fn npm(root: &Path) -> Result<(), String> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("axe");
    let missing: Vec<&str> = NPM
        .iter()
        .filter(|(_, file)| !dir.join("node_modules").join(file).is_file())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !on_path("npm") {
        return Err(format!(
            "npm is missing; it installs {} for the accessibility test: `sudo apt-get install -y npm`",
            missing.join(" ")
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("xtask test: npm install {}", missing.join(" "));
    run(Command::new("npm")
        .current_dir(&dir)
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--prefix",
        ])
        .arg(&dir)
        .args(&missing))
}

/// The virtual environment's folder, below the target directory.
fn venv_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("test-venv")
}

fn on_path(program: &str) -> bool {
    if program.starts_with('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

fn present(probe: &Probe, package: &str) -> bool {
    match probe {
        Probe::Program(programs) => programs.iter().all(|p| on_path(p)),
        Probe::Package => Command::new("dpkg")
            .args(["-s", package])
            .output()
            .is_ok_and(|o| o.status.success()),
    }
}

/// Root, read from /proc (Linux only: the only place apt-get runs).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{shown} failed ({s})")),
        Err(e) => Err(format!("cannot run {shown}: {e}")),
    }
}

/// Install the missing Debian packages (as root) or say how.
fn debian() -> Result<(), String> {
    let missing: Vec<&str> = DEBIAN
        .iter()
        .filter(|(pkg, probe, _)| !present(probe, pkg))
        .map(|(pkg, _, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() || !on_path("apt-get") {
        let mut msg = String::from("the tests need these Debian packages, which are missing:\n");
        for (pkg, _, why) in DEBIAN.iter().filter(|(p, _, _)| missing.contains(p)) {
            msg.push_str(&format!("  {pkg:<18} {why}\n"));
        }
        msg.push_str(&format!(
            "install them with:\n  sudo apt-get update && sudo {install}\nor run `sudo -E cargo xtask test`, which installs them"
        ));
        if missing.contains(&"postfix") {
            msg.push_str(" (postfix asks how to configure itself: answer \"No configuration\")");
        }
        return Err(msg);
    }
    eprintln!("xtask test: installing {}", missing.join(" "));
    if missing.contains(&"postfix") {
        // Installed unconfigured; only its smtp-sink is used.
        let mut child = Command::new("debconf-set-selections")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("debconf-set-selections: {e}"))?;
        if let Some(stdin) = child.stdin.as_mut() {
            use std::io::Write;
            stdin
                .write_all(b"postfix postfix/main_mailer_type select No configuration\n")
                .map_err(|e| format!("debconf-set-selections: {e}"))?;
        }
        let _ = child.wait();
    }
    run(Command::new("apt-get")
        .args(["update", "-qq"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    if missing.contains(&"postfix") || missing.contains(&"nginx") {
        // Packages start their daemons: the tests start what they need themselves.
        let _ = Command::new("postfix").arg("stop").output();
        let _ = Command::new("nginx").args(["-s", "stop"]).output();
    }
    let still: Vec<&str> = DEBIAN
        .iter()
        .filter(|(pkg, probe, _)| !present(probe, pkg))
        .map(|(pkg, _, _)| *pkg)
        .collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!("installed, yet still missing: {}", still.join(" ")))
    }
}

/// Create the virtual environment if needed and install what it lacks.
fn python(venv: &Path) -> Result<(), String> {
    let py = venv.join("bin").join("python3");
    let imports = format!(
        "import {}",
        PYTHON
            .iter()
            .map(|(_, m)| *m)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let has_all = || {
        Command::new(&py)
            .args(["-c", &imports])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if py.exists() && has_all() {
        return Ok(());
    }
    if !py.exists() {
        eprintln!("xtask test: creating {}", venv.display());
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv)
            .output()
            .map_err(|e| {
                format!("python3 is missing ({e}): install it with `sudo apt-get install -y python3 python3-venv`")
            })?;
        if !made.status.success() {
            let _ = std::fs::remove_dir_all(venv);
            let why = String::from_utf8_lossy(&made.stderr);
            if is_root() && on_path("apt-get") && why.contains("ensurepip") {
                run(Command::new("apt-get")
                    .args(["install", "-y", "-qq", "python3-venv"])
                    .env("DEBIAN_FRONTEND", "noninteractive"))?;
                run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
            } else {
                return Err(format!(
                    "`python3 -m venv {}` failed:\n{why}\ninstall the venv module with `sudo apt-get install -y python3-venv`",
                    venv.display()
                ));
            }
        }
    }
    eprintln!(
        "xtask test: pip install {}",
        PYTHON.iter().map(|(r, _)| *r).collect::<Vec<_>>().join(" ")
    );
    run(Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PYTHON.iter().map(|(r, _)| *r)))?;
    if has_all() {
        Ok(())
    } else {
        Err(format!(
            "{} cannot `{imports}` after pip install",
            py.display()
        ))
    }
}

/// The workspace root (xtask's parent folder).
pub fn workspace() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    here.canonicalize().unwrap_or(here)
}

/// `cargo xtask provision`: what the tests need, nothing run. Returns the venv.
pub fn provision(root: &Path) -> Result<PathBuf, String> {
    debian()?;
    npm(root)?;
    let venv = venv_dir(root);
    python(&venv)?;
    Ok(venv)
}

/// `cargo xtask test [ARGS]`: provision, then `cargo test --workspace ARGS` with the
/// virtual environment first on `PATH`.
pub fn run_tests(args: &[String]) -> ExitCode {
    let root = workspace();
    let venv = match provision(&root) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("xtask test: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bin = venv.join("bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin];
    paths.extend(std::env::split_paths(&path));
    let path: OsString = match std::env::join_paths(paths) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("xtask test: PATH: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["test", "--workspace"])
        .args(args)
        .env("PATH", path)
        .env("VIRTUAL_ENV", &venv)
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(s.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1)),
        Err(e) => {
            eprintln!("xtask test: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}
