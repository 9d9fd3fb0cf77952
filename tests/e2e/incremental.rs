//! Incremental publishing (issue 16): a random sequence of adds, edits, deletes,
//! embargo lifts, template edits and configuration changes, published step by
//! step, leaves `public/` (pages, feeds, PDFs, preview images, sitemap), the
//! ledger and the outbox byte-identical to a publish that renders everything from
//! scratch, and `public/` byte-identical to a cold publish of the final content.
//!
//! Three projects get the same operations and the same `--now`:
//! - A publishes after each operation, as an editor would;
//! - B loses its `public/` before each publish, so every output is rendered anew
//!   (its ledger and outbox carry the same history as A's);
//! - C, at the end, is a fresh copy of A's `content/` alone, published once.
//!
//! Every herald run happens at one path (`live`): the projects are renamed there
//! for the run and back afterwards, so nothing that herald derives from the
//! project's absolute path (such as the digest of its input files) can tell them
//! apart. What the ledger comparison leaves out, and why, is listed at [`ledger`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat};
use herald_e2e::{add_desk_subscriber, copy_dir, herald, repo};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const BIN: &str = env!("CARGO_BIN_EXE_herald-under-test");

/// The first publish. Far past the wall clock at which `add_desk_subscriber` records
/// consent, so every statement this test adds is mailed to the desk.
const START: &str = "2040-03-02T09:00:00+05:00";
/// Every `--now` and statement date is written in Astana time, like the sample.
const OFFSET_SECS: i32 = 5 * 3600;
/// A fixed mail secret for A (and so B, its copy): link tokens in the outbox depend on it.
const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const LANGS: [&str; 3] = ["en", "ru", "kk"];
const TOPICS: [&str; 5] = [
    "migration",
    "health",
    "trafficking",
    "human-rights",
    "climate",
];
const EN: [&str; 12] = [
    "water", "border", "school", "harvest", "clinic", "winter", "river", "workers", "children",
    "rights", "steppe", "census",
];
const RU: [&str; 12] = [
    "вода",
    "граница",
    "школа",
    "урожай",
    "клиника",
    "зима",
    "река",
    "работники",
    "дети",
    "права",
    "степь",
    "перепись",
];
const KK: [&str; 12] = [
    "су",
    "шекара",
    "мектеп",
    "егін",
    "емхана",
    "қыс",
    "өзен",
    "жұмысшылар",
    "балалар",
    "құқықтар",
    "әлем",
    "ұлттық",
];

fn vocabulary(lang: &str) -> &'static [&'static str; 12] {
    match lang {
        "ru" => &RU,
        "kk" => &KK,
        _ => &EN,
    }
}

