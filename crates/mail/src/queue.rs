//! Queueing: a pending ledger row per recipient of a newly published statement,
//! of a correction, or of a digest slot, in chunks and idempotently.

use chrono::{DateTime, Utc};
use herald_content::{Corpus, Statement};

use crate::compose::message_id;
use crate::deliver::DeliverError;
use crate::settings::MailSettings;
use crate::store::{BulletinKind, MailStore, NewBulletin, Status, StoreError, Subscriber};

/// The domain of the sender, for Message-IDs.
pub(crate) fn sender_domain(corpus: &Corpus, settings: &MailSettings) -> String {
    let from = settings
        .from
        .as_deref()
        .or(corpus.config.organization.email.as_deref())
        .unwrap_or("");
    from.trim()
        .trim_end_matches('>')
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .filter(|d| {
            !d.is_empty()
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        })
        .unwrap_or_else(|| "herald.invalid".into())
}

/// The translation a subscriber reads: theirs, else the default language's, else
/// the first there is.
pub(crate) fn pick<'a>(
    versions: &[&'a Statement],
    lang: &str,
    default: &str,
) -> Option<&'a Statement> {
    versions
        .iter()
        .find(|s| s.lang == lang)
        .or_else(|| versions.iter().find(|s| s.lang == default))
        .or_else(|| versions.first())
        .copied()
}

/// The statements of `statements` by id (sorted), each with its due translations
/// that are to be mailed, their topics and when it was published.
struct Group<'a> {
    id: &'a str,
    versions: Vec<&'a Statement>,
    topics: Vec<String>,
    published: DateTime<Utc>,
}

impl Group<'_> {
    /// Whether `sub` should get it: their topics match, and they consented before
    /// it was published.
    fn is_for(&self, sub: &Subscriber) -> bool {
        sub.wants(&self.topics) && sub.consent_at.is_none_or(|c| c <= self.published)
    }
}

fn groups<'a>(
    corpus: &'a Corpus,
    statements: &[&'a Statement],
    now: DateTime<Utc>,
) -> Vec<Group<'a>> {
    let mut ids: Vec<&str> = statements.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let by_id = corpus.by_id();
    ids.into_iter()
        .filter_map(|id| {
            let versions: Vec<&Statement> = by_id
                .get(id)?
                .iter()
                .copied()
                .filter(|s| s.is_due(now) && s.meta.bulletin)
                .collect();
            let published = versions.first()?.meta.publish_at.with_timezone(&Utc);
            let mut topics: Vec<String> = versions
                .iter()
                .flat_map(|s| s.meta.topics.iter().cloned())
                .collect();
            topics.sort();
            topics.dedup();
            Some(Group {
                id,
                versions,
                topics,
                published,
            })
        })
        .collect()
}

/// Record a pending bulletin for every confirmed subscriber who should get each of
/// `statements` (newly published ones, any language version), in their language.
/// Idempotent: a subscriber already queued for a statement is never queued again,
/// and nobody gets a statement published before they consented. Returns how many
/// rows were added.
pub fn queue(
    store: &MailStore,
    corpus: &Corpus,
    settings: &MailSettings,
    statements: &[&Statement],
    now: DateTime<Utc>,
) -> Result<usize, DeliverError> {
    if !settings.enabled {
        return Ok(0);
    }
    let subscribers = store.subscribers(Some(Status::Confirmed))?;
    if subscribers.is_empty() {
        // Nobody to queue for: spare a lookup per statement (a first publish has thousands).
        return Ok(0);
    }
    let domain = sender_domain(corpus, settings);
    let mut batch = Batch::new(store, now);
    for group in groups(corpus, statements, now) {
        let (id, versions) = (group.id, &group.versions);
        let done = store.first_queued(id)?;
        for sub in &subscribers {
            if !group.is_for(sub) {
                continue;
            }
            let Some(s) = pick(versions, &sub.lang, &corpus.config.default_language) else {
                continue;
            };
            // Had it already: only a correction goes out, when configured, and only
            // for an `updated` later than their first bulletin (a typo fix that keeps
            // `updated` sends nothing); once per `updated` (the row is unique).
            let (kind, version) = match (done.get(&sub.id), s.meta.updated) {
                (None, _) => (BulletinKind::Bulletin, s.digest.clone()),
                (Some(first), Some(updated))
                    if settings.corrections && updated.with_timezone(&Utc) > *first =>
                {
                    (BulletinKind::Correction, updated.to_rfc3339())
                }
                (Some(_), _) => continue,
            };
            // Message-IDs are derived as before the `kind` column, so they stay stable.
            let mid = match kind {
                BulletinKind::Correction => format!("correction:{version}"),
                _ => version.clone(),
            };
            batch.push(NewBulletin {
                kind,
                statement_id: id.to_string(),
                message_id: message_id(id, &mid, sub.id, &domain),
                version,
                lang: s.lang.clone(),
                subscriber_id: sub.id,
                address: sub.address.clone(),
                ..NewBulletin::default()
            })?;
        }
    }
    batch.finish()
}

