//! `herald status`: what is published, what waits, the last run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::ledger::Ledger;
use crate::{Error, Paths};

pub fn print(root: &Path, now: DateTime<Utc>, out: &mut impl Write) -> Result<(), Error> {
    let corpus = crate::check(root)?;
    let paths = Paths::new(root);
    let tz = corpus.config.time_zone;
    let _ = writeln!(
        out,
        "herald status as of {} ({} {})",
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        now.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
        tz
    );
    let due = corpus.due(now);
    let public = crate::channels::Settings::load(&corpus)?.public_channels();
    let ledger = if paths.ledger.exists() {
        Some(Ledger::open(&paths.ledger)?)
    } else {
        None
    };
    let mut per_channel: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    if let Some(l) = &ledger {
        let pubs: std::collections::HashSet<(String, String, String, String)> = l
            .publications()?
            .into_iter()
            .map(|p| (p.statement, p.lang, p.channel, p.version))
            .collect();
        for s in &due {
            for ch in &public {
                let e = per_channel.entry(ch.name().to_string()).or_default();
                let key = (
                    s.id.clone(),
                    s.lang.clone(),
                    ch.name().to_string(),
                    s.digest.clone(),
                );
                let current = pubs.contains(&key);
                if current {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
        }
    }
    let _ = writeln!(out, "  due now: {} statement file(s)", due.len());
    if ledger.is_none() {
        let _ = writeln!(
            out,
            "  ledger: none yet (nothing published; run `herald publish`)"
        );
    }
    for (ch, (published, pending)) in &per_channel {
        let _ = writeln!(
            out,
            "  {ch:<5} {published} published, {pending} waiting for the next publish"
        );
    }
    let embargoed = corpus.embargoed(now);
    let _ = writeln!(out, "  under embargo: {}", embargoed.len());
    for s in embargoed {
        let _ = writeln!(
            out,
            "    {} [{}] lifts {} local ({}), {} UTC",
            s.id,
            s.lang,
            s.meta
                .publish_at
                .with_timezone(&tz)
                .format("%Y-%m-%d %H:%M"),
            tz,
            s.meta
                .publish_at
                .with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M")
        );
    }
    if let Ok(schedules) = crate::schedule::Schedules::from_config(&corpus.config) {
        for (name, schedule) in schedules.iter() {
            let _ = writeln!(
                out,
                "  schedule {name} = \"{}\" ({})",
                schedule.expression(),
                schedule.time_zone()
            );
            for slot in schedule.upcoming(now).take(3) {
                let _ = writeln!(
                    out,
                    "    next {} local, {} UTC",
                    slot.with_timezone(&schedule.time_zone())
                        .format("%a %Y-%m-%d %H:%M"),
                    slot.format("%Y-%m-%d %H:%M")
                );
            }
            if let Some(l) = &ledger
                && let Some(last) = l.get_state(&format!("schedule:{name}:last"))?
            {
                let _ = writeln!(out, "    last ran for slot {last}");
            }
        }
    }
    let drafts = corpus.statements.iter().filter(|s| s.meta.draft).count();
    if drafts > 0 {
        let _ = writeln!(out, "  drafts: {drafts}");
    }
    if let Some(l) = &ledger {
        match l.last_run()? {
            Some((when, summary)) => {
                let _ = writeln!(out, "  last publish: {when}: {summary}");
            }
            None => {
                let _ = writeln!(out, "  last publish: never");
            }
        }
        crate::channels::status_lines(&corpus, l, now, out)?;
    }
    Ok(())
}
