//! Static files from `public/`: conditional requests, byte ranges, a cache policy
//! per kind, and a small in-memory cache.
//!
//! A file is read once and kept (bytes, ETag, Last-Modified) until a `stat` shows it
//! changed: `publish` may run in another process, so every request checks the file's
//! identity (inode, size, modification time) but only a changed file is read again.
//! The ETag is the XXH3-128 digest of the bytes, the same digest the ledger keeps for
//! each output, so a publish that rewrites a file with the same bytes keeps its ETag.
//! Nothing resolves outside `public/`: a path whose real location (symbolic links
//! followed) leaves the folder is answered 404.

use std::collections::HashMap;
use std::fs::Metadata;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// Files larger than this are read for each request instead of cached.
const MAX_CACHED_FILE: u64 = 4 * 1024 * 1024;
/// The cache is emptied when it would grow past this.
const MAX_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// What identifies one version of a file on disk, cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

impl Stamp {
    fn of(m: &Metadata) -> Stamp {
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        Stamp {
            dev,
            ino,
            len: m.len(),
            mtime: m.modified().ok(),
        }
    }
}

#[derive(Debug)]
struct Cached {
    stamp: Stamp,
    bytes: Bytes,
    etag: HeaderValue,
    last_modified: Option<HeaderValue>,
}

/// The static-file service of one `public/` folder.
#[derive(Debug)]
pub(crate) struct Files {
    root: PathBuf,
    /// `root` with every symbolic link resolved, to compare real locations against.
    real_root: RwLock<Option<PathBuf>>,
    cache: RwLock<HashMap<String, Arc<Cached>>>,
    cached_bytes: std::sync::atomic::AtomicU64,
}

/// How a request path maps onto `public/`.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// A path below `public/` (relative, `/`-separated).
    File(String),
    NotFound,
}

/// What is at a path below `public/`.
enum Loaded {
    File(Arc<Cached>),
    /// A directory asked for without its trailing slash: redirect to this path.
    Directory(String),
    Missing,
}