/// Rows go to the store in chunks, so 100,000 recipients never sit in memory at
/// once; each insert is idempotent, so a crash between chunks loses nothing.
pub(crate) struct Batch<'a> {
    store: &'a MailStore,
    now: DateTime<Utc>,
    rows: Vec<NewBulletin>,
    added: usize,
}

impl<'a> Batch<'a> {
    pub(crate) const CHUNK: usize = 4096;

    fn new(store: &'a MailStore, now: DateTime<Utc>) -> Batch<'a> {
        Batch {
            store,
            now,
            rows: Vec::with_capacity(Self::CHUNK),
            added: 0,
        }
    }

    fn push(&mut self, row: NewBulletin) -> Result<(), StoreError> {
        self.rows.push(row);
        if self.rows.len() == Self::CHUNK {
            self.added += self.store.queue_bulletins(&self.rows, self.now)?;
            self.rows.clear();
        }
        Ok(())
    }

    /// How many rows were new.
    fn finish(self) -> Result<usize, DeliverError> {
        Ok(self.added + self.store.queue_bulletins(&self.rows, self.now)?)
    }
}

/// The ledger key of the digest for one schedule slot: the slot, RFC 3339 in UTC
/// (a digest row's `slot`).
pub fn digest_key(slot: DateTime<Utc>) -> String {
    slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Record a pending digest for every confirmed subscriber who should get at least
/// one of `statements` (due versions, any language; the pipeline passes those no
/// bulletin or digest has carried yet): one message listing them, each in the
/// subscriber's language where a translation exists. `key` is the slot as
/// [`digest_key`] writes it. Idempotent per `key`: a
/// subscriber already queued for this digest is never queued again. Returns how
/// many rows were added.
pub fn queue_digest(
    store: &MailStore,
    corpus: &Corpus,
    settings: &MailSettings,
    key: &str,
    statements: &[&Statement],
    now: DateTime<Utc>,
) -> Result<usize, DeliverError> {
    if !settings.enabled {
        return Ok(0);
    }
    let mut items = groups(corpus, statements, now);
    // Newest first, as on the site's index.
    items.sort_by(|a, b| b.published.cmp(&a.published).then(a.id.cmp(b.id)));
    if items.is_empty() {
        return Ok(0);
    }
    let subscribers = store.subscribers(Some(Status::Confirmed))?;
    let domain = sender_domain(corpus, settings);
    let done = store.digested(key)?;
    let legacy_key = format!("digest:{key}");
    let mut batch = Batch::new(store, now);
    for sub in &subscribers {
        if done.contains(&sub.id) {
            continue;
        }
        let ids: Vec<String> = items
            .iter()
            .filter(|i| i.is_for(sub))
            .map(|i| i.id.to_string())
            .collect();
        if ids.is_empty() {
            continue;
        }
        batch.push(NewBulletin {
            kind: BulletinKind::Digest,
            message_id: message_id(&legacy_key, &ids.join(" "), sub.id, &domain),
            slot: key.to_string(),
            statements: ids,
            lang: sub.lang.clone(),
            subscriber_id: sub.id,
            address: sub.address.clone(),
            ..NewBulletin::default()
        })?;
    }
    batch.finish()
}
