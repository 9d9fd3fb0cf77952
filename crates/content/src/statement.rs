//! One statement file: `statements/YYYY/slug.LANG.md`, TOML front matter between
//! `+++` lines, then a Markdown body. Parsing collects every problem it can find.

use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use sha2::{Digest, Sha256};
use toml::de::{DeTable, DeValue};

use crate::config::Config;
use crate::diag::Diagnostic;
use crate::doc::Document;
use crate::limits;
use crate::markdown;

/// Keys a statement's front matter may hold.
pub const KEYS: &[&str] = &[
    "title",
    "date",
    "publish_at",
    "updated",
    "summary",
    "issuers",
    "place",
    "occasion",
    "topics",
    "bulletin",
    "draft",
    "slug",
];

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrontMatter {
    pub title: String,
    pub date: DateTime<FixedOffset>,
    /// Embargo: nothing of the statement appears anywhere before it. Defaults to `date`.
    pub publish_at: DateTime<FixedOffset>,
    pub updated: Option<DateTime<FixedOffset>>,
    /// Given, or the first paragraph of the body, shortened.
    pub summary: String,
    pub issuers: Vec<String>,
    pub place: Option<String>,
    pub occasion: Option<String>,
    pub topics: Vec<String>,
    pub bulletin: bool,
    pub draft: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Statement {
    /// `YYYY/file-stem`: shared by all translations, never changes once published.
    pub id: String,
    pub lang: String,
    /// The URL slug: the `slug` key, or the file stem.
    pub slug: String,
    /// The year folder.
    pub year: String,
    /// The file, as found (relative to the project root when loaded from it).
    pub path: PathBuf,
    pub meta: FrontMatter,
    /// Hex SHA-256 of the file's bytes: the statement version.
    pub digest: String,
    /// The Markdown body: kept from parsing, or, for a statement from the load
    /// cache, read from its file on first use (see [`Statement::try_body`]).
    #[serde(skip)]
    body: std::sync::OnceLock<Result<String, String>>,
    /// Where the body starts in the file's bytes.
    body_at: usize,
    /// The file to read the body from (absolute), for a cached statement.
    #[serde(skip)]
    source: Option<PathBuf>,
    /// The body's tree: the one validation built, or parsed on first use when the
    /// statement came from the load cache. Every channel shares it.
    #[serde(skip)]
    document: std::sync::OnceLock<Document>,
    /// [`crate::key::statement`], computed once: every list page and feed a
    /// statement appears in hashes it.
    #[serde(skip)]
    key: std::sync::OnceLock<u128>,
}

impl Statement {
    /// Everything this statement is, as one render-key part (see [`crate::key`]).
    pub fn key(&self) -> u128 {
        *self.key.get_or_init(|| crate::key::statement(self))
    }

    /// The Markdown body. Empty when a cached statement's file changed or went
    /// away since it was loaded: [`Statement::try_body`] says why, and the
    /// pipeline refuses such a run before anything is committed.
    pub fn body(&self) -> &str {
        self.try_body().unwrap_or("")
    }

    /// The Markdown body, or why it cannot be had: read again from a cached
    /// statement's file, whose bytes must still be the loaded version's.
    pub fn try_body(&self) -> Result<&str, &str> {
        self.body
            .get_or_init(|| {
                let Some(file) = &self.source else {
                    return Err(format!("{}: no body", self.path.display()));
                };
                let changed = || {
                    format!(
                        "{} changed while herald was publishing it; publish again",
                        self.path.display()
                    )
                };
                let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
                if hex::encode(Sha256::digest(&bytes)) != self.digest {
                    return Err(changed());
                }
                let text = String::from_utf8(bytes).map_err(|_| changed())?;
                text.get(self.body_at..)
                    .map(str::to_string)
                    .ok_or_else(changed)
            })
            .as_deref()
            .map_err(String::as_str)
    }

    /// Why the body could not be read, once a channel asked for it and it failed.
    pub fn body_failed(&self) -> Option<&str> {
        match self.body.get() {
            Some(Err(e)) => Some(e),
            _ => None,
        }
    }

    /// A statement taken from the load cache: its body is read from `file` on
    /// first use.
    pub(crate) fn reading_body_from(mut self, file: PathBuf) -> Statement {
        self.source = Some(file);
        self.body = std::sync::OnceLock::new();
        self.document = std::sync::OnceLock::new();
        self
    }

    /// The body as a document tree, parsed at most once per loaded statement.
    pub fn document(&self) -> &Document {
        self.document.get_or_init(|| markdown::parse(self.body()).0)
    }

    /// Replace the body (and drop the tree made from the old one).
    pub fn set_body(&mut self, body: String) {
        self.body = Ok(body).into();
        self.document = std::sync::OnceLock::new();
    }

    /// Path of the statement's page below the site root, e.g. `en/2014/world-day/`.
    pub fn page_path(&self) -> String {
        format!("{}/{}/{}/", self.lang, self.year, self.slug)
    }

    /// Base file name for per-statement artifacts (PDF), e.g. `world-day.en`.
    pub fn file_stem(&self) -> String {
        format!("{}.{}", self.slug, self.lang)
    }

    /// Due when the embargo has lifted and it is not a draft.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        !self.meta.draft && self.meta.publish_at <= now
    }

    /// The newest of `date` and `updated`.
    pub fn modified(&self) -> DateTime<FixedOffset> {
        self.meta
            .updated
            .unwrap_or(self.meta.date)
            .max(self.meta.date)
    }
}

