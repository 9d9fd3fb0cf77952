//! The publish pipeline: load and validate, plan what is due at `now`, run the
//! channels in order (PDF, feeds, site, mail), write atomically, record in the ledger.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use herald_content::{Corpus, Statement};
use xxhash_rust::xxh3::Xxh3;

use crate::channels::{self, Channel};
use crate::dirs::DirStamps;
use crate::ledger::Output;
use crate::ledger::{Entry, Ledger, Record};
use crate::output::{AtomicSink, Tally, remove_stale};
use crate::{Error, Paths};

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub root: PathBuf,
    /// The instant to publish as of: embargoes before it have lifted.
    pub now: DateTime<Utc>,
    /// Plan and report, write nothing, record nothing, send nothing.
    pub dry_run: bool,
    /// Wall-clock start, for the run log only (never for what is due).
    pub started_at: DateTime<Utc>,
    /// Send bulletins (false: publish the files only; mail goes out on a later run).
    pub mail: bool,
    /// Render every file, keeping none from the last run by its render key.
    pub rebuild: bool,
    /// Set by a signal: while rendering, stop and publish nothing of this run; while
    /// sending, finish the message in flight, record it, stop.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// What one channel did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelReport {
    pub channel: &'static str,
    /// Statement versions newly published on this channel.
    pub new: usize,
    /// Statement versions live on this channel after the run.
    pub live: usize,
    pub files_written: usize,
    pub files_unchanged: usize,
    /// Extra detail (mail: sent/failed/ambiguous).
    pub note: String,
    /// Mail: bulletins refused for good in this run (exit code 5).
    pub failed: usize,
    /// Mail: bulletins the server may or may not have (exit code 5).
    pub ambiguous: usize,
    /// Time spent rendering and writing (0 when the channel had nothing to do).
    pub elapsed_ms: u128,
}

#[derive(Debug, Clone)]
pub struct Embargoed {
    pub id: String,
    pub lang: String,
    pub publish_at: DateTime<chrono::FixedOffset>,
}

#[derive(Debug, Clone)]
pub struct PublishReport {
    pub now: DateTime<Utc>,
    pub dry_run: bool,
    /// True when nothing was due that the ledger had not recorded and no input changed.
    pub unchanged: bool,
    /// True when the last run's summary answered: no input had changed, nothing was read.
    pub settled: bool,
    pub channels: Vec<ChannelReport>,
    /// (id, lang) of statement versions published for the first time on any channel.
    pub new_statements: Vec<(String, String)>,
    pub embargoed: Vec<Embargoed>,
    pub removed_files: usize,
    pub elapsed_ms: u128,
}

/// (id, lang) -> permanent entry.
type Entries = herald_content::fast::HashMap<(String, String), Entry>;

/// The permanent ids of every due statement: from the ledger (`known`, kept
/// whole: an id once minted never changes, so extra ones harm no lookup), or
/// minted now.
fn entries_for(
    settings: &channels::Settings,
    due: &[&Statement],
    mut known: Entries,
) -> (Entries, Vec<(String, String, Entry)>) {
    let mut minted = Vec::new();
    for s in due {
        let key = (s.id.clone(), s.lang.clone());
        if known.contains_key(&key) {
            continue;
        }
        let first = s.meta.publish_at.with_timezone(&Utc);
        let e = Entry {
            first_published: first,
            tag_uri: channels::tag_uri(settings, first, &s.id, &s.lang),
        };
        minted.push((s.id.clone(), s.lang.clone(), e.clone()));
        known.insert(key, e);
    }
    (known, minted)
}

/// The load cache is written again once more than this many files (or a tenth of
/// them) were read, or this many left, since it was written.
const REWRITE_CACHE: usize = 256;

/// Ledger state key of [`Settled`].
const SETTLED: &str = "settled";

/// Ledger state key of the coverage keys of statements that passed the content
/// rules (see [`channels::content_rules`]): unchanged ones are not scanned again.
const PASSED: &str = "content-rules-passed";

/// What a completed publish leaves behind so that the next one, when no input changed
/// and `now` crosses no embargo, can say so without parsing a single statement.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Settled {
    /// [`input_digest`] as read before the run loaded anything.
    inputs: String,
    /// The due set is the same for every `now` in `[from, until)`: the latest lifted
    /// embargo and the next one to lift.
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    live: usize,
    channels: Vec<String>,
    embargoed: Vec<(String, String, DateTime<chrono::FixedOffset>)>,
    /// The mail channel ran: every due version is queued (or waits for the digest).
    mail: bool,
}

