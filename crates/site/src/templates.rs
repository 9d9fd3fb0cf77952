//! The built-in templates, and their overrides from `content/templates/`.

use herald_content::Diagnostic;
use herald_content::html::write_escaped;
use std::io;
use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, escape_formatter};

use crate::SiteError;

/// Every built-in template, by name. A file of the same name in
/// `content/templates/` replaces it.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("entries.html", include_str!("../templates/entries.html")),
    (
        "statement.html",
        include_str!("../templates/statement.html"),
    ),
    ("topic.html", include_str!("../templates/topic.html")),
    ("year.html", include_str!("../templates/year.html")),
    ("years.html", include_str!("../templates/years.html")),
    ("topics.html", include_str!("../templates/topics.html")),
    (
        "subscribe.html",
        include_str!("../templates/subscribe.html"),
    ),
];

/// The stylesheet's name among the templates (copied as is, not rendered).
pub const STYLESHEET_NAME: &str = "style.css";
const STYLESHEET: &str = include_str!("../templates/style.css");
/// The built-in stylesheet's bytes (its colours are tested).
#[cfg(test)]
pub const TEMPLATES_CSS: &[u8] = STYLESHEET.as_bytes();

/// A name an override may `include` or `extend`: a plain file in the folder.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', ':'])
        && !name.contains("..")
}

/// Read `dir/name` if it exists. Missing is `None`; anything else unreadable is an error.
fn read_override(dir: &Path, name: &str) -> Result<Option<(PathBuf, String)>, SiteError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Ok(Some((path, text))),
            Err(_) => Err(SiteError::Read {
                path,
                source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8; save it as UTF-8"),
            }),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SiteError::Read { path, source: e }),
    }
}

/// The template environment: built-ins, replaced by overrides found in `dir`;
/// other names that an override includes are loaded from `dir` on demand.
pub fn environment(dir: &Path) -> Result<Environment<'static>, SiteError> {
    let mut env = Environment::new();
    // A misspelt variable in an override is an error, not an empty string;
    // `{% if x %}` on a missing value stays allowed.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    // herald's escaping (the five HTML specials), so URLs keep their readable `/`.
    env.set_formatter(
        |out, state, value| match (state.auto_escape(), value.as_str()) {
            (AutoEscape::Html, Some(text)) if !value.is_safe() => Ok(write_escaped(out, text)?),
            _ => escape_formatter(out, state, value),
        },
    );
    for (name, builtin) in TEMPLATES {
        let added = match read_override(dir, name)? {
            Some((path, text)) => env
                .add_template_owned(*name, text)
                .map_err(|e| SiteError::template(path.display().to_string(), e)),
            None => env
                .add_template(name, builtin)
                .map_err(|e| SiteError::template(format!("built-in {name}"), e)),
        };
        added?;
    }
    let dir = dir.to_path_buf();
    env.set_loader(move |name| {
        if !plain_name(name) {
            return Ok(None);
        }
        match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("cannot read template {}", dir.join(name).display()),
            )
            .with_source(e)),
        }
    });
    Ok(env)
}

/// A template error as a diagnostic: the file it is in (an override below
/// `content/templates/`, else the built-in), its line, what went wrong, what to do.
/// `fallback` names the template when the error does not.
pub fn diagnostic(root: &Path, fallback: &str, err: &minijinja::Error) -> Diagnostic {
    let name = err.name().unwrap_or(fallback);
    let name = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let shown = Path::new("content").join("templates").join(name);
    let source = std::fs::read_to_string(root.join(&shown)).ok();
    let (what, kind) = what_went_wrong(err);
    let hint = template_hint(kind, &what);
    let message = format!("template {name}: {what}");
    Diagnostic::in_template(
        &shown,
        source.as_deref(),
        err.line(),
        err.range(),
        &format!("built-in {name}"),
        message,
        hint,
    )
}

/// The error's own words, followed by its innermost cause (an error inside an
/// include says only "could not render include"), and the innermost kind.
pub fn what_went_wrong(err: &minijinja::Error) -> (String, ErrorKind) {
    let words = |e: &minijinja::Error| match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    let mut what = words(err);
    let mut inner = err;
    let mut next = std::error::Error::source(err);
    while let Some(e) = next {
        if let Some(m) = e.downcast_ref::<minijinja::Error>() {
            inner = m;
        }
        next = e.source();
    }
    if !std::ptr::eq(inner, err) {
        let place = match (inner.name(), inner.line()) {
            (Some(n), Some(l)) => format!(" (in {n}, line {l})"),
            _ => String::new(),
        };
        what = format!("{what}: {}{place}", words(inner));
    }
    (what, inner.kind())
}

/// What to do about a template error of `kind`.
pub fn template_hint(kind: ErrorKind, what: &str) -> String {
    match kind {
        ErrorKind::SyntaxError => {
            "fix the template syntax (minijinja, Jinja2's syntax), or delete the file to use the built-in template".into()
        }
        ErrorKind::UndefinedError => {
            "that name is not defined for this template: see docs/site.md for the variables each template gets; guard optional ones with `{% if x is defined %}`".into()
        }
        ErrorKind::TemplateNotFound => {
            "include only files in content/templates/ (plain names, no folders) or built-in template names".into()
        }
        _ if what.contains("recursion") => {
            "a template includes, extends or calls itself without end: remove the cycle".into()
        }
        _ => "fix the template, or delete the file to use the built-in template".into(),
    }
}

/// The stylesheet: `dir/style.css` when present, else the built-in one.
pub fn stylesheet(dir: &Path) -> Result<Vec<u8>, SiteError> {
    Ok(match read_override(dir, STYLESHEET_NAME)? {
        Some((_, text)) => text.into_bytes(),
        None => STYLESHEET.as_bytes().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_compile() {
        let env = environment(Path::new("/nonexistent/templates")).expect("built-ins compile");
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn override_syntax_error_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("index.html"), "{% if %}").expect("write");
        let err = environment(dir.path()).expect_err("broken override");
        let msg = err.to_string();
        assert!(msg.contains("index.html"), "{msg}");
        assert!(msg.contains("syntax error"), "{msg}");
    }

    #[test]
    fn escaping_matches_herald_content() {
        for s in ["", "plain", "a & b <c> \"d\" 'e'", "Қазақ & «ru» <&>", "&&"] {
            let mut out = String::new();
            write_escaped(&mut out, s).expect("write");
            assert_eq!(out, herald_content::html::escape(s));
        }
    }

    #[test]
    fn a_render_error_is_a_diagnostic_at_the_overrides_line() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("content/templates");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("topics.html"), "<p>\n  {{ no_such }}\n").expect("write");
        let env = environment(&dir).expect("compiles");
        let err = env
            .get_template("topics.html")
            .and_then(|t| t.render(minijinja::context! {}))
            .expect_err("undefined");
        let d = diagnostic(root.path(), "topics.html", &err);
        assert_eq!(d.code, "template");
        assert_eq!(d.file, Path::new("content/templates/topics.html"));
        assert_eq!((d.line, d.column), (2, 6), "{d}");
        assert!(d.message.contains("no_such"), "{d}");
        // A built-in template has no file to point at: it is named as such.
        let err = minijinja::Error::new(ErrorKind::SyntaxError, "x");
        let d = diagnostic(root.path(), "base.html", &err);
        assert_eq!(d.file, Path::new("built-in base.html"));
    }

    #[test]
    fn includes_stay_in_the_folder() {
        assert!(plain_name("partial.html"));
        assert!(!plain_name("../secret.html"));
        assert!(!plain_name("/etc/passwd"));
        assert!(!plain_name(".hidden"));
    }
}