/// Lowercase letters, digits and single dashes, not at the ends.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Where the parts of a file name are: `statements/YYYY/slug.LANG.md`.
pub struct FileName {
    pub year: String,
    pub stem: String,
    pub lang: String,
}

/// Split a path relative to `statements/`.
pub fn split_name(rel: &Path) -> Result<FileName, String> {
    let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
    let [year, name] = parts.as_slice() else {
        return Err("statements live at statements/YYYY/slug.LANG.md".into());
    };
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("folder {year:?} is not a four-digit year"));
    }
    let Some(base) = name.strip_suffix(".md") else {
        return Err("statement files end in .LANG.md".into());
    };
    let Some((stem, lang)) = base.rsplit_once('.') else {
        return Err("the file name has no language, e.g. slug.en.md".into());
    };
    Ok(FileName {
        year: year.to_string(),
        stem: stem.to_string(),
        lang: lang.to_string(),
    })
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    /// Byte offset of the front matter in the file.
    fm_start: usize,
    out: Vec<Diagnostic>,
    /// Problems past [`MAX_PROBLEMS`], counted only.
    dropped: usize,
}

/// The most problems one file reports: each costs a scan of the file for its line,
/// and a file of thousands of bad keys is fixed by reading the first ones anyway.
const MAX_PROBLEMS: usize = 100;

impl Ctx<'_> {
    fn at(&mut self, code: &'static str, span: Range<usize>, msg: String, hint: impl Into<String>) {
        let span = span.start + self.fm_start..span.end + self.fm_start;
        self.abs(code, span, msg, hint);
    }
    fn abs(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        msg: String,
        hint: impl Into<String>,
    ) {
        if self.out.len() < MAX_PROBLEMS {
            self.out
                .push(Diagnostic::at(code, self.path, self.text, span, msg, hint));
        } else {
            self.dropped += 1;
        }
    }

    /// Every problem found, with a last one saying how many were not shown.
    fn finish(mut self) -> Vec<Diagnostic> {
        if self.dropped > 0 {
            self.out.push(Diagnostic::file(
                "more",
                self.path,
                format!("{} more problems in this file are not shown", self.dropped),
                "fix the problems above and run check again",
            ));
        }
        self.out
    }
}

/// A single-line field's decoded value: no control characters or line breaks (TOML
/// escapes such as `\t`, `\u001b` or `\u0085` decode to them), no longer than its limit.
/// `span` is the value's, relative to the front matter. False when it is refused.
fn line_field(cx: &mut Ctx<'_>, key: &str, value: &str, span: Range<usize>) -> bool {
    let raw = cx
        .text
        .get(span.start + cx.fm_start..span.end + cx.fm_start)
        .unwrap_or("");
    if let Some(c) = limits::bad_in_line(value) {
        // Typed as itself (not an escape), the file scan reports it, but for the tab
        // and line breaks it allows (a multi-line string holds them).
        if !matches!(c, '\t' | '\n' | '\r') && raw.contains(c) {
            return false;
        }
        cx.at(
            "control-char",
            span,
            format!(
                "`{key}` holds {}: a single-line field takes no control characters or line breaks",
                limits::describe(c)
            ),
            format!("write `{key}` on one line without escapes such as \\t, \\n or \\u001b"),
        );
        return false;
    }
    let chars = value.trim().chars().count();
    let limit = limits::field_chars(key);
    if chars > limit {
        cx.at(
            "too-long",
            span,
            format!("`{key}` is {chars} characters long; the limit is {limit}"),
            format!("shorten `{key}` to at most {limit} characters (see docs/content.md, Limits)"),
        );
        return false;
    }
    true
}

