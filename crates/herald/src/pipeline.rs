//! The publish pipeline: load and validate, plan what is due at `now`, run the
//! channels in order (PDF, feeds, site, mail), write atomically, record in the ledger.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use herald_content::{Corpus, Statement};
use xxhash_rust::xxh3::Xxh3;

use crate::channels::{self, Channel};
use crate::ledger::{Entry, Ledger, Record};
use crate::output::{AtomicSink, remove_stale};
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
type Entries = HashMap<(String, String), Entry>;

/// The permanent ids of every due statement: from the ledger, or minted now.
fn entries_for(
    settings: &channels::Settings,
    due: &[&Statement],
    known: &HashMap<(String, String), Entry>,
) -> (Entries, Vec<(String, String, Entry)>) {
    let mut all = HashMap::new();
    let mut minted = Vec::new();
    for s in due {
        let key = (s.id.clone(), s.lang.clone());
        let entry = match known.get(&key) {
            Some(e) => e.clone(),
            None => {
                let first = s.meta.publish_at.with_timezone(&Utc);
                let e = Entry {
                    first_published: first,
                    tag_uri: channels::tag_uri(settings, first, &s.id, &s.lang),
                };
                minted.push((s.id.clone(), s.lang.clone(), e.clone()));
                e
            }
        };
        all.insert(key, entry);
    }
    (all, minted)
}

/// Ledger state key of [`Settled`].
const SETTLED: &str = "settled";

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

/// One digest of everything a publish reads: herald's version, herald.toml, the
/// template overrides and every statement file (path and bytes), with XXH3-128: it
/// detects change, nobody forges it (whoever can write content can publish). Read in
/// parallel. `None` when a file cannot be read: then nothing is settled, and loading
/// reports the file.
fn input_digest(paths: &Paths) -> Result<Option<String>, Error> {
    use rayon::prelude::*;
    let mut files = herald_content::statement_files(&paths.root)?;
    files.push(paths.content.join("herald.toml"));
    if let Ok(walk) = std::fs::read_dir(&paths.templates) {
        let mut names: Vec<PathBuf> = walk.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        files.extend(names);
    }
    let digests: Option<Vec<u128>> = files
        .par_iter()
        .map(|p| {
            let bytes = std::fs::read(p).ok()?;
            let mut h = Xxh3::new();
            h.update(p.to_string_lossy().as_bytes());
            h.update(&[0]);
            h.update(&bytes);
            Some(h.digest128())
        })
        .collect();
    let Some(digests) = digests else {
        return Ok(None);
    };
    let mut h = Xxh3::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    for d in digests {
        h.update(&d.to_le_bytes());
    }
    Ok(Some(format!("{:032x}", h.digest128())))
}