/// One digest of what a publish reads, from file metadata alone (every file is
/// read once, by the loader): herald's version, and the path, size, inode and
/// modification and change times of herald.toml, the template overrides and every
/// statement file. Any write changes the change time, so an edit is never missed;
/// a file merely touched costs one planned run, in which render keys keep every
/// output. XXH3-128: it detects change, nobody forges it. `None` when a file
/// cannot be read: then nothing is settled, and loading reports the file.
fn input_digest(paths: &Paths) -> Result<Inputs, Error> {
    let walk = herald_content::statement_walk(&paths.root)?;
    let mut files = walk.files.clone();
    files.push(paths.content.join("herald.toml"));
    if let Ok(walk) = std::fs::read_dir(&paths.templates) {
        let mut names: Vec<PathBuf> = walk.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        files.extend(names);
    }
    // A chmod changes the change time too: a file made unreadable is never settled
    // on; the loader reports it.
    let stamps = herald_content::cache::stamps_of(&files);
    let mut h = Xxh3::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    let mut complete = true;
    for (p, st) in files.iter().zip(&stamps) {
        h.update(p.to_string_lossy().as_bytes());
        h.update(&[0]);
        match st {
            Some(st) => h.update(&st.to_bytes()),
            None => complete = false,
        }
    }
    Ok(Inputs {
        walk,
        digest: complete.then(|| format!("{:032x}", h.digest128())),
        stamps: files
            .into_iter()
            .zip(stamps)
            .filter_map(|(p, st)| Some((p.into_os_string(), st?)))
            .collect(),
    })
}

/// What [`input_digest`] found.
struct Inputs {
    /// The statement files, for the loader.
    walk: herald_content::files::Walk,
    /// `None` when a file could not be looked at.
    digest: Option<String>,
    /// Each input file's stamp, by path; the loader takes these.
    stamps: herald_content::Stamps,
}

/// The report of a publish that has nothing to do, from the last run's [`Settled`]
/// alone; `None` when anything may have changed (then the full path decides).
fn settled_report(
    opts: &PublishOptions,
    paths: &Paths,
    inputs: &str,
    history: &HistoryReader,
    t0: Instant,
) -> Result<Option<PublishReport>, Error> {
    if !paths.ledger.exists() {
        return Ok(None);
    }
    let ledger = Ledger::open(&paths.ledger)?;
    let Some(settled) = ledger
        .get_state(SETTLED)?
        .and_then(|v| serde_json::from_str::<Settled>(&v).ok())
    else {
        return Ok(None);
    };
    let in_window =
        settled.from.is_none_or(|f| f <= opts.now) && settled.until.is_none_or(|u| opts.now < u);
    if settled.inputs != inputs || !in_window || (opts.mail && !settled.mail) {
        return Ok(None);
    }
    if !history.outputs_intact() {
        return Ok(None);
    }
    let mut channels: Vec<ChannelReport> = settled
        .channels
        .iter()
        .filter_map(|name| Channel::ALL.iter().find(|c| c.name() == name))
        .map(|ch| ChannelReport {
            channel: ch.name(),
            live: settled.live,
            ..Default::default()
        })
        .collect();
    if opts.mail {
        let store =
            herald_mail::MailStore::open(&paths.ledger).map_err(|e| Error::channel("mail", e))?;
        let work = store
            .has_work(opts.now)
            .map_err(|e| Error::channel("mail", e))?;
        if work {
            return Ok(None);
        }
        channels.push(ChannelReport {
            channel: Channel::Mail.name(),
            note: "0 bulletin(s) queued, 0 sent".into(),
            ..Default::default()
        });
    }
    Ok(Some(PublishReport {
        now: opts.now,
        dry_run: opts.dry_run,
        unchanged: true,
        settled: true,
        channels,
        new_statements: Vec::new(),
        embargoed: settled
            .embargoed
            .into_iter()
            .map(|(id, lang, publish_at)| Embargoed {
                id,
                lang,
                publish_at,
            })
            .collect(),
        removed_files: 0,
        elapsed_ms: t0.elapsed().as_millis(),
    }))
}

/// The ledger's publication rows, as [`crate::ledger::publication_key`]s.
type Recorded = herald_content::fast::HashSet<u128>;

/// What the ledger says about earlier runs, as the plan needs it.
#[derive(Debug, Default)]
pub struct History {
    /// Every (statement, lang, channel, version) published before.
    pub recorded: Recorded,
    /// The permanent ids minted before.
    pub known: Entries,
    /// The inputs are the ones the last rendering run read.
    pub unchanged_inputs: bool,
    /// Every file the last run recorded is still in `public/`.
    pub outputs_intact: bool,
}

/// Stage one: what a publish at `now` must do, decided from the content and the
/// ledger alone, before anything is rendered.
#[derive(Debug)]
pub struct Plan<'c> {
    pub now: DateTime<Utc>,
    /// Due statements, newest first: everything the public channels show.
    pub due: Vec<&'c Statement>,
    pub embargoed: Vec<Embargoed>,
    /// The public channels this configuration runs, in order.
    pub channels: Vec<Channel>,
    /// (id, lang) of versions new on some public channel.
    pub new_statements: Vec<(String, String)>,
    /// Due versions the mail channel has not queued.
    pub unqueued: Vec<&'c Statement>,
    /// Every due statement's permanent ids, and those minted by this run.
    pub entries: Entries,
    pub minted: Vec<(String, String, Entry)>,
    /// False when nothing is new, no input changed and `public/` is intact: the
    /// channels do not run (each output is then kept by its render key anyway).
    pub render: bool,
    /// Every file the last run recorded is still in `public/`.
    pub outputs_intact: bool,
    recorded: Recorded,
    /// Every due statement (by address, as the plan borrows it from its corpus)
    /// with a bit per channel it is new on ([`Channel::ALL`] order): asked of
    /// the ledger once per statement and channel, then answered from here.
    new_on: herald_content::fast::HashMap<usize, u8>,
}