fn suggest(key: &str) -> String {
    let best = KEYS
        .iter()
        .map(|k| (strsim::levenshtein(k, key), *k))
        .min()
        .filter(|(d, _)| *d <= 3);
    match best {
        Some((_, k)) => format!("did you mean `{k}`? Known keys: {}", KEYS.join(", ")),
        None => format!("remove it; known keys: {}", KEYS.join(", ")),
    }
}

/// The first control character other than tab and line breaks: C0, DEL or C1.
fn find_control(s: &str) -> Option<(usize, char)> {
    // Every file is scanned, so skip clean 64-byte blocks with a test the compiler
    // vectorizes; only a block holding a candidate byte is decoded.
    const BLOCK: usize = 64;
    let bytes = s.as_bytes();
    // C0 and DEL are single bytes; C1 (U+0080..U+009F) is encoded as 0xC2 0x80..0x9F.
    let candidate = |b: u8| b < 0x20 || b == 0x7f || b == 0xc2;
    let mut start = 0;
    while start < bytes.len() {
        let end = (start + BLOCK).min(bytes.len());
        if bytes[start..end]
            .iter()
            .fold(false, |acc, &b| acc | candidate(b))
        {
            // A block boundary may split a character: decode from the block's first char.
            let from = (0..=start)
                .rev()
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(0);
            let to = (end..=bytes.len())
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(bytes.len());
            if let Some((i, c)) = s[from..to]
                .char_indices()
                .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
            {
                return Some((from + i, c));
            }
        }
        start = end;
    }
    None
}

fn summary_from(doc: &Document) -> String {
    let para = doc.blocks.iter().find_map(|b| match b {
        crate::doc::Block::Paragraph(p) => Some(crate::doc::inline_text(p)),
        _ => None,
    });
    let text: String = para
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if text.chars().count() <= 280 {
        return text;
    }
    let mut cut: String = text.chars().take(280).collect();
    if let Some(space) = cut.rfind(' ') {
        cut.truncate(space);
    }
    cut.push('…');
    cut
}