/// The report of a publish that has nothing to do, from the last run's [`Settled`]
/// alone; `None` when anything may have changed (then the full path decides).
fn settled_report(
    opts: &PublishOptions,
    paths: &Paths,
    inputs: &str,
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
    let outputs = ledger.outputs()?;
    let intact = {
        use rayon::prelude::*;
        outputs
            .par_iter()
            .all(|(p, _)| paths.public.join(p).is_file())
    };
    if !intact {
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

/// Publish everything due at `opts.now` that the ledger has not recorded.
pub fn publish(opts: &PublishOptions) -> Result<PublishReport, Error> {
    let t0 = Instant::now();
    let paths = Paths::new(&opts.root);
    // Read before loading: an edit made while this run works changes the digest, so
    // the next run cannot mistake it for settled.
    let inputs = input_digest(&paths)?;
    if let Some(inputs) = &inputs
        && let Some(report) = settled_report(opts, &paths, inputs, t0)?
    {
        return Ok(report);
    }
    tracing::debug!("inputs read in {} ms", t0.elapsed().as_millis());
    // Validation first: nothing is written while any statement is invalid.
    let corpus = herald_content::load(&opts.root)?;
    tracing::debug!(
        "{} statements loaded at {} ms",
        corpus.statements.len(),
        t0.elapsed().as_millis()
    );
    let channel_settings = channels::Settings::load(&corpus)?;
    channels::content_rules(&corpus, &channel_settings)?;
    let manifest_key = match &channel_settings.site.manifest_key {
        Some(p) => Some(crate::manifest::ManifestKey::load(&paths.content.join(p))?),
        None => None,
    };
    let now = opts.now;
    let due = corpus.due(now);
    let embargoed: Vec<Embargoed> = corpus
        .embargoed(now)
        .into_iter()
        .map(|s| Embargoed {
            id: s.id.clone(),
            lang: s.lang.clone(),
            publish_at: s.meta.publish_at,
        })
        .collect();

    stop_if_cancelled(opts)?;
    let mut ledger = Ledger::open(&paths.ledger)?;
    let recorded: HashSet<(String, String, String, String)> = ledger
        .publications()?
        .into_iter()
        .map(|p| (p.statement, p.lang, p.channel, p.version))
        .collect();
    let is_new = |s: &Statement, ch: Channel| {
        !recorded.contains(&(
            s.id.clone(),
            s.lang.clone(),
            ch.name().to_string(),
            s.digest.clone(),
        ))
    };
    // The same digest tells whether anything rendered could differ from the last run.
    let unchanged_inputs = inputs.is_some() && ledger.get_state("fingerprint")? == inputs;
    let known: HashMap<(String, String), Entry> = ledger
        .entries()?
        .into_iter()
        .map(|(id, lang, e)| ((id, lang), e))
        .collect();
    let (entries, minted) = entries_for(&channel_settings, &due, &known);

    let public = channel_settings.public_channels();
    let mut reports: Vec<ChannelReport> = Vec::new();
    let mut publications: Vec<(&str, &str, &'static str, &str)> = Vec::new();
    let mut new_statements: Vec<(String, String)> = Vec::new();
    for s in &due {
        if public.iter().any(|ch| is_new(s, *ch)) {
            new_statements.push((s.id.clone(), s.lang.clone()));
        }
    }
    let nothing_new = new_statements.is_empty();
    // The gate's last part: the mail templates on what this run will queue (the
    // site's templates fail its render, which leaves nothing behind either).
    if opts.mail {
        let to_queue: Vec<&Statement> = due
            .iter()
            .copied()
            .filter(|s| is_new(s, Channel::Mail))
            .collect();
        if !to_queue.is_empty() {
            channels::check_mail_templates(&corpus, &channel_settings, &to_queue)?;
        }
    }
    let keyed = ledger.outputs_keyed()?;
    let previous_outputs: Vec<(String, String)> = keyed
        .iter()
        .map(|o| (o.path.clone(), o.digest.clone()))
        .collect();
    let outputs_intact = previous_outputs
        .iter()
        .all(|(p, _)| paths.public.join(p).is_file());

    let mut removed_files = 0;
    let mut manifest_changed = None;
    let mut staged = None;
    let mut keys = BTreeMap::new();
    let mut flow = channels::Flow::default();
    if !(nothing_new && unchanged_inputs && outputs_intact) {
        // Every channel renders into staging; nothing is visible until all succeeded.
        let sink = AtomicSink::new(&paths.public, &paths.tmp, opts.dry_run)?
            .with_cancel(opts.cancel.clone())
            .with_sha256(manifest_key.is_some() && !opts.dry_run)
            .with_previous(if opts.rebuild { &[] } else { &keyed });
        let ctx = channels::Ctx {
            corpus: &corpus,
            due: &due,
            now,
            entries: &entries,
            settings: &channel_settings,
            paths: &paths,
            previous_outputs: &previous_outputs,
            sink: &sink,
            is_new: &is_new,
            dry_run: opts.dry_run,
        };
        for ch in &public {
            stop_if_cancelled(opts)?;
            let before = sink.stats();
            let mut rep = channels::run(*ch, &ctx, &mut flow).map_err(|e| {
                if sink.is_cancelled() {
                    Error::Cancelled
                } else {
                    e
                }
            })?;
            let after = sink.stats();
            rep.files_written = after.written - before.written;
            rep.files_unchanged = after.unchanged - before.unchanged;
            reports.push(rep);
        }
        tracing::debug!("channels done at {} ms", t0.elapsed().as_millis());
        if let Some(key) = &manifest_key
            && !opts.dry_run
        {
            crate::manifest::write(&sink, &paths.public, &corpus.config.base_url, &due, key)?;
            tracing::debug!("manifest signed at {} ms", t0.elapsed().as_millis());
        }
        staged = Some(sink);
    } else {
        for ch in &public {
            reports.push(ChannelReport {
                channel: ch.name(),
                live: due.len(),
                ..Default::default()
            });
        }
    }
    // The last point at which a signal leaves everything as it was.
    stop_if_cancelled(opts)?;
    if !opts.dry_run {
        // Whatever this run does, the last run's summary no longer describes it.
        ledger.clear_state(SETTLED)?;
    }
    if let Some(sink) = staged {
        keys = sink.keys();
        let manifest = if opts.dry_run {
            sink.into_manifest().0
        } else {
            let (manifest, _) = sink.commit()?;
            removed_files = remove_stale(&paths.public, &previous_outputs, &manifest)?;
            manifest
        };
        manifest_changed = Some(manifest);
    }

    for s in &due {
        for ch in &public {
            if is_new(s, *ch) {
                publications.push((&s.id, &s.lang, ch.name(), &s.digest));
            }
        }
    }

    // Record before mail goes out: the pages a bulletin links to exist by now.
    if !opts.dry_run {
        let changed = manifest_changed.is_some();
        let rec = Record {
            now,
            started_at: opts.started_at,
            publications,
            entries: minted,
            outputs: manifest_changed.map(|m: BTreeMap<String, String>| {
                m.into_iter()
                    .map(|(path, digest)| crate::ledger::Output {
                        key: keys.get(&path).copied(),
                        path,
                        digest,
                    })
                    .collect()
            }),
            state: match (&inputs, changed) {
                (Some(inputs), true) => vec![("fingerprint".into(), inputs.clone())],
                _ => Vec::new(),
            },
            run_summary: changed.then(|| {
                format!(
                    "{} new statement version(s); {}",
                    new_statements.len(),
                    reports
                        .iter()
                        .map(|r| format!("{} {} new", r.channel, r.new))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        };
        ledger.commit(&rec)?;
        tracing::debug!("ledger committed at {} ms", t0.elapsed().as_millis());
    }
    // The hub is told only once the changed feeds are in place.
    if let Some(note) = channels::ping_hub(&channel_settings, &flow.changed_feeds, opts.dry_run)
        && let Some(rep) = reports
            .iter_mut()
            .find(|r| r.channel == Channel::Feed.name())
    {
        rep.note = note;
    }

    if opts.mail {
        let cancel = opts.cancel.clone().unwrap_or_default();
        let unqueued: Vec<&Statement> = due
            .iter()
            .copied()
            .filter(|s| is_new(s, Channel::Mail))
            .collect();
        let mail = channels::mail(&channels::MailCtx {
            corpus: &corpus,
            settings: &channel_settings,
            ledger: &ledger,
            paths: &paths,
            due: &due,
            now,
            dry_run: opts.dry_run,
            unqueued: &unqueued,
            cancel: &cancel,
        })?;
        if let Some(rep) = mail {
            // Queued bulletins are in the mail tables now; remember that these
            // versions need no queueing again.
            // With a digest, the digest job records what it carried.
            if !unqueued.is_empty() && channel_settings.schedules.digest().is_none() {
                ledger.commit(&channels::mailed_record(now, opts.started_at, &unqueued))?;
            }
            reports.push(rep);
        }
    }

    tracing::debug!("mail done at {} ms", t0.elapsed().as_millis());
    if !opts.dry_run
        && let Some(inputs) = inputs
    {
        let settled = Settled {
            inputs,
            from: due
                .iter()
                .map(|s| s.meta.publish_at.with_timezone(&Utc))
                .max(),
            until: embargoed
                .iter()
                .map(|e| e.publish_at.with_timezone(&Utc))
                .min(),
            live: due.len(),
            channels: public.iter().map(|c| c.name().to_string()).collect(),
            embargoed: embargoed
                .iter()
                .map(|e| (e.id.clone(), e.lang.clone(), e.publish_at))
                .collect(),
            mail: opts.mail,
        };
        let json = serde_json::to_string(&settled).map_err(|e| Error::channel("ledger", e))?;
        ledger.set_state(SETTLED, &json)?;
    }

    Ok(PublishReport {
        now,
        dry_run: opts.dry_run,
        unchanged: nothing_new && unchanged_inputs && outputs_intact,
        settled: false,
        channels: reports,
        new_statements,
        embargoed,
        removed_files,
        elapsed_ms: t0.elapsed().as_millis(),
    })
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
    channels::content_rules(&corpus, &settings)?;
    // Every statement, embargoed ones too (each will be rendered once it is due), and
    // a sample with every optional field.
    let samples = channels::sample_statements(&corpus);
    let all: Vec<&Statement> = corpus.statements.iter().chain(&samples).collect();
    channels::check_templates(&corpus, &settings, &all)?;
    Ok(corpus)
}