impl<'c> Plan<'c> {
    pub fn new(
        corpus: &'c Corpus,
        settings: &channels::Settings,
        now: DateTime<Utc>,
        history: History,
    ) -> Plan<'c> {
        let due = corpus.due(now);
        let embargoed = corpus
            .embargoed(now)
            .into_iter()
            .map(|s| Embargoed {
                id: s.id.clone(),
                lang: s.lang.clone(),
                publish_at: s.meta.publish_at,
            })
            .collect();
        let (entries, minted) = entries_for(settings, &due, history.known);
        let mut plan = Plan {
            now,
            embargoed,
            channels: settings.public_channels(),
            new_statements: Vec::new(),
            unqueued: Vec::new(),
            entries,
            minted,
            render: false,
            outputs_intact: history.outputs_intact,
            recorded: history.recorded,
            new_on: Default::default(),
            due,
        };
        let mut new_on = herald_content::fast::HashMap::default();
        new_on.reserve(plan.due.len());
        for s in &plan.due {
            let mask = Channel::ALL
                .iter()
                .copied()
                .filter(|ch| plan.is_recorded_new(s, *ch))
                .fold(0u8, |m, ch| m | channel_bit(ch));
            new_on.insert(*s as *const Statement as usize, mask);
        }
        plan.new_on = new_on;
        plan.new_statements = plan
            .due
            .iter()
            .filter(|s| plan.channels.iter().any(|ch| plan.is_new(s, *ch)))
            .map(|s| (s.id.clone(), s.lang.clone()))
            .collect();
        plan.unqueued = plan
            .due
            .iter()
            .copied()
            .filter(|s| plan.is_new(s, Channel::Mail))
            .collect();
        plan.render =
            !(plan.new_statements.is_empty() && history.unchanged_inputs && history.outputs_intact);
        plan
    }

    /// True when this version of `s` is not yet recorded on `ch`.
    pub fn is_new(&self, s: &Statement, ch: Channel) -> bool {
        match self.new_on.get(&(s as *const Statement as usize)) {
            Some(m) => m & channel_bit(ch) != 0,
            // Not one of the plan's own due statements (the same value, not an
            // equal one): asked of the ledger's rows.
            None => self.is_recorded_new(s, ch),
        }
    }

    fn is_recorded_new(&self, s: &Statement, ch: Channel) -> bool {
        !self.recorded.contains(&crate::ledger::publication_key(
            &s.id,
            &s.lang,
            ch.name(),
            &s.digest,
        ))
    }

    /// The publication rows of this run: every due version new on a public channel.
    fn publications(&self) -> Vec<(&'c str, &'c str, &'static str, &'c str)> {
        let mut out = Vec::new();
        for s in &self.due {
            for ch in &self.channels {
                if self.is_new(s, *ch) {
                    out.push((s.id.as_str(), s.lang.as_str(), ch.name(), s.digest.as_str()));
                }
            }
        }
        out
    }
}

/// One bit per channel for [`Plan::new_on`].
fn channel_bit(ch: Channel) -> u8 {
    1 << (Channel::ALL.iter().position(|c| *c == ch).unwrap_or(7) as u8)
}

/// What the render stage leaves for the record stage.
struct Rendered {
    sink: AtomicSink,
    reports: Vec<ChannelReport>,
    flow: channels::Flow,
}