/// What may stand in a `Location` path as it is.
const LOCATION_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl Files {
    pub(crate) fn new(root: PathBuf) -> Files {
        Files {
            root,
            real_root: RwLock::new(None),
            cache: RwLock::new(HashMap::new()),
            cached_bytes: 0.into(),
        }
    }

    fn real_root(&self) -> Option<PathBuf> {
        if let Ok(r) = self.real_root.read()
            && let Some(p) = r.as_ref()
        {
            return Some(p.clone());
        }
        // public/ may not exist yet when the server starts (a first publish makes it).
        let real = std::fs::canonicalize(&self.root).ok()?;
        if let Ok(mut r) = self.real_root.write() {
            *r = Some(real.clone());
        }
        Some(real)
    }

    /// Answer a GET or HEAD for `path` (the request's path, still percent-encoded).
    pub(crate) fn respond(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response {
        if method != Method::GET && method != Method::HEAD {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, "GET, HEAD")],
                "Only GET and HEAD are allowed here.\n",
            )
                .into_response();
        }
        let (Target::File(rel), dir_request) = (self.resolve(path), path.ends_with('/')) else {
            return not_found();
        };
        let cached = match self.load(&rel) {
            Ok(Loaded::File(c)) => c,
            Ok(Loaded::Directory(to)) if !dir_request => return redirect(&to),
            Ok(Loaded::Directory(_) | Loaded::Missing) => return not_found(),
            Err(e) => {
                tracing::warn!("public/{rel}: {e}");
                return not_found();
            }
        };
        respond_with(&cached, &rel, method, headers)
    }

    /// Map a request path to a file below `public/`, refusing anything that could
    /// leave it (`..`, backslashes, NUL, a drive prefix). No file system access: the
    /// one `stat` of a request is in [`Files::load`].
    fn resolve(&self, raw: &str) -> Target {
        // percent-encoding keeps a broken escape as text; a request with one is refused.
        let b = raw.as_bytes();
        let hex = |i: usize| b.get(i).is_some_and(u8::is_ascii_hexdigit);
        if (0..b.len()).any(|i| b[i] == b'%' && !(hex(i + 1) && hex(i + 2))) {
            return Target::NotFound;
        }
        let Ok(decoded) = percent_encoding::percent_decode_str(raw).decode_utf8() else {
            return Target::NotFound;
        };
        let mut parts: Vec<&str> = Vec::new();
        for seg in decoded.split('/') {
            match seg {
                "" | "." => {}
                ".." => return Target::NotFound,
                s if s.contains(['\\', '\0']) => return Target::NotFound,
                s => parts.push(s),
            }
        }
        for p in &parts {
            if Path::new(p)
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
            {
                return Target::NotFound;
            }
        }
        let rel = parts.join("/");
        if rel.is_empty() {
            Target::File("index.html".into())
        } else if decoded.ends_with('/') {
            Target::File(format!("{rel}/index.html"))
        } else {
            Target::File(rel)
        }
    }

    /// The file's current bytes, from the cache when it has not changed.
    fn load(&self, rel: &str) -> std::io::Result<Loaded> {
        let path = self.root.join(rel);
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            // Same origin always: one leading slash, whatever the request had.
            Ok(m) if m.is_dir() => {
                return Ok(Loaded::Directory(format!(
                    "/{}/",
                    percent_encoding::utf8_percent_encode(rel, LOCATION_PATH)
                )));
            }
            Ok(_) => return Ok(Loaded::Missing),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Missing),
            Err(e) => return Err(e),
        };
        let stamp = Stamp::of(&meta);
        if let Ok(cache) = self.cache.read()
            && let Some(c) = cache.get(rel)
            && c.stamp == stamp
        {
            return Ok(Loaded::File(c.clone()));
        }
        // A new or changed file: check where it really is before reading it.
        let Some(real_root) = self.real_root() else {
            return Ok(Loaded::Missing);
        };
        let real = std::fs::canonicalize(&path)?;
        if !real.starts_with(&real_root) {
            tracing::warn!(
                "public/{rel} resolves to {}, outside public/: not served",
                real.display()
            );
            return Ok(Loaded::Missing);
        }
        let bytes = Bytes::from(std::fs::read(&real)?);
        let digest = xxhash_rust::xxh3::xxh3_128(&bytes);
        let etag =
            HeaderValue::from_str(&format!("\"{digest:032x}\"")).map_err(std::io::Error::other)?;
        let last_modified = stamp
            .mtime
            .and_then(|t| HeaderValue::from_str(&httpdate::fmt_http_date(t)).ok());
        // Stamp the bytes we read, not the ones stat saw before (a rename in between).
        let stamp = std::fs::metadata(&real)
            .map(|m| Stamp::of(&m))
            .unwrap_or(stamp);
        let cached = Arc::new(Cached {
            stamp,
            bytes,
            etag,
            last_modified,
        });
        let len = cached.bytes.len() as u64;
        if len <= MAX_CACHED_FILE
            && let Ok(mut cache) = self.cache.write()
        {
            use std::sync::atomic::Ordering::Relaxed;
            if self.cached_bytes.load(Relaxed) + len > MAX_CACHE_BYTES {
                cache.clear();
                self.cached_bytes.store(0, Relaxed);
            }
            if let Some(old) = cache.insert(rel.to_string(), cached.clone()) {
                self.cached_bytes.fetch_sub(old.bytes.len() as u64, Relaxed);
            }
            self.cached_bytes.fetch_add(len, Relaxed);
        }
        Ok(Loaded::File(cached))
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        "Not found. It may not be published yet.\n",
    )
        .into_response()
}

fn redirect(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(v) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, v)]).into_response(),
        Err(_) => not_found(),
    }
}

/// The content type by extension: what `publish` writes.
fn content_type(rel: &str) -> &'static str {
    let ext = rel.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "xml" | "rss" | "atom" => "application/xml; charset=utf-8",
        "xsl" | "xslt" => "application/xslt+xml; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "minisig" | "sig" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// HTML, feeds and everything else `publish` may rewrite under the same name are
/// revalidated on every use (cheap: a 304). A name that carries its content's
/// digest (`style.3f9a1c2e.css`) never changes, so it may be kept for a year.
fn cache_control(rel: &str) -> &'static str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let fingerprinted = name.split('.').rev().skip(1).take(1).any(|part| {
        part.len() >= 8 && part.len() <= 64 && part.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if fingerprinted {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, RFC 9110 13.1.2).
fn none_match(value: &str, etag: &str) -> bool {
    let value = value.trim();
    if value == "*" {
        return true;
    }
    value
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag)
}

fn not_modified(c: &Cached, headers: &HeaderMap) -> bool {
    let etag = c.etag.to_str().unwrap_or("");
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        // If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3).
        return inm.to_str().is_ok_and(|v| none_match(v, etag));
    }
    match (
        headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok()),
        c.stamp.mtime,
    ) {
        (Some(since), Some(mtime)) => {
            // HTTP dates have whole seconds.
            let mtime_secs = mtime
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let since_secs = since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            mtime_secs <= since_secs
        }
        _ => false,
    }
}

