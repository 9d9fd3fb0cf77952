//! The channels as the pipeline sees them: settings, order, and the calls into
//! the channel crates.

use std::collections::HashMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use herald_content::{Corpus, Statement};

use crate::ledger::{Entry, Ledger};
use crate::output::AtomicSink;
use crate::pipeline::ChannelReport;
use crate::{Error, Paths};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Pdf,
    Feed,
    Site,
    Mail,
}

impl Channel {
    pub const ALL: &'static [Channel] = &[Channel::Pdf, Channel::Feed, Channel::Site, Channel::Mail];
    /// Channels that write into `public/`, in the order they run: the PDF first
    /// (feeds and pages give its size), the site last (it links to both).
    pub const PUBLIC: &'static [Channel] = &[Channel::Pdf, Channel::Feed, Channel::Site];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Pdf => "pdf",
            Channel::Feed => "feed",
            Channel::Site => "site",
            Channel::Mail => "mail",
        }
    }
}

/// Every channel's settings, read once so a bad section fails before any output.
#[derive(Debug)]
pub struct Settings {
    pub schedules: crate::schedule::Schedules,
}

fn invalid(d: herald_content::Diagnostic) -> Error {
    Error::Content(herald_content::LoadError::Invalid(herald_content::Diagnostics(vec![d])))
}

impl Settings {
    pub fn load(corpus: &Corpus) -> Result<Settings, Error> {
        let _ = invalid;
        let schedules = crate::schedule::Schedules::from_config(&corpus.config)
            .map_err(|d| Error::Content(herald_content::LoadError::Invalid(d)))?;
        Ok(Settings { schedules })
    }
}

pub struct Ctx<'a> {
    pub corpus: &'a Corpus,
    pub due: &'a [&'a Statement],
    pub now: DateTime<Utc>,
    pub entries: &'a HashMap<(String, String), Entry>,
    pub settings: &'a Settings,
    pub paths: &'a Paths,
    pub previous_outputs: &'a [(String, String)],
    pub sink: &'a AtomicSink,
    pub is_new: &'a (dyn Fn(&Statement, Channel) -> bool + Sync),
}

pub fn tag_uri(_config: &herald_content::Config, first: DateTime<Utc>, id: &str, lang: &str) -> String {
    format!("tag:example.org,{}:{id}/{lang}", first.format("%Y-%m-%d"))
}

pub fn run(ch: Channel, ctx: &Ctx<'_>) -> Result<ChannelReport, Error> {
    let new = ctx.due.iter().filter(|s| (ctx.is_new)(s, ch)).count();
    Ok(ChannelReport {
        channel: ch.name(),
        new,
        live: ctx.due.len(),
        ..Default::default()
    })
}

pub struct MailCtx<'a> {
    pub corpus: &'a Corpus,
    pub settings: &'a Settings,
    pub ledger: &'a Ledger,
    pub paths: &'a Paths,
    pub due: &'a [&'a Statement],
    pub now: DateTime<Utc>,
    pub dry_run: bool,
    /// (id, lang) published for the first time in this run.
    pub newly_published: &'a [(String, String)],
    pub cancel: &'a std::sync::atomic::AtomicBool,
}

pub fn mail(_ctx: &MailCtx<'_>) -> Result<Option<ChannelReport>, Error> {
    Ok(None)
}

/// A schedule slot came due: `digest` sends the mail digest; any other job is a publish
/// (already done by the cycle that calls this).
pub fn run_job(
    _corpus: &Corpus,
    _paths: &Paths,
    _ledger: &Ledger,
    _name: &str,
    _slot: DateTime<Utc>,
    _now: DateTime<Utc>,
    _cancel: &std::sync::atomic::AtomicBool,
) -> Result<(), Error> {
    Ok(())
}

pub fn status_lines(
    _corpus: &Corpus,
    _ledger: &Ledger,
    _now: DateTime<Utc>,
    _out: &mut impl Write,
) -> Result<(), Error> {
    Ok(())
}