fn words(lang: &str, picks: &[u8]) -> String {
    let v = vocabulary(lang);
    picks
        .iter()
        .map(|&p| v[usize::from(p) % v.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Template overrides this test writes below `content/templates/`: the file, the
/// built-in it starts from (below the repository), and where the change goes.
struct Override {
    name: &'static str,
    builtin: &'static str,
    /// Inserted after this text (`""`: appended at the end).
    after: &'static str,
}

const OVERRIDES: [Override; 7] = [
    Override {
        name: "base.html",
        builtin: "crates/site/templates/base.html",
        after: "<footer class=\"site\">",
    },
    Override {
        name: "statement.html",
        builtin: "crates/site/templates/statement.html",
        after: "{% block main %}",
    },
    Override {
        name: "entries.html",
        builtin: "crates/site/templates/entries.html",
        after: "",
    },
    Override {
        name: "topics.html",
        builtin: "crates/site/templates/topics.html",
        after: "{% block main %}",
    },
    Override {
        name: "year.html",
        builtin: "crates/site/templates/year.html",
        after: "{% block main %}",
    },
    Override {
        name: "style.css",
        builtin: "crates/site/templates/style.css",
        after: "",
    },
    Override {
        name: "mail/bulletin.txt",
        builtin: "crates/mail/src/templates/bulletin.txt",
        after: "",
    },
];

#[derive(Debug, Clone)]
struct Add {
    lang: usize,
    title: Vec<u8>,
    body: Vec<Vec<u8>>,
    topics: Vec<usize>,
    summary: Option<Vec<u8>>,
    /// Minutes before the step's `now` (its date), when not under embargo.
    age: u32,
    /// Minutes after the step's `now` at which it may be published.
    embargo: Option<u32>,
    /// A translation of an existing statement (in a language it lacks), if any.
    translation_of: Option<u16>,
}

#[derive(Debug, Clone)]
enum Edit {
    Title(Vec<u8>),
    Body(Vec<u8>),
    Topics(Vec<usize>),
    Summary(Vec<u8>),
    /// A correction: `updated` this many days after the last one (or the date).
    Updated(u32),
    /// `draft = true` (true), or the key removed: a published statement goes from
    /// every page and feed, and comes back.
    Draft(bool),
    /// `slug = "<file stem>-<word>"`, or the key removed: the statement moves to
    /// another address, and the pages of its translations link there.
    Slug(Option<u8>),
}

#[derive(Debug, Clone)]
enum Setting {
    /// `title` (None: the sample's).
    Title(Option<u8>),
    /// `[site] per_page` (None: the default, 50).
    PerPage(Option<usize>),
    /// `[organization] short_name`: the PDF header prints it.
    ShortName(Option<u8>),
    /// `[site.topic_names.climate] en`.
    TopicName(Option<u8>),
    /// `[feed] enabled = false` (true) or the default (false): the feeds go, or
    /// come back, and the pages render without the PDFs beside the feeds.
    FeedOff(bool),
    /// `[pdf] enabled = false` (true) or the default (false).
    PdfOff(bool),
    /// `base_url` under a path of this word (None: the sample's): every absolute
    /// link moves, the feed entries' HTML with it.
    BaseUrl(Option<u8>),
}

#[derive(Debug, Clone)]
enum Op {
    Add(Add),
    /// `file` picks a statement file: the `file % count`th by path.
    Edit {
        file: u16,
        change: Edit,
    },
    Delete {
        file: u16,
    },
    /// `now` moves to the earliest embargo still pending (one hour on, if none is).
    Lift,
    /// Write an override (or, with `remove`, delete it).
    Template {
        which: usize,
        word: u8,
        remove: bool,
    },
    Config(Setting),
}

/// What the configuration operations have set so far.
#[derive(Debug, Clone, Default)]
struct Settings {
    title: Option<String>,
    per_page: Option<usize>,
    short_name: Option<String>,
    topic_name: Option<String>,
    feed_off: bool,
    pdf_off: bool,
    base_path: Option<String>,
}

impl Settings {
    fn herald_toml(&self, sample: &str) -> String {
        let mut text = String::new();
        for line in sample.lines() {
            match (line, &self.title, &self.short_name, &self.base_path) {
                (l, Some(t), _, _) if l.starts_with("title = ") => {
                    let _ = writeln!(text, "title = \"UN Kazakhstan — {t}\"");
                }
                (l, _, Some(s), _) if l.starts_with("short_name = ") => {
                    let _ = writeln!(text, "short_name = \"UN {s}\"");
                }
                (l, _, _, Some(p)) if l.starts_with("base_url = ") => {
                    let _ = writeln!(text, "base_url = \"https://statements.example.org/{p}/\"");
                }
                (l, _, _, _) => {
                    let _ = writeln!(text, "{l}");
                }
            }
        }
        if let Some(n) = self.per_page {
            let _ = write!(text, "\n[site]\nper_page = {n}\n");
        }
        if let Some(name) = &self.topic_name {
            let _ = write!(text, "\n[site.topic_names.climate]\nen = \"{name}\"\n");
        }
        if self.feed_off {
            text.push_str("\n[feed]\nenabled = false\n");
        }
        if self.pdf_off {
            text.push_str("\n[pdf]\nenabled = false\n");
        }
        text
    }
}

/// One file change, made the same way in A and B.
enum Change {
    Write(String, String),
    Remove(String),
}

/// The content as this test knows it: A's and B's `content/` always hold exactly this.
struct Model {
    /// Statement files, by path below `content/`.
    files: BTreeMap<String, String>,
    /// Template overrides, by name below `content/templates/`.
    overrides: BTreeMap<String, String>,
    settings: Settings,
    sample_toml: String,
    now: DateTime<FixedOffset>,
    added: usize,
}

fn stamp(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn astana(t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    t.with_timezone(&FixedOffset::east_opt(OFFSET_SECS).expect("offset"))
}

/// The value of `key = ...` in a statement's front matter.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let fm = text.strip_prefix("+++\n")?.split("\n+++\n").next()?;
    fm.lines()
        .find_map(|l| l.strip_prefix(key)?.trim_start().strip_prefix('='))
        .map(str::trim)
}

fn time_field(text: &str, key: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(field(text, key)?).ok()
}

/// `text` with `key = value` set in its front matter (`None`: the key removed).
fn set_field(text: &str, key: &str, value: Option<&str>) -> String {
    let rest = text.strip_prefix("+++\n").expect("front matter");
    let (fm, body) = rest.split_once("\n+++\n").expect("front matter end");
    let mut lines: Vec<String> = fm
        .lines()
        .filter(|l| {
            !l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(str::to_string)
        .collect();
    if let Some(v) = value {
        lines.push(format!("{key} = {v}"));
    }
    format!("+++\n{}\n+++\n{body}", lines.join("\n"))
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

fn topic_list(picks: &[usize]) -> Option<String> {
    let mut t: Vec<&str> = picks.iter().map(|&i| TOPICS[i % TOPICS.len()]).collect();
    t.sort_unstable();
    t.dedup();
    (!t.is_empty()).then(|| {
        format!(
            "[{}]",
            t.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(", ")
        )
    })
}

/// `statements/2014/world-day.en.md` -> ("2014/world-day", "en").
fn id_and_lang(path: &str) -> (String, String) {
    let rest = path
        .strip_prefix("statements/")
        .and_then(|p| p.strip_suffix(".md"))
        .expect("statement path");
    let (id, lang) = rest.rsplit_once('.').expect("language");
    (id.to_string(), lang.to_string())
}

impl Model {
    fn new(content: &Path) -> Model {
        let mut files = BTreeMap::new();
        for e in walkdir::WalkDir::new(content.join("statements")).sort_by_file_name() {
            let e = e.expect("walk");
            if e.file_type().is_file() {
                let rel = e
                    .path()
                    .strip_prefix(content)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, fs::read_to_string(e.path()).expect("read"));
            }
        }
        Model {
            files,
            overrides: BTreeMap::new(),
            settings: Settings::default(),
            sample_toml: fs::read_to_string(content.join("herald.toml")).expect("herald.toml"),
            now: DateTime::parse_from_rfc3339(START).expect("start"),
            added: 0,
        }
    }

    /// The earliest moment after `after` at which a statement comes due.
    fn next_embargo(&self, after: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
        self.files
            .values()
            .filter_map(|t| time_field(t, "publish_at").or_else(|| time_field(t, "date")))
            .filter(|t| *t > after)
            .min()
    }

    /// Apply `op`: the model moves on (including `now`, one hour per step at least),
    /// and the file changes to make and a line saying what they are come back.
    fn apply(&mut self, op: &Op) -> (Vec<Change>, String) {
        let before = self.now;
        self.now = before + Duration::hours(1);
        let mut changes = Vec::new();
        let what = match op {
            Op::Add(add) => self.add(add, before, &mut changes),
            Op::Edit { file, change } => {
                if self.files.is_empty() {
                    "edit: no statement left".to_string()
                } else {
                    let path = self.files.keys().nth(usize::from(*file) % self.files.len());
                    let path = path.expect("index").clone();
                    let text = self.files[&path].clone();
                    let (_, lang) = id_and_lang(&path);
                    let (text, what) = match change {
                        Edit::Title(w) => {
                            let t = words(&lang, w);
                            (set_field(&text, "title", Some(&quoted(&t))), "title")
                        }
                        Edit::Body(w) => (format!("{text}\n{}.\n", words(&lang, w)), "body"),
                        Edit::Topics(t) => (
                            set_field(&text, "topics", topic_list(t).as_deref()),
                            "topics",
                        ),
                        Edit::Summary(w) => {
                            let s = words(&lang, w);
                            (set_field(&text, "summary", Some(&quoted(&s))), "summary")
                        }
                        Edit::Updated(days) => {
                            let last = time_field(&text, "updated")
                                .or_else(|| time_field(&text, "date"))
                                .expect("date");
                            let u = stamp(last + Duration::days(i64::from(*days)));
                            (set_field(&text, "updated", Some(&u)), "updated")
                        }
                        Edit::Draft(on) => (
                            set_field(&text, "draft", on.then_some("true")),
                            if *on { "draft = true" } else { "draft removed" },
                        ),
                        Edit::Slug(w) => {
                            // The stem keeps it unique in its year and language.
                            let stem = path
                                .rsplit('/')
                                .next()
                                .and_then(|n| n.split('.').next())
                                .expect("file stem");
                            let slug = w.map(|w| {
                                quoted(&format!("{stem}-{}", EN[usize::from(w) % EN.len()]))
                            });
                            (
                                set_field(&text, "slug", slug.as_deref()),
                                if w.is_some() { "slug" } else { "slug removed" },
                            )
                        }
                    };
                    self.files.insert(path.clone(), text.clone());
                    changes.push(Change::Write(format!("content/{path}"), text));
                    format!("edit {what} of {path}")
                }
            }
            Op::Delete { file } => {
                if self.files.is_empty() {
                    "delete: no statement left".to_string()
                } else {
                    let path = self.files.keys().nth(usize::from(*file) % self.files.len());
                    let path = path.expect("index").clone();
                    self.files.remove(&path);
                    changes.push(Change::Remove(format!("content/{path}")));
                    format!("delete {path}")
                }
            }
            Op::Lift => match self.next_embargo(before) {
                Some(at) if at > self.now => {
                    self.now = at;
                    format!("lift the embargo of {}", stamp(at))
                }
                Some(at) => format!("lift: the embargo of {} lifts within the hour", stamp(at)),
                None => "lift: no embargo pending".to_string(),
            },
            Op::Template {
                which,
                word,
                remove,
            } => {
                let o = &OVERRIDES[which % OVERRIDES.len()];
                let path = format!("content/templates/{}", o.name);
                if *remove {
                    if self.overrides.remove(o.name).is_some() {
                        changes.push(Change::Remove(path));
                        format!("remove the override {}", o.name)
                    } else {
                        format!("remove the override {}: there is none", o.name)
                    }
                } else {
                    let w = EN[usize::from(*word) % EN.len()];
                    let builtin = fs::read_to_string(repo().join(o.builtin)).expect("built-in");
                    let text = if o.name == "style.css" {
                        let grey = 0x20 + usize::from(*word) % 0x40;
                        format!("{builtin}\n.note {{ color: #{grey:02x}{grey:02x}{grey:02x}; }}\n")
                    } else if o.name.ends_with(".txt") {
                        format!("{builtin}\n{w}\n")
                    } else if o.after.is_empty() {
                        format!("<p class=\"note\">{w}</p>\n{builtin}")
                    } else {
                        assert!(
                            builtin.contains(o.after),
                            "{} no longer has {:?}: update OVERRIDES",
                            o.builtin,
                            o.after
                        );
                        builtin.replacen(
                            o.after,
                            &format!("{}\n<p class=\"note\">{w}</p>", o.after),
                            1,
                        )
                    };
                    self.overrides.insert(o.name.to_string(), text.clone());
                    changes.push(Change::Write(path, text));
                    format!("override {} ({w})", o.name)
                }
            }
            Op::Config(setting) => {
                let s = &mut self.settings;
                let word = |w: &Option<u8>| w.map(|w| EN[usize::from(w) % EN.len()].to_string());
                let what = match setting {
                    Setting::Title(w) => {
                        s.title = word(w);
                        format!("title = {:?}", s.title)
                    }
                    Setting::PerPage(n) => {
                        s.per_page = *n;
                        format!("[site] per_page = {n:?}")
                    }
                    Setting::ShortName(w) => {
                        s.short_name = word(w);
                        format!("[organization] short_name = {:?}", s.short_name)
                    }
                    Setting::TopicName(w) => {
                        s.topic_name = word(w);
                        format!("[site.topic_names.climate] en = {:?}", s.topic_name)
                    }
                    Setting::FeedOff(off) => {
                        s.feed_off = *off;
                        format!("[feed] enabled = {}", !off)
                    }
                    Setting::PdfOff(off) => {
                        s.pdf_off = *off;
                        format!("[pdf] enabled = {}", !off)
                    }
                    Setting::BaseUrl(w) => {
                        s.base_path = word(w);
                        format!("base_url under {:?}", s.base_path)
                    }
                };
                changes.push(Change::Write(
                    "content/herald.toml".into(),
                    self.settings.herald_toml(&self.sample_toml),
                ));
                format!("config: {what}")
            }
        };
        (changes, format!("{what}; publish at {}", stamp(self.now)))
    }

    fn add(&mut self, add: &Add, at: DateTime<FixedOffset>, changes: &mut Vec<Change>) -> String {
        self.added += 1;
        let mut lang = LANGS[add.lang % LANGS.len()];
        // A translation: an existing statement, in a language it lacks.
        let mut original = None;
        if let Some(pick) = add.translation_of {
            let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for path in self.files.keys() {
                let (id, l) = id_and_lang(path);
                ids.entry(id).or_default().push(l);
            }
            if !ids.is_empty() {
                let (id, langs) = ids
                    .iter()
                    .nth(usize::from(pick) % ids.len())
                    .expect("index");
                if let Some(missing) = std::iter::once(lang)
                    .chain(LANGS)
                    .find(|l| !langs.iter().any(|have| have == l))
                {
                    lang = missing;
                    let some = self
                        .files
                        .iter()
                        .find(|(p, _)| id_and_lang(p).0 == *id)
                        .expect("a version");
                    original = Some((id.clone(), field(some.1, "date").expect("date").to_string()));
                }
            }
        }
        let publish_at = add
            .embargo
            .map(|m| stamp(at + Duration::minutes(i64::from(m))));
        let translation = original.is_some();
        let (id, date) = match original {
            Some(o) => o,
            None => {
                let date = match &publish_at {
                    Some(p) => p.clone(),
                    None => stamp(astana(at - Duration::minutes(i64::from(add.age)))),
                };
                let slug = format!(
                    "n{}-{}",
                    self.added,
                    EN[add.title.first().map_or(0, |&w| usize::from(w)) % EN.len()]
                );
                (format!("{}/{slug}", &date[..4]), date)
            }
        };
        let mut text = format!(
            "+++\ntitle = {}\ndate = {date}\n",
            quoted(&words(lang, &add.title))
        );
        if let Some(p) = &publish_at {
            let _ = writeln!(text, "publish_at = {p}");
        }
        if let Some(s) = &add.summary {
            let _ = writeln!(text, "summary = {}", quoted(&words(lang, s)));
        }
        if let Some(t) = topic_list(&add.topics) {
            let _ = writeln!(text, "topics = {t}");
        }
        text.push_str("+++\n");
        for p in &add.body {
            let _ = write!(text, "{}.\n\n", words(lang, p));
        }
        let path = format!("statements/{id}.{lang}.md");
        let what = format!(
            "add {}{path}{}",
            if translation { "translation " } else { "" },
            publish_at.map_or(String::new(), |p| format!(" (embargo until {p})"))
        );
        self.files.insert(path.clone(), text.clone());
        changes.push(Change::Write(format!("content/{path}"), text));
        what
    }
}

fn make(root: &Path, changes: &[Change]) {
    for c in changes {
        match c {
            Change::Write(path, text) => {
                let path = root.join(path);
                fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                fs::write(&path, text).expect("write");
            }
            Change::Remove(path) => {
                let path = root.join(path);
                fs::remove_file(&path).expect("remove");
                // An empty `templates/mail/` would still count as an input.
                let parent = path.parent().expect("parent");
                if parent.ends_with("templates/mail")
                    && fs::read_dir(parent).expect("dir").next().is_none()
                {
                    fs::remove_dir(parent).expect("rmdir");
                }
            }
        }
    }
}

/// The scratch folder: the projects, and the one path every herald run uses.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn project(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Run herald on project `name`, moved to `live` for the run.
    fn herald(&self, name: &str, args: &[&str]) -> Output {
        let home = self.project(name);
        let live = self.project("live");
        fs::rename(&home, &live).expect("move in");
        let out = herald(BIN, &live, args);
        fs::rename(&live, &home).expect("move out");
        out
    }

    fn publish(&self, name: &str, now: DateTime<FixedOffset>) -> Result<String, String> {
        let out = self.herald(name, &["publish", "--now", &stamp(now)]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "herald publish in {name} failed ({:?}):\n{stdout}\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

/// Every file below `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    if !dir.exists() {
        return files;
    }
    for e in walkdir::WalkDir::new(dir) {
        let e = e.expect("walk");
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(dir).expect("prefix");
            files.insert(
                rel.to_string_lossy().into_owned(),
                fs::read(e.path()).expect("read"),
            );
        }
    }
    files
}

/// A few characters of `bytes` around `at`, for a message (never the whole file).
fn excerpt(bytes: &[u8], at: usize) -> String {
    let from = at.saturating_sub(30);
    let to = (at + 30).min(bytes.len());
    format!("{:?}", String::from_utf8_lossy(&bytes[from..to]))
}

/// The first path (in order) at which two trees differ, and how; `None` if equal.
fn first_difference(
    left: &BTreeMap<String, Vec<u8>>,
    right: &BTreeMap<String, Vec<u8>>,
    names: (&str, &str),
) -> Option<String> {
    let mut paths: Vec<&String> = left.keys().chain(right.keys()).collect();
    paths.sort();
    paths.dedup();
    let differ = paths
        .iter()
        .filter(|p| left.get(**p) != right.get(**p))
        .count();
    let path = paths.into_iter().find(|p| left.get(*p) != right.get(*p))?;
    let how = match (left.get(path), right.get(path)) {
        (Some(_), None) => format!("only in {}", names.0),
        (None, Some(_)) => format!("only in {}", names.1),
        (Some(l), Some(r)) => {
            let at = l
                .iter()
                .zip(r.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(l.len().min(r.len()));
            format!(
                "{} bytes in {}, {} in {}; first difference at byte {at}: {} vs {}",
                l.len(),
                names.0,
                r.len(),
                names.1,
                excerpt(l, at),
                excerpt(r, at)
            )
        }
        (None, None) => unreachable!("a path of one of the trees"),
    };
    Some(format!("{path}: {how} ({differ} file(s) differ)"))
}

/// The ledger, table by table, each row as text, rows sorted. Every table of
/// `.herald/herald.db` is read (whatever a later schema adds is compared too),
/// with every column, except:
/// - `runs`, the run log, left out here and compared by [`runs`]: its `started_at`
///   is the wall clock, and B writes a row at every step (its `public/` is gone, so
///   there is always something to write) where A writes one only when it writes files;
/// - the `journal_generation` row of `mail_meta`: how many times a delivery run
///   applied the mail journal, a count of runs too (A's settled runs skip delivery,
///   B's never do), not of anything sent or queued;
/// - `state`'s `fingerprint` and the `inputs` of its `settled` summary: a digest of
///   the input files as the file system holds them (path, and in later versions
///   size, inode, modification and change times), so that a run can tell nothing
///   changed without reading them. Two folders never share it; whether it notices
///   every change is what the rest of this test checks.
///
/// Everything else is a function of the content, the `--now`s and the history:
/// `publications` (each version per channel, `published_at` = the `--now` that
/// published it), `entries` (feed ids and first publication), `outputs` (every file
/// of `public/`, its digest and, where recorded, the render key it was made from),
/// `state` (the rest of the settled summary: the window in which the due set holds,
/// live count, embargoes; schedule slots; whatever else a run keeps there, such as
/// the content digests that passed the content rules), and the mail tables
/// (`mail_subscribers`, `mail_events`: one
/// subscriber added once in A, then copied into B with its wall-clock times;
/// `mail_bulletins`: queued, sent at the `--now`; `mail_meta`, `mail_inbound`,
/// `sqlite_sequence`).
fn ledger(root: &Path, tables: Tables) -> BTreeMap<String, Vec<String>> {
    let conn = rusqlite::Connection::open(root.join(".herald/herald.db")).expect("ledger");
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("tables");
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("tables");
    let mut dump = BTreeMap::new();
    for table in names.into_iter().filter(|t| tables.compares(t)) {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{table}\""))
            .expect("select");
        let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let rows: Vec<Vec<rusqlite::types::Value>> = stmt
            .query_map([], |r| (0..columns.len()).map(|i| r.get(i)).collect())
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        let mut rows: Vec<String> = rows
            .into_iter()
            .filter_map(|row| compared_row(&table, row))
            .map(|row| {
                let mut text = String::new();
                for (c, v) in columns.iter().zip(row) {
                    let _ = write!(text, "{c}={v:?}; ");
                }
                text
            })
            .collect();
        rows.sort();
        dump.insert(table, rows);
    }
    dump
}

/// A row of `table` as compared: `None` for the rows left out (see [`ledger`]),
/// the row without its file-system fingerprint for `state`'s `settled`.
fn compared_row(
    table: &str,
    mut row: Vec<rusqlite::types::Value>,
) -> Option<Vec<rusqlite::types::Value>> {
    use rusqlite::types::Value::Text;
    let key = match row.first() {
        Some(Text(k)) => k.clone(),
        _ => return Some(row),
    };
    match (table, key.as_str()) {
        ("mail_meta", "journal_generation") | ("state", "fingerprint") => None,
        ("state", "settled") => {
            if let Some(Text(json)) = row.get_mut(1)
                && let Ok(serde_json::Value::Object(mut settled)) = serde_json::from_str(json)
            {
                settled.remove("inputs");
                *json = serde_json::Value::Object(settled).to_string();
            }
            Some(row)
        }
        _ => Some(row),
    }
}

/// Which tables [`ledger`] reads.
#[derive(Clone, Copy)]
enum Tables {
    /// All but the run log.
    Durable,
    /// `outputs` alone: the manifest of `public/`.
    Outputs,
}

impl Tables {
    fn compares(self, table: &str) -> bool {
        match self {
            Tables::Durable => table != "runs",
            Tables::Outputs => table == "outputs",
        }
    }
}

/// The first table (and row) at which two ledger dumps differ; `None` if equal.
fn ledger_difference(
    left: &BTreeMap<String, Vec<String>>,
    right: &BTreeMap<String, Vec<String>>,
    names: (&str, &str),
) -> Option<String> {
    let mut tables: Vec<&String> = left.keys().chain(right.keys()).collect();
    tables.sort();
    tables.dedup();
    let table = tables.into_iter().find(|t| left.get(*t) != right.get(*t))?;
    let (l, r) = (
        left.get(table).cloned().unwrap_or_default(),
        right.get(table).cloned().unwrap_or_default(),
    );
    let only = |a: &[String], b: &[String]| a.iter().find(|row| !b.contains(row)).cloned();
    Some(match (only(&l, &r), only(&r, &l)) {
        (Some(row), _) => format!(
            "table {table}: {} rows in {}, {} in {}; only in {}: {row}",
            l.len(),
            names.0,
            r.len(),
            names.1,
            names.0
        ),
        (None, Some(row)) => format!(
            "table {table}: {} rows in {}, {} in {}; only in {}: {row}",
            l.len(),
            names.0,
            r.len(),
            names.1,
            names.1
        ),
        (None, None) => format!("table {table}: the same rows, counted differently"),
    })
}

/// The run log without the wall clock: (`now`, `summary`) of each row (none
/// before the first publish has made the table).
fn runs(root: &Path) -> Vec<(String, String)> {
    let path = root.join(".herald/herald.db");
    if !path.exists() {
        return Vec::new();
    }
    let conn = rusqlite::Connection::open(path).expect("ledger");
    let made: bool = conn
        .query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'runs'",
            [],
            |r| r.get(0),
        )
        .expect("schema");
    if !made {
        return Vec::new();
    }
    let mut stmt = conn
        .prepare("SELECT now, summary FROM runs ORDER BY id")
        .expect("runs");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("runs")
        .collect::<Result<_, _>>()
        .expect("runs")
}

/// What a sequence did, for the test's own report and the fixed sequence's checks.
#[derive(Debug, Default)]
struct Tally {
    /// Steps by kind ([`kind`]), and the steps at which A reported nothing new.
    kinds: BTreeMap<&'static str, usize>,
    /// Files at the end in A's `public/` (and of them PDFs) and outbox.
    public: usize,
    pdfs: usize,
    outbox: usize,
}

/// The kind of a step, from its line in the log.
fn kind(what: &str) -> &'static str {
    let starts = |p: &str| what.starts_with(p);
    if starts("add translation ") {
        "translation added"
    } else if starts("add ") && what.contains("(embargo until") {
        "added under embargo"
    } else if starts("add ") {
        "added"
    } else if starts("edit ") {
        "edited"
    } else if starts("delete ") {
        "deleted"
    } else if starts("lift the embargo") {
        "embargo lifted"
    } else if starts("override ") {
        "override written"
    } else if starts("remove the override ") && !what.contains("there is none") {
        "override removed"
    } else if starts("config:") {
        "configuration changed"
    } else {
        "nothing to do but publish"
    }
}

fn fail(log: &[String], step: usize, what: &str) -> TestCaseError {
    let mut msg = format!("after step {step}: {what}\nsteps:\n");
    for (i, l) in log.iter().enumerate() {
        let _ = writeln!(msg, "  {i}. {l}");
    }
    TestCaseError::fail(msg)
}

/// A after the step against B, rebuilt from scratch at the same `now`.
fn compare_steps(
    lab: &Lab,
    log: &[String],
    step: usize,
    a_out: &str,
    runs_before: (usize, usize),
) -> Result<(), TestCaseError> {
    let (a, b) = (lab.project("a"), lab.project("b"));
    let names = ("A (step by step)", "B (from scratch)");
    if let Some(d) = first_difference(&tree(&a.join("public")), &tree(&b.join("public")), names) {
        return Err(fail(log, step, &format!("public/ differs: {d}")));
    }
    if let Some(d) = first_difference(&tree(&a.join("outbox")), &tree(&b.join("outbox")), names) {
        return Err(fail(log, step, &format!("outbox/ differs: {d}")));
    }
    if let Some(d) = ledger_difference(
        &ledger(&a, Tables::Durable),
        &ledger(&b, Tables::Durable),
        names,
    ) {
        return Err(fail(log, step, &format!("the ledger differs: {d}")));
    }
    // The run log: a step at which A wrote files has the same row as B's (the
    // `--now` and the counts of new versions per channel); one at which A wrote
    // nothing must have said so.
    let (ra, rb) = (runs(&a), runs(&b));
    let (new_a, new_b) = (&ra[runs_before.0..], &rb[runs_before.1..]);
    if new_a.is_empty() {
        if !a_out.contains("nothing new") {
            return Err(fail(
                log,
                step,
                &format!("A recorded no run, yet did not report \"nothing new\":\n{a_out}"),
            ));
        }
    } else if new_a != new_b {
        return Err(fail(
            log,
            step,
            &format!("runs differ: A recorded {new_a:?}, B {new_b:?}"),
        ));
    }
    Ok(())
}

/// The whole property for one sequence of operations.
fn sequence(ops: &[Op]) -> Result<Tally, TestCaseError> {
    let lab = Lab {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let (a, b) = (lab.project("a"), lab.project("b"));
    copy_dir(&repo().join("content"), &a.join("content"));
    // One confirmed subscriber and one secret, then B starts as a copy of A: the
    // subscriber's token key and consent time and the link tokens are the same.
    fs::rename(&a, lab.project("live")).expect("move in");
    add_desk_subscriber(BIN, &lab.project("live"));
    fs::rename(lab.project("live"), &a).expect("move out");
    fs::create_dir_all(a.join(".herald")).expect("mkdir");
    let secret = a.join(".herald/secret");
    if !secret.exists() {
        fs::write(&secret, SECRET).expect("secret");
    }
    copy_dir(&a, &b);

    let mut model = Model::new(&a.join("content"));
    let mut log = vec![format!(
        "the sample content; publish at {}",
        stamp(model.now)
    )];
    let mut tally = Tally::default();
    for step in 0..=ops.len() {
        if step > 0 {
            let before = model.now;
            let (changes, what) = model.apply(&ops[step - 1]);
            if model.next_embargo(before).is_some_and(|t| t <= model.now) {
                *tally.kinds.entry("an embargo came due").or_default() += 1;
            }
            make(&a, &changes);
            make(&b, &changes);
            *tally.kinds.entry(kind(&what)).or_default() += 1;
            log.push(what);
        }
        let runs_before = (runs(&a).len(), runs(&b).len());
        let a_out = lab
            .publish("a", model.now)
            .map_err(|e| fail(&log, step, &e))?;
        if a_out.contains("nothing new") {
            *tally.kinds.entry("A had nothing new").or_default() += 1;
        }
        if b.join("public").exists() {
            fs::remove_dir_all(b.join("public")).expect("remove B's public/");
        }
        lab.publish("b", model.now)
            .map_err(|e| fail(&log, step, &e))?;
        compare_steps(&lab, &log, step, &a_out, runs_before)?;
    }

    // C: the final content alone, published once. Its ledger and outbox differ from
    // A's by design (one run instead of many: `published_at` of each version, the
    // run log, what was mailed when); the files are a function of the content and
    // `now`, so `public/` and the manifest of it (`outputs`) must be A's.
    let c = lab.project("c");
    copy_dir(&a.join("content"), &c.join("content"));
    let step = ops.len();
    lab.publish("c", model.now)
        .map_err(|e| fail(&log, step, &e))?;
    let names = ("A (step by step)", "C (cold)");
    if let Some(d) = first_difference(&tree(&a.join("public")), &tree(&c.join("public")), names) {
        return Err(fail(
            &log,
            step,
            &format!("cold publish: public/ differs: {d}"),
        ));
    }
    let outputs = |root: &Path| ledger(root, Tables::Outputs);
    if let Some(d) = ledger_difference(&outputs(&a), &outputs(&c), names) {
        return Err(fail(
            &log,
            step,
            &format!("cold publish: the ledger differs: {d}"),
        ));
    }
    let public = tree(&a.join("public"));
    tally.public = public.len();
    tally.pdfs = public.keys().filter(|p| p.ends_with(".pdf")).count();
    tally.outbox = tree(&a.join("outbox")).len();
    Ok(tally)
}

fn picks(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), len)
}