/// Stage two: every public channel renders into one staging sink (nothing is
/// visible until all succeeded); each output whose render key is unchanged is
/// kept, not rendered.
#[allow(clippy::too_many_arguments)]
fn render(
    opts: &PublishOptions,
    corpus: &Corpus,
    settings: &channels::Settings,
    paths: &Paths,
    plan: &Plan<'_>,
    previous: Vec<Output>,
    manifest_key: Option<&crate::manifest::ManifestKey>,
) -> Result<Rendered, Error> {
    let sink = AtomicSink::new(&paths.public, &paths.tmp, opts.dry_run)?
        .with_cancel(opts.cancel.clone())
        .with_sha256(manifest_key.is_some() && !opts.dry_run)
        .with_previous(previous, plan.outputs_intact, !opts.rebuild);
    let is_new = |s: &Statement, ch: Channel| plan.is_new(s, ch);
    // One tally per public channel, in `Channel::PUBLIC` order.
    let tallies = [Tally::new(&sink), Tally::new(&sink), Tally::new(&sink)];
    let tally = |ch: Channel| {
        let i = Channel::PUBLIC.iter().position(|c| *c == ch).unwrap_or(0);
        &tallies[i]
    };
    let ctx = |ch: Channel| channels::Ctx {
        corpus,
        due: &plan.due,
        now: plan.now,
        entries: &plan.entries,
        settings,
        paths,
        sink: tally(ch),
        is_new: &is_new,
        dry_run: opts.dry_run,
    };
    let cancelled = |e: Error| {
        if sink.is_cancelled() {
            Error::Cancelled
        } else {
            e
        }
    };
    let mut flow = channels::Flow::default();
    let mut reports = Vec::new();
    // The PDFs first: feeds and pages give their sizes.
    if plan.channels.contains(&Channel::Pdf) {
        stop_if_cancelled(opts)?;
        reports
            .push(channels::run(Channel::Pdf, &ctx(Channel::Pdf), &mut flow).map_err(cancelled)?);
    }
    stop_if_cancelled(opts)?;
    // Feeds and pages only read what the PDFs left: they render side by side,
    // the feeds mostly on one core while the pages take what is free.
    let rest: Vec<Channel> = plan
        .channels
        .iter()
        .copied()
        .filter(|c| *c != Channel::Pdf)
        .collect();
    if let [a, b] = rest[..] {
        let (ra, rb) = rayon::join(
            || channels::run_shared(a, &ctx(a), &flow),
            || channels::run_shared(b, &ctx(b), &flow),
        );
        reports.push(ra.map_err(cancelled)?);
        reports.push(rb.map_err(cancelled)?);
    } else {
        for ch in rest {
            reports.push(channels::run_shared(ch, &ctx(ch), &flow).map_err(cancelled)?);
        }
    }
    if let Some(key) = manifest_key
        && !opts.dry_run
    {
        crate::manifest::write(
            &sink,
            &paths.public,
            &corpus.config.base_url,
            &plan.due,
            key,
        )?;
    }
    Ok(Rendered {
        sink,
        reports,
        flow,
    })
}

/// What the ledger says of earlier runs: read on its own thread from the start
/// of a run (see [`HistoryReader`]).
struct Earlier {
    /// The files the last run recorded.
    previous: Vec<Output>,
    history: History,
    /// Coverage keys of statements that passed the content rules before.
    passed: HashSet<u128>,
    /// The folder stamps the last run saved, when they answered for
    /// `history.outputs_intact` (see [`crate::dirs`]): the run then stamps again
    /// only the folders it touches.
    dirs: Option<DirStamps>,
}

/// [`Earlier`], from its own connection; empty when there is no ledger yet.
/// Whether the recorded outputs are intact is sent on `intact` as soon as it is
/// known: a run with nothing to do needs only that. The fingerprint is handed
/// back for the caller to compare with this run's input digest.
fn read_history(
    paths: &Paths,
    intact: std::sync::mpsc::Sender<bool>,
) -> Result<(Earlier, Option<String>), Error> {
    if !paths.ledger.exists() {
        return Ok((
            Earlier {
                previous: Vec::new(),
                history: History::default(),
                passed: HashSet::new(),
                dirs: None,
            },
            None,
        ));
    }
    let t = Instant::now();
    let ledger = Ledger::open(&paths.ledger)?;
    let previous = ledger.outputs_keyed()?;
    tracing::debug!("history: outputs at {} ms", t.elapsed().as_millis());
    let dirs = DirStamps::load(&paths.dir_stamps());
    let (outputs_intact, dirs_answered) =
        crate::dirs::outputs_intact(&paths.public, dirs.as_ref(), &previous);
    // Nobody waiting is no error: the run went on without it.
    let _ = intact.send(outputs_intact);
    tracing::debug!("history: folders checked at {} ms", t.elapsed().as_millis());
    let passed = ledger
        .get_state(PASSED)?
        .and_then(|v| serde_json::from_str::<Vec<String>>(&v).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|k| u128::from_str_radix(k, 16).ok())
        .collect();
    let history = History {
        recorded: ledger.publication_keys()?,
        known: ledger
            .entries()?
            .into_iter()
            .map(|(id, lang, e)| ((id, lang), e))
            .collect(),
        unchanged_inputs: false,
        outputs_intact,
    };
    let fingerprint = ledger.get_state("fingerprint")?;
    tracing::debug!("history: read at {} ms", t.elapsed().as_millis());
    Ok((
        Earlier {
            previous,
            history,
            passed,
            dirs: dirs.filter(|_| dirs_answered),
        },
        fingerprint,
    ))
}

/// [`read_history`] on a thread of its own, started before anything else: it
/// needs nothing of this run, and reads beside the input digest and the load.
struct HistoryReader {
    intact: std::sync::mpsc::Receiver<bool>,
    thread: std::thread::JoinHandle<Result<(Earlier, Option<String>), Error>>,
}

impl HistoryReader {
    fn start(paths: &Paths) -> HistoryReader {
        let (tx, intact) = std::sync::mpsc::channel();
        let paths = paths.clone();
        HistoryReader {
            intact,
            thread: std::thread::spawn(move || read_history(&paths, tx)),
        }
    }

