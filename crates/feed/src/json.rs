//! JSON Feed 1.1. Archive pages are chained with `next_url` (older entries), the
//! format's own pagination.

use herald_content::urls::FeedKind;
use serde::{Deserialize, Serialize};

use crate::EncodeError;
use crate::model::Doc;
use crate::text::{clean, rfc3339};

const KIND: FeedKind = FeedKind::Json;

#[derive(Serialize)]
struct Feed<'a> {
    version: &'static str,
    title: String,
    home_page_url: String,
    feed_url: String,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_url: Option<String>,
    authors: Vec<Author<'a>>,
    language: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<Hub<'a>>,
    items: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Author<'a> {
    name: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
}

#[derive(Serialize)]
struct Hub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct Item<'a> {
    id: &'a str,
    url: &'a str,
    title: &'a str,
    content_html: &'a str,
    #[serde(skip_serializing_if = "is_empty")]
    summary: &'a str,
    date_published: String,
    date_modified: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<Author<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<std::borrow::Cow<'a, str>>,
    language: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<Attachment<'a>>,
    /// herald's own extension (JSON Feed allows `_` names): see [`Herald`].
    #[serde(rename = "_herald")]
    herald: Herald,
}

/// `"_herald": {"html_key": ...}`: a digest of everything `content_html` is made
/// from (see `Item::html_key`). A reader may take a changed key as a possibly
/// changed body; herald takes an unchanged one as leave to keep the HTML.
#[derive(Serialize, Deserialize)]
struct Herald {
    html_key: String,
}

/// What a later run reads back of a JSON Feed document herald wrote.
#[derive(Deserialize)]
struct Written {
    items: Vec<WrittenItem>,
}

#[derive(Deserialize)]
struct WrittenItem {
    content_html: String,
    #[serde(rename = "_herald")]
    herald: Option<Herald>,
}

/// Each entry's HTML in a JSON Feed document herald wrote, by its HTML key.
/// Nothing from a document that does not parse: its entries are made again.
pub(crate) fn html_by_key(bytes: &[u8]) -> herald_content::fast::HashMap<u128, String> {
    let Ok(doc) = serde_json::from_slice::<Written>(bytes) else {
        return Default::default();
    };
    doc.items
        .into_iter()
        .filter_map(|i| {
            let key = u128::from_str_radix(&i.herald?.html_key, 16).ok()?;
            Some((key, i.content_html))
        })
        .collect()
}

#[derive(Serialize)]
struct Attachment<'a> {
    url: &'a str,
    mime_type: &'static str,
    title: &'a str,
    size_in_bytes: u64,
}

fn is_empty(s: &&str) -> bool {
    s.is_empty()
}

pub(crate) fn write(doc: &Doc<'_>) -> Result<Vec<u8>, EncodeError> {
    let site = doc.site;
    let org = &site.config.organization;
    // `next_url` leads to older entries: the newest archive page, then the one before.
    let next_url = doc.prev_archive(KIND);
    let feed = Feed {
        version: "https://jsonfeed.org/version/1.1",
        title: doc.title(),
        home_page_url: doc.home(),
        feed_url: doc.current_url(KIND),
        description: doc.description(),
        next_url,
        authors: vec![Author {
            name: clean(&org.name),
            url: org.url.as_deref(),
        }],
        language: doc.lang,
        hubs: site
            .hub
            .as_deref()
            .map(|url| Hub {
                kind: "WebSub",
                url,
            })
            .into_iter()
            .collect(),
        items: doc
            .items
            .iter()
            .map(|item| {
                let s = item.s;
                Item {
                    id: item.tag,
                    url: item.url(),
                    title: &item.title,
                    content_html: item.html(),
                    summary: &item.summary,
                    date_published: rfc3339(&item.published),
                    date_modified: rfc3339(&item.updated),
                    authors: s
                        .meta
                        .issuers
                        .iter()
                        .map(|n| Author {
                            name: clean(n),
                            url: None,
                        })
                        .collect(),
                    tags: s.meta.topics.iter().map(|t| clean(t)).collect(),
                    language: &s.lang,
                    attachments: item
                        .pdf()
                        .into_iter()
                        .map(|(url, len)| Attachment {
                            url,
                            mime_type: "application/pdf",
                            title: &item.title,
                            size_in_bytes: *len,
                        })
                        .collect(),
                    herald: Herald {
                        html_key: format!("{:032x}", item.html_key()),
                    },
                }
            })
            .collect(),
    };
    let mut out = Vec::with_capacity(doc.capacity());
    serde_json::to_writer_pretty(&mut out, &feed)?;
    out.push(b'\n');
    Ok(out)
}
