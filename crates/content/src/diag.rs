//! Diagnostics: every problem found in the content, with file, line, column, snippet and hint.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one file. Rendered like a compiler error so editors can jump to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable machine-readable code, e.g. `date-offset`.
    pub code: &'static str,
    /// The file, as given to the loader (relative to the project root when possible).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: usize,
    /// 1-based column in characters; 0 when the problem concerns the whole file.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// The offending source line, if any.
    pub snippet: Option<String>,
    /// Length of the underlined part of the snippet, in characters.
    pub width: usize,
    /// What to do about it.
    pub hint: String,
}

impl Diagnostic {
    /// A problem with the file as a whole (not UTF-8, duplicate id, ...).
    pub fn file(
        code: &'static str,
        file: &Path,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            code,
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: message.into(),
            snippet: None,
            width: 0,
            hint: hint.into(),
        }
    }

    /// A problem at a byte range of `source` (the whole file's text).
    /// A template error: at `range`, else at the start of `line` (1-based), in the
    /// override `shown` whose text is `text`; naming the file when the position is
    /// unknown, or `builtin` when no override exists. Site and mail templates share it.
    pub fn in_template(
        shown: &Path,
        text: Option<&str>,
        line: Option<usize>,
        range: Option<std::ops::Range<usize>>,
        builtin: &str,
        message: String,
        hint: impl Into<String>,
    ) -> Self {
        match (text, line) {
            (Some(text), Some(line)) => {
                let span = range.unwrap_or_else(|| {
                    let start: usize = text
                        .split_inclusive('\n')
                        .take(line.saturating_sub(1))
                        .map(str::len)
                        .sum();
                    start..start
                });
                Diagnostic::at("template", shown, text, span, message, hint)
            }
            (Some(_), None) => Diagnostic::file("template", shown, message, hint),
            (None, _) => Diagnostic::file("template", Path::new(builtin), message, hint),
        }
    }

    pub fn at(
        code: &'static str,
        file: &Path,
        source: &str,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let end = floor_char_boundary(source, span.end.clamp(start, source.len()));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let line = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        let snippet = source[line_start..line_end]
            .trim_end_matches('\r')
            .to_string();
        let width = source[start..end.min(line_end).max(start)]
            .chars()
            .count()
            .max(1);
        Self {
            code,
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
            snippet: Some(snippet),
            width,
            hint: hint.into(),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Characters of a snippet shown around the column.
const SNIPPET_CHARS: usize = 120;

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error[{}]: {}", self.code, self.message)?;
        if self.line == 0 {
            writeln!(f, "  --> {}", self.file.display())?;
        } else {
            writeln!(
                f,
                "  --> {}:{}:{}",
                self.file.display(),
                self.line,
                self.column
            )?;
        }
        if let Some(snippet) = &self.snippet {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            // A long line is shown as a window around the column, so a 1 MB line
            // does not flood the terminal.
            let skip = self
                .column
                .saturating_sub(1)
                .saturating_sub(SNIPPET_CHARS / 2);
            let total = snippet.chars().count();
            let before = if skip > 0 { "…" } else { "" };
            let after = if skip + SNIPPET_CHARS < total {
                "…"
            } else {
                ""
            };
            // Control characters would garble the terminal; show them as escapes.
            let shown: String = snippet
                .chars()
                .skip(skip)
                .take(SNIPPET_CHARS)
                .map(|c| {
                    if c.is_control() && c != '\t' {
                        '\u{FFFD}'
                    } else {
                        c
                    }
                })
                .collect();
            let caret = self.column.saturating_sub(1) - skip + before.chars().count();
            let width = self.width.min(SNIPPET_CHARS.saturating_sub(caret)).max(1);
            writeln!(f, " {pad} |")?;
            writeln!(f, " {num} | {before}{shown}{after}")?;
            writeln!(f, " {pad} | {}{}", " ".repeat(caret), "^".repeat(width))?;
        }
        write!(f, "  = hint: {}", self.hint)
    }
}

/// All problems found in one run, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
    /// Number of distinct files with at least one problem.
    pub fn file_count(&self) -> usize {
        let mut files: Vec<&Path> = self.0.iter().map(|d| d.file.as_path()).collect();
        files.sort();
        files.dedup();
        files.len()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}\n")?;
        }
        write!(
            f,
            "{} problem{} in {} file{}",
            self.len(),
            if self.len() == 1 { "" } else { "s" },
            self.file_count(),
            if self.file_count() == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_is_line_and_char_column() {
        let src = "a = 1\nдата = x\n";
        let at = src.find('x').unwrap_or(0);
        let d = Diagnostic::at("t", Path::new("f.md"), src, at..at + 1, "m", "h");
        assert_eq!((d.line, d.column), (2, 8));
        assert_eq!(d.snippet.as_deref(), Some("дата = x"));
        let shown = d.to_string();
        assert!(shown.contains("f.md:2:8"), "{shown}");
        assert!(shown.contains("       ^"), "{shown}");
    }

    #[test]
    fn a_long_line_is_shown_around_the_column() {
        let src = format!("{}x{}\n", "a".repeat(5_000), "b".repeat(5_000));
        let d = Diagnostic::at("t", Path::new("f.md"), &src, 5_000..5_001, "m", "h");
        assert_eq!((d.line, d.column), (1, 5_001));
        let shown = d.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert!(lines[3].chars().count() < 140, "{shown}");
        let caret = lines[4].find('^').expect("caret");
        assert_eq!(lines[3].chars().nth(caret), Some('x'), "{shown}");
    }
}