    /// Whether every recorded output is in place (false when the ledger could not
    /// tell: the full path then reports why).
    fn outputs_intact(&self) -> bool {
        self.intact.recv().unwrap_or(false)
    }

    /// The history, with `unchanged_inputs` from this run's input digest.
    fn join(self, inputs: Option<&str>) -> Result<Earlier, Error> {
        let (mut earlier, fingerprint) = self
            .thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        // The same digest tells whether anything rendered could differ from the last run.
        earlier.history.unchanged_inputs = inputs.is_some() && fingerprint.as_deref() == inputs;
        Ok(earlier)
    }
}

/// Publish everything due at `opts.now` that the ledger has not recorded:
/// load, plan, render, record, mail.
pub fn publish(opts: &PublishOptions) -> Result<PublishReport, Error> {
    let t0 = Instant::now();
    let paths = Paths::new(&opts.root);
    let history = HistoryReader::start(&paths);
    // Read before loading: an edit made while this run works changes the digest, so
    // the next run cannot mistake it for settled.
    let Inputs {
        digest: inputs,
        stamps: input_stamps,
        walk,
    } = input_digest(&paths)?;
    if let Some(inputs) = &inputs
        && !opts.rebuild
        && let Some(report) = settled_report(opts, &paths, inputs, &history, t0)?
    {
        return Ok(report);
    }
    tracing::debug!("inputs read in {} ms", t0.elapsed().as_millis());
    // Validation first: nothing is written while any statement is invalid. Files
    // unchanged since the last run come from the load cache, not read or parsed.
    // The ledger's history (`history`, reading since the run began) does not
    // depend on the content: it is joined once the content is loaded.
    let loaded = {
        let cache = std::fs::read(paths.load_cache())
            .map(|b| herald_content::LoadCache::decode(&b))
            .unwrap_or_default();
        let cached = cache.len();
        tracing::debug!("load cache decoded at {} ms", t0.elapsed().as_millis());
        herald_content::load_cached(&opts.root, cache, &input_stamps, Some(walk))
            .map(|l| (l, cached))
    };
    let earlier = history.join(inputs.as_deref());
    let (
        herald_content::Loaded {
            corpus,
            stamps,
            read,
        },
        cached,
    ) = loaded?;
    let Earlier {
        previous,
        history,
        passed,
        dirs,
    } = earlier?;
    tracing::debug!(
        "{} statements loaded ({read} files read) and the ledger read at {} ms",
        corpus.statements.len(),
        t0.elapsed().as_millis()
    );
    let channel_settings = channels::Settings::load(&corpus)?;
    let passed_now = channels::content_rules(&corpus, &channel_settings, &passed)?;
    tracing::debug!("content rules passed at {} ms", t0.elapsed().as_millis());
    let manifest_key = match &channel_settings.site.manifest_key {
        Some(p) => Some(crate::manifest::ManifestKey::load(&paths.content.join(p))?),
        None => None,
    };
    let now = opts.now;

    stop_if_cancelled(opts)?;
    // Opened for writing only now: a refused first run leaves no database behind.
    let mut ledger = Ledger::open(&paths.ledger)?;
    // Recorded with the run (a stopped run records nothing).
    let passed_state = if passed_now.iter().any(|k| !passed.contains(k)) {
        let keys: Vec<String> = passed_now.iter().map(|k| format!("{k:032x}")).collect();
        let json = serde_json::to_string(&keys).map_err(|e| Error::channel("ledger", e))?;
        vec![(PASSED.to_string(), json)]
    } else {
        Vec::new()
    };
    tracing::debug!("ledger read at {} ms", t0.elapsed().as_millis());
    let mut plan = Plan::new(&corpus, &channel_settings, now, history);
    plan.render |= opts.rebuild;
    tracing::debug!("planned at {} ms", t0.elapsed().as_millis());
    // Rewritten only when many files were read: a few changed files are cheaper to
    // read again next time (their stamps no longer match) than the cache to write.
    let n = corpus.statements.len();
    if !opts.dry_run
        && ((read > 0 && (read > REWRITE_CACHE || read * 10 > n)) || cached > n + REWRITE_CACHE)
    {
        // A cache that cannot be written costs the next run time, never output.
        let bytes = herald_content::LoadCache::encode(&corpus, &stamps);
        if let Err(e) = herald_mail::atomic::write(&paths.load_cache(), &bytes) {
            tracing::warn!("cannot write {}: {e}", paths.load_cache().display());
        }
        tracing::debug!("load cache written at {} ms", t0.elapsed().as_millis());
    }
    // The gate's last part: the mail templates on what this run will queue (the
    // site's templates fail its render, which leaves nothing behind either).
    if opts.mail && !plan.unqueued.is_empty() {
        channels::check_mail_templates(&corpus, &channel_settings, &plan.unqueued)?;
    }

    // Bulletins carry whole bodies: those of cached statements are read now, so a
    // file changed since it was stamped stops the run before anything is written.
    if opts.mail {
        for s in &plan.unqueued {
            s.try_body()
                .map_err(|e| Error::channel("content", e.to_string()))?;
        }
    }
    let rendered = if plan.render {
        let r = render(
            opts,
            &corpus,
            &channel_settings,
            &paths,
            &plan,
            previous,
            manifest_key.as_ref(),
        )?;
        tracing::debug!("rendered at {} ms", t0.elapsed().as_millis());
        Some(r)
    } else {
        None
    };
    // A body read from a file that changed after it was stamped: nothing of this
    // render may be committed.
    if let Some(e) = corpus.statements.iter().find_map(|s| s.body_failed()) {
        return Err(Error::channel("content", e.to_string()));
    }
    // The last point at which a signal leaves everything as it was.
    stop_if_cancelled(opts)?;
    let (mut reports, removed_files, changed_feeds) = record(
        opts,
        &paths,
        &mut ledger,
        &plan,
        rendered,
        inputs.as_deref(),
        passed_state,
        dirs,
    )?;
    tracing::debug!("recorded at {} ms", t0.elapsed().as_millis());
    // The hub is told only once the changed feeds are in place.
    if let Some(note) = channels::ping_hub(&channel_settings, &changed_feeds, opts.dry_run)
        && let Some(rep) = reports
            .iter_mut()
            .find(|r| r.channel == Channel::Feed.name())
    {
        rep.note = note;
    }

    if opts.mail
        && let Some(rep) = mail(opts, &corpus, &channel_settings, &paths, &mut ledger, &plan)?
    {
        reports.push(rep);
    }
    tracing::debug!("mail done at {} ms", t0.elapsed().as_millis());
    if !opts.dry_run
        && let Some(inputs) = inputs
    {
        settle(&mut ledger, opts, &plan, inputs)?;
    }

    Ok(PublishReport {
        now,
        dry_run: opts.dry_run,
        unchanged: !plan.render,
        settled: false,
        channels: reports,
        new_statements: plan.new_statements.clone(),
        embargoed: plan.embargoed.clone(),
        removed_files,
        elapsed_ms: t0.elapsed().as_millis(),
    })
}

