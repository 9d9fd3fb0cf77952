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
pub struct Settings {}

impl Settings {
    pub fn load(_corpus: &Corpus) -> Result<Settings, Error> {
        Ok(Settings {})
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

#[allow(clippy::too_many_arguments)]
pub fn mail(
    _corpus: &Corpus,
    _settings: &Settings,
    _ledger: &Ledger,
    _paths: &Paths,
    _due: &[&Statement],
    _now: DateTime<Utc>,
    _dry_run: bool,
    _is_new: &(dyn Fn(&Statement, Channel) -> bool + Sync),
) -> Result<Option<ChannelReport>, Error> {
    Ok(None)
}

pub fn status_lines(
    _corpus: &Corpus,
    _ledger: &Ledger,
    _now: DateTime<Utc>,
    _out: &mut impl Write,
) -> Result<(), Error> {
    Ok(())
}