fn op() -> impl Strategy<Value = Op> {
    let add = (
        0..LANGS.len(),
        picks(2..=5),
        prop::collection::vec(picks(4..=12), 1..=3),
        prop::collection::vec(0..TOPICS.len(), 0..=2),
        prop::option::of(picks(3..=8)),
        0u32..=60 * 24 * 30,
        // Half of the embargoes lift within a few steps (an hour each), half wait
        // for a `Lift`.
        prop::option::weighted(0.5, prop_oneof![30u32..=300, 301u32..=60 * 24 * 20]),
        prop::option::weighted(0.3, any::<u16>()),
    )
        .prop_map(
            |(lang, title, body, topics, summary, age, embargo, translation_of)| {
                Op::Add(Add {
                    lang,
                    title,
                    body,
                    topics,
                    summary,
                    age,
                    embargo,
                    translation_of,
                })
            },
        );
    let edit = prop_oneof![
        picks(2..=5).prop_map(Edit::Title),
        picks(4..=12).prop_map(Edit::Body),
        prop::collection::vec(0..TOPICS.len(), 0..=3).prop_map(Edit::Topics),
        picks(3..=8).prop_map(Edit::Summary),
        (1u32..=30).prop_map(Edit::Updated),
        any::<bool>().prop_map(Edit::Draft),
        prop::option::of(any::<u8>()).prop_map(Edit::Slug),
    ];
    let word = prop::option::of(any::<u8>());
    let setting = prop_oneof![
        word.clone().prop_map(Setting::Title),
        prop::option::of(1usize..=3).prop_map(Setting::PerPage),
        word.clone().prop_map(Setting::ShortName),
        word.clone().prop_map(Setting::BaseUrl),
        word.prop_map(Setting::TopicName),
        any::<bool>().prop_map(Setting::FeedOff),
        any::<bool>().prop_map(Setting::PdfOff),
    ];
    prop_oneof![
        3 => add,
        3 => (any::<u16>(), edit).prop_map(|(file, change)| Op::Edit { file, change }),
        1 => any::<u16>().prop_map(|file| Op::Delete { file }),
        2 => Just(Op::Lift),
        2 => (0..OVERRIDES.len(), any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(which, word, remove)| Op::Template { which, word, remove }),
        2 => setting.prop_map(Op::Config),
    ]
}