/// Stage three: place the staged files, remove what no channel wrote this time,
/// and record the run in one ledger transaction, before any mail goes out (the
/// pages a bulletin links to exist by then). Returns the channel reports, the
/// number of files removed and the feeds whose bytes changed.
#[allow(clippy::too_many_arguments)]
fn record(
    opts: &PublishOptions,
    paths: &Paths,
    ledger: &mut Ledger,
    plan: &Plan<'_>,
    rendered: Option<Rendered>,
    inputs: Option<&str>,
    mut state: Vec<(String, String)>,
    dirs: Option<DirStamps>,
) -> Result<(Vec<ChannelReport>, usize, Vec<String>), Error> {
    if !opts.dry_run {
        // Whatever this run does, the last run's summary no longer describes it.
        ledger.clear_state(SETTLED)?;
    }
    let Some(Rendered {
        sink,
        reports,
        flow,
    }) = rendered
    else {
        let reports = plan
            .channels
            .iter()
            .map(|ch| ChannelReport {
                channel: ch.name(),
                live: plan.due.len(),
                ..Default::default()
            })
            .collect();
        if !opts.dry_run {
            ledger.commit(&Record {
                now: plan.now,
                started_at: opts.started_at,
                publications: plan.publications(),
                entries: plan.minted.clone(),
                state,
                ..Default::default()
            })?;
            if dirs.is_none() {
                save_dir_stamps(paths, ledger, None, None)?;
            }
        }
        return Ok((reports, 0, Vec::new()));
    };
    if opts.dry_run {
        sink.discard();
        return Ok((
            reports,
            0,
            flow.changed_feeds.into_inner().unwrap_or_default(),
        ));
    }
    let t = Instant::now();
    let (delta, _, old) = sink.commit()?;
    // The files swapped out are deleted beside the ledger write.
    let swapped_out = old.len();
    let deleting = (!old.is_empty()).then(|| old.delete_beside());
    let removed = remove_stale(&paths.public, &delta.removed)?;
    tracing::debug!(
        "{} files placed in {} ms",
        delta.placed.len(),
        t.elapsed().as_millis()
    );
    let summary = format!(
        "{} new statement version(s); {}",
        plan.new_statements.len(),
        reports
            .iter()
            .map(|r| format!("{} {} new", r.channel, r.new))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let touched: Vec<String> = delta.placed.iter().chain(&delta.removed).cloned().collect();
    ledger.commit(&Record {
        now: plan.now,
        started_at: opts.started_at,
        publications: plan.publications(),
        entries: plan.minted.clone(),
        outputs: Some(delta),
        state: {
            state.extend(inputs.map(|i| ("fingerprint".to_string(), i.to_string())));
            state
        },
        run_summary: Some(summary),
    })?;
    tracing::debug!("ledger written at {} ms", t.elapsed().as_millis());
    save_dir_stamps(paths, ledger, dirs, Some(&touched))?;
    tracing::debug!("folders stamped at {} ms", t.elapsed().as_millis());
    if let Some(d) = deleting
        && d.join().is_err()
    {
        tracing::warn!("deleting {swapped_out} replaced file(s) in the staging folder failed");
    }
    tracing::debug!(
        "{swapped_out} replaced files deleted at {} ms",
        t.elapsed().as_millis()
    );
    Ok((
        reports,
        removed,
        flow.changed_feeds.into_inner().unwrap_or_default(),
    ))
}

/// Stamp `public/`'s folders for the next run's intactness check: those the
/// run `touched` (files placed or removed), when the last stamps answered this
/// run; else every folder of the recorded outputs, which heals stamps gone stale.
fn save_dir_stamps(
    paths: &Paths,
    ledger: &Ledger,
    dirs: Option<DirStamps>,
    touched: Option<&[String]>,
) -> Result<(), Error> {
    let stamps = match (dirs, touched) {
        (Some(d), Some(t)) => d.updated(&paths.public, t.iter().map(String::as_str)),
        (Some(d), None) => d,
        (None, _) => {
            let outputs = ledger.output_paths()?;
            DirStamps::of_all(&paths.public, outputs.iter().map(String::as_str))
        }
    };
    stamps.save(&paths.dir_stamps());
    Ok(())
}

/// Stage four: queue bulletins for the versions not queued yet, and deliver.
fn mail(
    opts: &PublishOptions,
    corpus: &Corpus,
    settings: &channels::Settings,
    paths: &Paths,
    ledger: &mut Ledger,
    plan: &Plan<'_>,
) -> Result<Option<ChannelReport>, Error> {
    let cancel = opts.cancel.clone().unwrap_or_default();
    let rep = channels::mail(&channels::MailCtx {
        corpus,
        settings,
        ledger,
        paths,
        due: &plan.due,
        now: plan.now,
        dry_run: opts.dry_run,
        unqueued: &plan.unqueued,
        cancel: &cancel,
    })?;
    // Queued bulletins are in the mail tables now; remember that these versions
    // need no queueing again. With a digest, the digest job records what it carried.
    if rep.is_some() && !plan.unqueued.is_empty() && settings.schedules.digest().is_none() {
        ledger.commit(&channels::mailed_record(
            plan.now,
            opts.started_at,
            &plan.unqueued,
        ))?;
    }
    Ok(rep)
}

/// What the next run needs to answer "nothing to do" without loading anything.
fn settle(
    ledger: &mut Ledger,
    opts: &PublishOptions,
    plan: &Plan<'_>,
    inputs: String,
) -> Result<(), Error> {
    let settled = Settled {
        inputs,
        from: plan
            .due
            .iter()
            .map(|s| s.meta.publish_at.with_timezone(&Utc))
            .max(),
        until: plan
            .embargoed
            .iter()
            .map(|e| e.publish_at.with_timezone(&Utc))
            .min(),
        live: plan.due.len(),
        channels: plan.channels.iter().map(|c| c.name().to_string()).collect(),
        embargoed: plan
            .embargoed
            .iter()
            .map(|e| (e.id.clone(), e.lang.clone(), e.publish_at))
            .collect(),
        mail: opts.mail,
    };
    let json = serde_json::to_string(&settled).map_err(|e| Error::channel("ledger", e))?;
    ledger.set_state(SETTLED, &json)?;
    Ok(())
}

/// `Error::Cancelled` once a signal asked the run to stop.
fn stop_if_cancelled(opts: &PublishOptions) -> Result<(), Error> {
    match &opts.cancel {
        Some(c) if c.load(std::sync::atomic::Ordering::SeqCst) => Err(Error::Cancelled),
        _ => Ok(()),
    }
}

/// Validate everything; the corpus on success.
pub fn check(root: &Path) -> Result<Corpus, Error> {
    let corpus = herald_content::load(root)?;
    let settings = channels::Settings::load(&corpus)?;
    // Publish parses fonts only when a PDF renders; check catches a bad font list now.
    herald_pdf::Renderer::new(&corpus.config, &settings.pdf)
        .map_err(|e| Error::channel("pdf", e))?;
    channels::content_rules(&corpus, &settings, &HashSet::new())?;
    // Every statement, embargoed ones too (each will be rendered once it is due), and
    // a sample with every optional field.
    let samples = channels::sample_statements(&corpus);
    let all: Vec<&Statement> = corpus.statements.iter().chain(&samples).collect();
    channels::check_templates(&corpus, &settings, &all)?;
    Ok(corpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "title = \"T\"\nbase_url = \"https://ex.org/\"\nlanguages = [\"en\", \"ru\"]\ndefault_language = \"en\"\ntime_zone = \"UTC\"\n[organization]\nname = \"Org\"\n";

    fn statement(config: &herald_content::Config, name: &str, front: &str) -> Statement {
        let text = format!("+++\n{front}\n+++\nBody of {name}.\n");
        herald_content::statement::parse_file(
            config,
            Path::new(name),
            Path::new(name),
            text.as_bytes(),
        )
        .expect("valid statement")
    }

    /// Three statements: one due, one under embargo until 2014-08-01, one draft.
    fn corpus() -> Corpus {
        let config =
            herald_content::Config::parse(Path::new("herald.toml"), CONFIG).expect("config");
        let statements = vec![
            statement(
                &config,
                "2014/a.en.md",
                "title = \"A\"\ndate = 2014-07-30T09:00:00Z",
            ),
            statement(
                &config,
                "2014/b.ru.md",
                "title = \"B\"\ndate = 2014-07-30T09:00:00Z\npublish_at = 2014-08-01T00:00:00Z",
            ),
            statement(
                &config,
                "2014/c.en.md",
                "title = \"C\"\ndate = 2014-07-30T09:00:00Z\ndraft = true",
            ),
        ];
        Corpus {
            root: PathBuf::from("."),
            config,
            statements,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("instant")
    }

    /// The ledger after `plan` was recorded: every version on every channel.
    fn recorded(plan: &Plan<'_>) -> History {
        let mut recorded: Recorded = plan
            .publications()
            .into_iter()
            .map(|(id, lang, ch, v)| crate::ledger::publication_key(id, lang, ch, v))
            .collect();
        for s in &plan.unqueued {
            recorded.insert(crate::ledger::publication_key(
                &s.id, &s.lang, "mail", &s.digest,
            ));
        }
        History {
            recorded,
            known: plan.entries.clone(),
            unchanged_inputs: true,
            outputs_intact: true,
        }
    }

    #[test]
    fn only_due_statements_are_planned_and_embargoes_lift_at_their_instant() {
        let corpus = corpus();
        let settings = channels::Settings::load(&corpus).expect("settings");
        let before = Plan::new(
            &corpus,
            &settings,
            at("2014-07-31T00:00:00Z"),
            History::default(),
        );
        let ids = |p: &Plan<'_>| p.due.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&before), ["2014/a"]);
        assert_eq!(before.embargoed.len(), 1);
        assert_eq!(before.embargoed[0].id, "2014/b");
        assert_eq!(before.new_statements, [("2014/a".into(), "en".into())]);
        assert!(before.render);

        let lifted = Plan::new(
            &corpus,
            &settings,
            at("2014-08-01T00:00:00Z"),
            recorded(&before),
        );
        assert_eq!(ids(&lifted), ["2014/a", "2014/b"]);
        assert!(lifted.embargoed.is_empty());
        // Only the lifted one is new; the other is recorded already.
        assert_eq!(lifted.new_statements, [("2014/b".into(), "ru".into())]);
        assert_eq!(lifted.unqueued.len(), 1);
        assert_eq!(lifted.minted.len(), 1);
        assert_eq!(
            lifted.minted[0].2.first_published,
            at("2014-08-01T00:00:00Z")
        );
    }

    #[test]
    fn a_recorded_run_plans_no_render_until_something_changes() {
        let corpus = corpus();
        let settings = channels::Settings::load(&corpus).expect("settings");
        let now = at("2014-07-31T00:00:00Z");
        let first = Plan::new(&corpus, &settings, now, History::default());
        let again = Plan::new(&corpus, &settings, now, recorded(&first));
        assert!(!again.render);
        assert!(again.new_statements.is_empty() && again.unqueued.is_empty());
        assert!(again.publications().is_empty());
        // Ids minted once are kept, never minted again.
        assert!(again.minted.is_empty());
        assert_eq!(
            again.entries[&("2014/a".to_string(), "en".to_string())],
            first.entries[&("2014/a".to_string(), "en".to_string())]
        );

        let changed_inputs = History {
            unchanged_inputs: false,
            ..recorded(&first)
        };
        assert!(Plan::new(&corpus, &settings, now, changed_inputs).render);
        let missing_file = History {
            outputs_intact: false,
            ..recorded(&first)
        };
        assert!(Plan::new(&corpus, &settings, now, missing_file).render);
    }

    #[test]
    fn an_edit_is_a_new_version_on_every_channel_with_the_same_ids() {
        let mut corpus = corpus();
        let settings = channels::Settings::load(&corpus).expect("settings");
        let now = at("2014-07-31T00:00:00Z");
        let first = Plan::new(&corpus, &settings, now, History::default());
        let history = recorded(&first);
        let entry = first.entries[&("2014/a".to_string(), "en".to_string())].clone();
        corpus.statements[0] = statement(
            &corpus.config,
            "2014/a.en.md",
            "title = \"A, corrected\"\ndate = 2014-07-30T09:00:00Z\nupdated = 2014-07-30T12:00:00Z",
        );
        let edit = Plan::new(&corpus, &settings, now, history);
        assert_eq!(edit.new_statements, [("2014/a".into(), "en".into())]);
        let channels: Vec<&str> = edit.publications().iter().map(|p| p.2).collect();
        assert_eq!(channels, ["pdf", "feed", "site"]);
        assert_eq!(edit.unqueued.len(), 1, "the correction is queued for mail");
        assert!(edit.minted.is_empty());
        assert_eq!(
            edit.entries[&("2014/a".to_string(), "en".to_string())],
            entry
        );
        assert!(edit.render);
    }
}