/// A `Range` header applies when `If-Range` (if any) names this version.
fn range_applies(c: &Cached, headers: &HeaderMap) -> bool {
    match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) if v.starts_with('"') => c.etag.to_str().is_ok_and(|e| e == v),
        Some(v) => match (httpdate::parse_http_date(v).ok(), &c.last_modified) {
            (Some(_), Some(lm)) => lm.to_str().is_ok_and(|lm| lm == v),
            _ => false,
        },
    }
}

fn respond_with(c: &Cached, rel: &str, method: &Method, headers: &HeaderMap) -> Response {
    let mut builder = Response::builder()
        .header(header::ETAG, c.etag.clone())
        .header(header::CACHE_CONTROL, cache_control(rel))
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(lm) = &c.last_modified {
        builder = builder.header(header::LAST_MODIFIED, lm.clone());
    }
    if not_modified(c, headers) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| not_found());
    }
    builder = builder.header(header::CONTENT_TYPE, content_type(rel));
    let total = c.bytes.len() as u64;
    let mut status = StatusCode::OK;
    let mut body = c.bytes.clone();
    if let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok())
        && range_applies(c, headers)
    {
        match http_range_header::parse_range_header(range).map(|r| r.validate(total)) {
            // One range: 206 with that slice. Several: the whole file (RFC 9110 allows it).
            Ok(Ok(ranges)) if ranges.len() == 1 => {
                let r = &ranges[0];
                let (start, end) = (*r.start(), *r.end());
                status = StatusCode::PARTIAL_CONTENT;
                body = c.bytes.slice(start as usize..=end as usize);
                builder = builder.header(
                    header::CONTENT_RANGE,
                    format!("bytes {start}-{end}/{total}"),
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                return builder
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{total}"))
                    .body(Body::empty())
                    .unwrap_or_else(|_| not_found());
            }
            // A malformed Range header is ignored (RFC 9110 14.2).
            Err(_) => {}
        }
    }
    builder = builder.header(header::CONTENT_LENGTH, body.len());
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    builder
        .status(status)
        .body(body)
        .unwrap_or_else(|_| not_found())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> (tempfile::TempDir, Files) {
        let dir = tempfile::tempdir().expect("tempdir");
        let public = dir.path().join("public");
        std::fs::create_dir_all(public.join("en/2014")).expect("mkdir");
        std::fs::write(public.join("en/index.html"), "<p>en</p>").expect("write");
        std::fs::write(public.join("index.html"), "<p>root</p>").expect("write");
        (dir, Files::new(public))
    }

    #[test]
    fn directories_redirect_on_the_same_origin() {
        let (_d, f) = files();
        for path in ["/en", "//en", "///en", "/%2Fen"] {
            // A protocol-relative path must not become a protocol-relative Location.
            assert_eq!(f.resolve(path), Target::File("en".into()), "{path}");
        }
        assert!(matches!(f.load("en"), Ok(Loaded::Directory(to)) if to == "/en/"));
        assert_eq!(f.resolve("/en/"), Target::File("en/index.html".into()));
        assert_eq!(f.resolve("/"), Target::File("index.html".into()));
    }

    #[test]
    fn paths_that_leave_public_are_refused() {
        let (_d, f) = files();
        for p in [
            "/../content/herald.toml",
            "/en/%2e%2e/%2e%2e/etc/passwd",
            "/en/..%2f..%2fsecret",
            "/en\\..\\x",
            "/a%00b",
            "/%ZZ",
        ] {
            assert_eq!(f.resolve(p), Target::NotFound, "{p}");
        }
    }

    #[test]
    fn fingerprinted_names_are_immutable_and_the_rest_revalidates() {
        assert_eq!(
            cache_control("style.3f9a1c2e.css"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(cache_control("style.css"), "no-cache");
        assert_eq!(cache_control("en/index.html"), "no-cache");
        assert_eq!(cache_control("en/feed.xml"), "no-cache");
        assert_eq!(cache_control("en/2014/a/a.en.pdf"), "no-cache");
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists() {
        assert!(none_match("\"abc\"", "\"abc\""));
        assert!(none_match("W/\"abc\"", "\"abc\""));
        assert!(none_match("\"x\", \"abc\"", "\"abc\""));
        assert!(none_match("*", "\"abc\""));
        assert!(!none_match("\"abd\"", "\"abc\""));
    }
}