fn cases() -> u32 {
    std::env::var("HERALD_INCREMENTAL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

#[test]
fn step_by_step_publishing_equals_publishing_from_scratch() {
    // No seed file (a runner built by hand has no source path to save it beside):
    // proptest prints the shrunk operations, to be added to `fixed_sequence` below.
    // Each case runs about twenty publishes, so shrinking is kept short.
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        cases: cases(),
        max_shrink_iters: 24,
        ..Config::default()
    });
    let seen = std::sync::Mutex::new(BTreeMap::<&str, usize>::new());
    let result = runner.run(&prop::collection::vec(op(), 3..=6), |ops| {
        let tally = sequence(&ops)?;
        let mut seen = seen.lock().expect("tally");
        for (k, n) in tally.kinds {
            *seen.entry(k).or_default() += n;
        }
        Ok(())
    });
    eprintln!(
        "incremental: steps by kind {:?}",
        seen.lock().expect("tally")
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Every kind of operation at least once, whatever the random cases draw.
#[test]
fn every_kind_of_change_in_one_sequence() {
    let statement = |lang: usize, embargo: Option<u32>| Add {
        lang,
        title: vec![1, 2, 3],
        body: vec![vec![4, 5, 6, 7, 8], vec![9, 10, 11, 0]],
        topics: vec![4, 1],
        summary: None,
        age: 90,
        embargo,
        translation_of: None,
    };
    let ops = vec![
        Op::Add(statement(2, Some(24 * 60))),
        // The fifth statement id by path, 2040/n1-…: the one just added, in English.
        Op::Add(Add {
            translation_of: Some(4),
            ..statement(0, None)
        }),
        Op::Config(Setting::PerPage(Some(2))),
        Op::Config(Setting::FeedOff(true)),
        Op::Config(Setting::PdfOff(true)),
        Op::Template {
            which: 0,
            word: 3,
            remove: false,
        },
        Op::Lift,
        Op::Config(Setting::FeedOff(false)),
        Op::Config(Setting::PdfOff(false)),
        // Every page and feed entry links elsewhere: the feeds make all their
        // HTML again (its key holds the base URL).
        Op::Config(Setting::BaseUrl(Some(5))),
        Op::Edit {
            file: 0,
            change: Edit::Updated(3),
        },
        // A body edit alone: the feeds take every other entry's HTML from the
        // JSON documents they replace, never this one's.
        Op::Edit {
            file: 3,
            change: Edit::Body(vec![2, 7, 5]),
        },
        Op::Edit {
            file: 1,
            change: Edit::Slug(Some(2)),
        },
        Op::Edit {
            file: 2,
            change: Edit::Draft(true),
        },
        Op::Template {
            which: 0,
            word: 0,
            remove: true,
        },
        Op::Edit {
            file: 2,
            change: Edit::Draft(false),
        },
        Op::Delete { file: 0 },
    ];
    let tally = sequence(&ops).unwrap_or_else(|e| panic!("{e}"));
    // The comparisons had something to compare: bulletins, PDFs, and every kind of step.
    assert!(
        tally.outbox > 0,
        "no bulletin reached the outbox: {tally:?}"
    );
    assert!(tally.pdfs > 0, "no PDF: {tally:?}");
    for k in [
        "added under embargo",
        "translation added",
        "override removed",
        "override written",
        "embargo lifted",
        "deleted",
    ] {
        assert_eq!(tally.kinds.get(k), Some(&1), "{k}: {tally:?}");
    }
    // A correction, a body, a new slug, and a draft made and unmade.
    assert_eq!(tally.kinds.get("edited"), Some(&5), "{tally:?}");
    // per_page, the feeds and the PDFs switched off and on again, base_url.
    assert_eq!(
        tally.kinds.get("configuration changed"),
        Some(&6),
        "{tally:?}"
    );
}

#[test]
fn differences_name_the_first_differing_file_and_row() {
    let tree = |files: &[(&str, &[u8])]| -> BTreeMap<String, Vec<u8>> {
        files
            .iter()
            .map(|(p, b)| (p.to_string(), b.to_vec()))
            .collect()
    };
    let names = ("A", "B");
    let a = tree(&[("a.html", b"same"), ("b.xml", b"<feed/>"), ("c.css", b"x")]);
    assert_eq!(first_difference(&a, &a.clone(), names), None);
    let b = tree(&[("a.html", b"same"), ("b.xml", b"<feed/>!"), ("c.css", b"y")]);
    let d = first_difference(&a, &b, names).expect("differs");
    assert!(
        d.starts_with("b.xml: 7 bytes in A, 8 in B; first difference at byte 7"),
        "{d}"
    );
    assert!(d.contains("(2 file(s) differ)"), "{d}");
    let c = tree(&[("a.html", b"same"), ("b.xml", b"<feed/>")]);
    let d = first_difference(&a, &c, names).expect("differs");
    assert!(d.starts_with("c.css: only in A"), "{d}");

    let rows = |t: &str, r: &[&str]| -> BTreeMap<String, Vec<String>> {
        [(t.to_string(), r.iter().map(|s| s.to_string()).collect())].into()
    };
    let l = rows("outputs", &["path=a; digest=1; "]);
    assert_eq!(ledger_difference(&l, &l.clone(), names), None);
    let r = rows("outputs", &["path=a; digest=2; "]);
    let d = ledger_difference(&l, &r, names).expect("differs");
    assert!(
        d.contains("table outputs") && d.contains("only in A: path=a; digest=1"),
        "{d}"
    );
}