/// Parse one statement file. `rel` is the path below `statements/`; `shown` is how
/// the file is named in messages. Returns the statement or every problem found.
pub fn parse_file(
    config: &Config,
    rel: &Path,
    shown: &Path,
    bytes: &[u8],
) -> Result<Statement, Vec<Diagnostic>> {
    let name = match split_name(rel) {
        Ok(n) => n,
        Err(why) => {
            return Err(vec![Diagnostic::file(
                "file-name",
                shown,
                format!("unexpected file name: {why}"),
                "name statement files statements/YYYY/slug.LANG.md, e.g. statements/2014/world-day.en.md",
            )]);
        }
    };
    if bytes.len() > limits::FILE_BYTES {
        // Point at the first byte past the limit; the rest is never parsed.
        let head = String::from_utf8_lossy(&bytes[..limits::FILE_BYTES]);
        let end = head.len();
        return Err(vec![Diagnostic::at(
            "file-size",
            shown,
            &head,
            end..end,
            format!(
                "the file is larger than {} bytes (1 MiB), the limit for one statement",
                limits::FILE_BYTES
            ),
            "split it into several statements, or move tables and annexes into a PDF under content/assets/ and link to it",
        )]);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let col = good
                .iter()
                .rev()
                .take_while(|b| **b != b'\n')
                .filter(|b| (**b & 0xC0) != 0x80)
                .count()
                + 1;
            let mut d = Diagnostic::file(
                "not-utf8",
                shown,
                format!(
                    "the file is not UTF-8 (invalid byte 0x{:02X})",
                    bytes[e.valid_up_to()]
                ),
                "save the file as UTF-8 (in most editors: Save with Encoding → UTF-8)",
            );
            d.line = line;
            d.column = col;
            return Err(vec![d]);
        }
    };
    let digest = hex::encode(Sha256::digest(bytes));
    let text_nobom = text.strip_prefix('\u{feff}').unwrap_or(text);
    let bom = text.len() - text_nobom.len();
    let mut cx = Ctx {
        path: shown,
        text,
        fm_start: 0,
        out: Vec::new(),
        dropped: 0,
    };

    // Name checks.
    if !is_slug(&name.stem) {
        cx.out.push(Diagnostic::file(
            "slug",
            shown,
            format!(
                "slug {:?} is not lowercase letters, digits and dashes",
                name.stem
            ),
            "rename the file, e.g. world-day-against-trafficking.en.md",
        ));
    }
    let lang_ok = config.languages.contains(&name.lang);
    if !lang_ok {
        cx.out.push(Diagnostic::file(
            "language",
            shown,
            format!("language {:?} is not listed in herald.toml", name.lang),
            format!(
                "use one of {} or add it to `languages` in herald.toml",
                config.languages.join(", ")
            ),
        ));
    }

    // Front matter fences.
    let first_line_end = text_nobom.find('\n').map_or(text_nobom.len(), |i| i);
    let first_line = &text_nobom[..first_line_end];
    if first_line.trim_end_matches('\r').contains('\r') {
        // Old Mac OS line endings: the whole file reads as one line.
        cx.abs(
            "line-endings",
            bom..bom + first_line_end.clamp(1, 3),
            "the lines of this file end with a lone CR (carriage return) and no line feed".into(),
            "save the file with LF (or CRLF) line endings; most editors have a \"line endings\" setting",
        );
        return Err(cx.finish());
    }
    if first_line.trim_end() != "+++" {
        cx.abs(
            "front-matter",
            bom..bom + first_line_end.max(1),
            "the file does not start with `+++`".into(),
            "start the file with a line `+++`, the TOML front matter, another `+++`, then the body",
        );
        return Err(cx.finish());
    }
    let fm_start = bom + first_line_end + 1;
    let rest = text.get(fm_start..).unwrap_or("");
    let mut close = None;
    let mut pos = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "+++" {
            close = Some((pos, pos + line.len()));
            break;
        }
        pos += line.len();
    }
    let Some((fm_len, body_rel)) = close else {
        cx.abs(
            "front-matter",
            bom..bom + 3,
            "the front matter opened here is never closed".into(),
            "add a line `+++` after the last front matter key",
        );
        return Err(cx.finish());
    };
    cx.fm_start = fm_start;
    let fm = &text[fm_start..fm_start + fm_len];
    let body_start = fm_start + body_rel;
    let body = &text[body_start..];

    // Control characters anywhere in the text (front matter and body).
    if let Some((i, c)) = find_control(text) {
        cx.abs(
            "control-char",
            i..i + c.len_utf8(),
            format!("control character U+{:04X} in the text", c as u32),
            "delete it: it is invisible and breaks feeds and mail (often pasted from a word processor)",
        );
    }

    let table = match DeTable::parse(fm) {
        Ok(t) => t.into_inner(),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            cx.at(
                "toml",
                span,
                format!("front matter is not valid TOML: {}", e.message().trim()),
                "fix the TOML syntax: strings in double quotes, dates like 2014-07-30T09:00:00+06:00, lists in [ ]",
            );
            return Err(cx.finish());
        }
    };

    let mut title = None;
    let mut date = None;
    let mut publish_at = None;
    let mut updated = None;
    let mut summary = None;
    let mut issuers = Vec::new();
    let mut place = None;
    let mut occasion = None;
    let mut topics = Vec::new();
    let mut bulletin = true;
    let mut draft = false;
    let mut slug = None;
    // A present but bad `date` is reported as bad, not also as missing.
    let date_present = table.iter().any(|(k, _)| k.get_ref() == "date");

    for (key, value) in table.iter() {
        let kspan = key.span();
        let vspan = value.span();
        let k: &str = key.get_ref();
        let v = value.get_ref();
        let type_err = |cx: &mut Ctx<'_>, want: &str, example: &str| {
            cx.at(
                "type",
                vspan.clone(),
                format!("`{k}` must be {want}"),
                format!("write it as {k} = {example}"),
            );
        };
        match k {
            "title" | "summary" | "place" | "occasion" | "slug" => {
                let DeValue::String(s) = v else {
                    type_err(&mut cx, "a string", "\"...\"");
                    continue;
                };
                let s = s.to_string();
                // A refused title is still a title: no "missing title" besides.
                if !line_field(&mut cx, k, &s, vspan.clone()) && k == "slug" {
                    continue;
                }
                match k {
                    "title" => title = Some((s, vspan)),
                    "summary" => summary = Some(s),
                    "place" => place = Some(s),
                    "occasion" => occasion = Some(s),
                    _ => {
                        if !is_slug(&s) {
                            cx.at(
                                "slug",
                                vspan,
                                format!("slug {s:?} is not lowercase letters, digits and dashes"),
                                "use a slug such as \"world-day-2014\"",
                            );
                        }
                        slug = Some(s);
                    }
                }
            }
            "date" | "publish_at" | "updated" => {
                let DeValue::Datetime(dt) = v else {
                    type_err(
                        &mut cx,
                        "a date and time",
                        "2014-07-30T09:00:00+06:00 (no quotes)",
                    );
                    continue;
                };
                if dt.offset.is_none() || dt.time.is_none() || dt.date.is_none() {
                    cx.at(
                        "date-offset",
                        vspan,
                        format!("`{k}` has no UTC offset: {dt}"),
                        format!(
                            "add the offset of the local time, e.g. {k} = {}+06:00 (or Z for UTC)",
                            if dt.time.is_some() && dt.date.is_some() {
                                dt.to_string()
                            } else {
                                "2014-07-30T09:00:00".into()
                            }
                        ),
                    );
                    continue;
                }
                match DateTime::parse_from_rfc3339(&dt.to_string()) {
                    Ok(parsed) => match k {
                        "date" => date = Some((parsed, vspan)),
                        "publish_at" => publish_at = Some(parsed),
                        _ => updated = Some((parsed, vspan)),
                    },
                    Err(e) => cx.at(
                        "date",
                        vspan,
                        format!("`{k}` is not a valid date: {e}"),
                        "write an RFC 3339 date such as 2014-07-30T09:00:00+06:00",
                    ),
                }
            }
            "issuers" | "topics" => {
                let DeValue::Array(items) = v else {
                    type_err(&mut cx, "a list of strings", "[\"...\"]");
                    continue;
                };
                let most = if k == "topics" {
                    limits::TOPICS
                } else {
                    limits::ISSUERS
                };
                if items.len() > most {
                    cx.at(
                        "too-many",
                        vspan.clone(),
                        format!("`{k}` lists {} entries; the limit is {most}", items.len()),
                        format!("keep the {most} that matter most (see docs/content.md, Limits)"),
                    );
                    continue;
                }
                for item in items {
                    let DeValue::String(s) = item.get_ref() else {
                        cx.at(
                            "type",
                            item.span(),
                            format!("`{k}` must hold strings only"),
                            "put each entry in double quotes",
                        );
                        continue;
                    };
                    let s = s.to_string();
                    if !line_field(&mut cx, k, &s, item.span()) {
                        continue;
                    }
                    if s.trim().is_empty() {
                        cx.at(
                            "empty",
                            item.span(),
                            format!("empty entry in `{k}`"),
                            "remove it",
                        );
                        continue;
                    }
                    if k == "topics" {
                        if !is_slug(&s) {
                            cx.at(
                                "topic",
                                item.span(),
                                format!("topic {s:?} is not lowercase letters, digits and dashes"),
                                "topics name URLs: write them like \"human-rights\"",
                            );
                            continue;
                        }
                        if !topics.contains(&s) {
                            topics.push(s);
                        }
                    } else {
                        issuers.push(s);
                    }
                }
            }
            "bulletin" | "draft" => {
                let DeValue::Boolean(b) = v else {
                    type_err(&mut cx, "true or false", "true");
                    continue;
                };
                if k == "bulletin" {
                    bulletin = *b;
                } else {
                    draft = *b;
                }
            }
            _ => cx.at(
                "unknown-key",
                kspan,
                format!("unknown key `{k}` in the front matter"),
                suggest(k),
            ),
        }
    }

    let fm_end_span = fm.len().saturating_sub(1)..fm.len();
    let title = match title {
        None => {
            cx.abs(
                "missing-title",
                bom..bom + 3,
                "the front matter has no `title`".into(),
                "add title = \"...\" between the +++ lines",
            );
            None
        }
        Some((t, span)) if t.trim().is_empty() => {
            cx.at(
                "empty-title",
                span,
                "the title is empty".into(),
                "write the statement's title",
            );
            None
        }
        Some((t, _)) => Some(t.trim().to_string()),
    };
    let date = match date {
        None if date_present => None,
        None => {
            cx.abs(
                "missing-date",
                bom..bom + 3,
                "the front matter has no `date`".into(),
                "add date = 2014-07-30T09:00:00+06:00 (the statement's date, with its offset)",
            );
            None
        }
        Some((d, span)) => {
            if d.format("%Y").to_string() != name.year {
                cx.at(
                    "year",
                    span,
                    format!(
                        "the date is in {} but the file is in the {} folder",
                        d.format("%Y"),
                        name.year
                    ),
                    format!(
                        "move the file to statements/{}/ or correct the date",
                        d.format("%Y")
                    ),
                );
            }
            Some(d)
        }
    };
    if let (Some(d), Some((u, span))) = (date, &updated)
        && *u < d
    {
        cx.at(
            "updated",
            span.clone(),
            "`updated` is before `date`".into(),
            "a correction comes after the statement: check both dates",
        );
    }
    let _ = fm_end_span;

    let (doc, issues) = markdown::parse(body);
    if body.trim().is_empty() {
        let at = body_start.min(text.len());
        cx.abs(
            "empty-body",
            body_start.saturating_sub(4)..at,
            "the statement has no body".into(),
            "write the statement's text after the closing +++",
        );
    }
    for issue in issues {
        cx.abs(
            issue.code,
            issue.span.start + body_start..issue.span.end + body_start,
            issue.message,
            issue.hint,
        );
    }

    if !cx.out.is_empty() || !lang_ok {
        return Err(cx.finish());
    }
    let (Some(title), Some(date)) = (title, date) else {
        return Err(cx.finish());
    };
    let summary = match summary {
        Some(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => summary_from(&doc),
    };
    Ok(Statement {
        id: format!("{}/{}", name.year, name.stem),
        slug: slug.unwrap_or_else(|| name.stem.clone()),
        lang: name.lang,
        year: name.year,
        path: shown.to_path_buf(),
        meta: FrontMatter {
            title,
            date,
            publish_at: publish_at.unwrap_or(date),
            updated: updated.map(|(u, _)| u),
            summary,
            issuers,
            place,
            occasion,
            topics,
            bulletin,
            draft,
        },
        body: Ok(body.to_string()).into(),
        body_at: body_start,
        source: None,
        digest,
        document: doc.into(),
        key: Default::default(),
    })
}

