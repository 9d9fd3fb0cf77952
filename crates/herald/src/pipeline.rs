//! The publish pipeline: load and validate, plan what is due at `now`, run the
//! channels in order (PDF, feeds, site, mail), write atomically, record in the ledger.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use herald_content::{Corpus, Statement};
use sha2::{Digest, Sha256};

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
    /// Set by a signal: finish the message in flight, record it, stop.
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
    pub channels: Vec<ChannelReport>,
    /// (id, lang) of statement versions published for the first time on any channel.
    pub new_statements: Vec<(String, String)>,
    pub embargoed: Vec<Embargoed>,
    pub removed_files: usize,
    pub elapsed_ms: u128,
}

/// Inputs that change every rendered file when they change.
fn fingerprint(corpus: &Corpus, due: &[&Statement], paths: &Paths) -> String {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(corpus.config.source().as_bytes());
    // Template overrides change the pages without changing a statement.
    if let Ok(walk) = std::fs::read_dir(&paths.templates) {
        let mut names: Vec<PathBuf> = walk.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for p in names {
            h.update(p.to_string_lossy().as_bytes());
            if let Ok(b) = std::fs::read(&p) {
                h.update(&b);
            }
        }
    }
    for s in due {
        h.update(s.id.as_bytes());
        h.update(s.lang.as_bytes());
        h.update(s.digest.as_bytes());
    }
    hex::encode(h.finalize())
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

/// Publish everything due at `opts.now` that the ledger has not recorded.
pub fn publish(opts: &PublishOptions) -> Result<PublishReport, Error> {
    let t0 = Instant::now();
    let paths = Paths::new(&opts.root);
    // Validation first: nothing is written while any statement is invalid.
    let corpus = herald_content::load(&opts.root)?;
    let channel_settings = channels::Settings::load(&corpus)?;
    let now = opts.now;
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
    let print = fingerprint(&corpus, &due, &paths);
    let unchanged_inputs = ledger.get_state("fingerprint")?.as_deref() == Some(print.as_str());
    let known: HashMap<(String, String), Entry> = ledger
        .entries()?
        .into_iter()
        .map(|(id, lang, e)| ((id, lang), e))
        .collect();
    let (entries, minted) = entries_for(&channel_settings, &due, &known);

    let mut reports: Vec<ChannelReport> = Vec::new();
    let mut publications: Vec<(&str, &str, &'static str, &str)> = Vec::new();
    let mut new_statements: Vec<(String, String)> = Vec::new();
    for s in &due {
        if Channel::PUBLIC.iter().any(|ch| is_new(s, *ch)) {
            new_statements.push((s.id.clone(), s.lang.clone()));
        }
    }
    let nothing_new = new_statements.is_empty();
    let previous_outputs = ledger.outputs()?;
    let outputs_intact = previous_outputs
        .iter()
        .all(|(p, _)| paths.public.join(p).is_file());

    let mut removed_files = 0;
    let mut manifest_changed = None;
    if !(nothing_new && unchanged_inputs && outputs_intact) {
        let sink = AtomicSink::new(&paths.public, &paths.tmp, opts.dry_run)?;
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
        let mut flow = channels::Flow::default();
        for ch in Channel::PUBLIC {
            let before = sink.stats();
            let mut rep = channels::run(*ch, &ctx, &mut flow)?;
            let after = sink.stats();
            rep.files_written = after.written - before.written;
            rep.files_unchanged = after.unchanged - before.unchanged;
            reports.push(rep);
        }
        let (manifest, _) = sink.into_manifest();
        if !opts.dry_run {
            removed_files = remove_stale(&paths.public, &previous_outputs, &manifest)?;
        }
        manifest_changed = Some(manifest);
    } else {
        for ch in Channel::PUBLIC {
            reports.push(ChannelReport {
                channel: ch.name(),
                live: due.len(),
                ..Default::default()
            });
        }
    }

    for s in &due {
        for ch in Channel::PUBLIC {
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
            outputs: manifest_changed.map(|m: BTreeMap<String, String>| m.into_iter().collect()),
            state: if changed {
                vec![("fingerprint".into(), print)]
            } else {
                Vec::new()
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

    Ok(PublishReport {
        now,
        dry_run: opts.dry_run,
        unchanged: nothing_new && unchanged_inputs && outputs_intact,
        channels: reports,
        new_statements,
        embargoed,
        removed_files,
        elapsed_ms: t0.elapsed().as_millis(),
    })
}

/// Validate everything; the corpus on success.
pub fn check(root: &Path) -> Result<Corpus, Error> {
    let corpus = herald_content::load(root)?;
    let settings = channels::Settings::load(&corpus)?;
    // Publish parses fonts only when a PDF renders; check catches a bad font list now.
    herald_pdf::Renderer::new(&corpus.config, &settings.pdf).map_err(|e| Error::Channel {
        channel: "pdf",
        message: e.to_string(),
    })?;
    Ok(corpus)
}
