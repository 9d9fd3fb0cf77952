//! RSS 2.0 as the RSS Advisory Board's specification and Best Practices Profile
//! ask, with Atom self/hub links and RFC 5005 archive links.

use herald_content::urls::FeedKind;

use crate::EncodeError;
use crate::atom::{FH, NS as ATOM, archive_links};
use crate::model::Doc;
use crate::text::{rfc822, rfc3339};
use crate::xml::Xml;
use quick_xml::escape::partial_escape;

const KIND: FeedKind = FeedKind::Rss;
const CONTENT: &str = "http://purl.org/rss/1.0/modules/content/";
const DC: &str = "http://purl.org/dc/elements/1.1/";
const DCTERMS: &str = "http://purl.org/dc/terms/";

pub(crate) fn write(doc: &Doc<'_>) -> Result<Vec<u8>, EncodeError> {
    let site = doc.site;
    let org = &site.config.organization;
    let mut x = Xml::new(doc.capacity() * 5 / 4, Some(&doc.stylesheet(KIND)))?;
    x.start(
        "rss",
        &[
            ("version", "2.0"),
            ("xmlns:atom", ATOM),
            ("xmlns:content", CONTENT),
            ("xmlns:dc", DC),
            ("xmlns:dcterms", DCTERMS),
            ("xmlns:fh", FH),
        ],
    )?;
    x.start("channel", &[("xml:lang", doc.lang)])?;
    x.text("title", &[], &doc.title())?;
    x.text("link", &[], &doc.home())?;
    x.text("description", &[], &doc.description())?;
    x.text("language", &[], doc.lang)?;
    if let Some(email) = &org.email {
        // RSS wants an e-mail address here, optionally followed by a name.
        let who = format!("{email} ({})", org.name);
        x.text("managingEditor", &[], &who)?;
        x.text("webMaster", &[], &who)?;
    }
    if !doc.items.is_empty() {
        x.text("pubDate", &[], &rfc822(&doc.published()))?;
    }
    x.text("lastBuildDate", &[], &rfc822(&doc.updated()))?;
    x.text("docs", &[], "https://www.rssboard.org/rss-specification")?;
    x.text(
        "generator",
        &[],
        concat!("herald ", env!("CARGO_PKG_VERSION")),
    )?;
    let self_url = doc.url(KIND);
    x.empty(
        "atom:link",
        &[("href", &self_url), ("rel", "self"), ("type", KIND.mime())],
    )?;
    if let Some(hub) = &site.hub {
        x.empty("atom:link", &[("href", hub), ("rel", "hub")])?;
    }
    archive_links(&mut x, doc, KIND)?;

    for item in &doc.items {
        let s = item.s;
        x.start("item", &[("xml:lang", &s.lang)])?;
        // Validation refuses empty titles; should one come, RSS would rather have none.
        if !item.title.is_empty() {
            x.text("title", &[], &item.title)?;
        }
        x.text("link", &[], item.url())?;
        // `description` is HTML: the plain summary is escaped as HTML text first
        // (`&`, `<`, `>`), then as XML by the writer. One escape per layer.
        if !item.summary.is_empty() {
            x.text("description", &[], &partial_escape(item.summary.as_ref()))?;
        }
        x.text("content:encoded", &[], item.html())?;
        // Names go in dc:creator: RSS `author` must be an e-mail address.
        for issuer in &s.meta.issuers {
            x.text("dc:creator", &[], issuer)?;
        }
        for topic in &s.meta.topics {
            x.text("category", &[], topic)?;
        }
        if let Some((url, len)) = item.pdf() {
            x.empty(
                "enclosure",
                &[
                    ("url", url),
                    ("length", &len.to_string()),
                    ("type", "application/pdf"),
                ],
            )?;
        }
        x.text("guid", &[("isPermaLink", "false")], item.tag)?;
        x.text("pubDate", &[], &rfc822(&item.published))?;
        if item.updated != item.published {
            x.text("dcterms:modified", &[], &rfc3339(&item.updated))?;
        }
        x.end("item")?;
    }
    x.end("channel")?;
    x.end("rss")?;
    Ok(x.finish())
}