/// Convenience for tests and previews: "now" as a UTC instant from an RFC 3339 string.
pub fn instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| Utc.from_utc_datetime(&d.naive_utc()))
}

#[cfg(test)]
mod tests {
    use super::find_control;

    fn naive(s: &str) -> Option<(usize, char)> {
        s.char_indices()
            .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    }

    #[test]
    fn block_scan_finds_what_a_char_scan_finds() {
        let fillers = ["a", "ә", "«", "\u{a0}", "ж", "\t", "\r\n", "😀"];
        let controls = ['\u{7}', '\u{7f}', '\u{85}', '\u{9f}', '\u{0}', '\u{1b}'];
        for filler in fillers {
            for len in [0, 1, 62, 63, 64, 65, 127, 128, 200] {
                let clean = filler.repeat(len);
                assert_eq!(find_control(&clean), None, "{filler:?} x {len}");
                for c in controls {
                    for at in [0, clean.len() / 2, clean.len()] {
                        // Insert at a char boundary at or before `at`.
                        let at = (0..=at)
                            .rev()
                            .find(|&i| clean.is_char_boundary(i))
                            .expect("0 is a boundary");
                        let mut s = clean.clone();
                        s.insert(at, c);
                        s.push('\u{8}');
                        assert_eq!(find_control(&s), naive(&s), "{s:?}");
                        assert_eq!(find_control(&s), Some((at, c)), "{s:?}");
                    }
                }
            }
        }
    }
}
