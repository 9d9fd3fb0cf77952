//! Atom 1.0 (RFC 4287) with RFC 5005 archive links.

use herald_content::urls::FeedKind;

use crate::EncodeError;
use crate::model::{Doc, Page};
use crate::text::rfc3339;
use crate::xml::Xml;

pub(crate) const NS: &str = "http://www.w3.org/2005/Atom";
pub(crate) const FH: &str = "http://purl.org/syndication/history/1.0";
const KIND: FeedKind = FeedKind::Atom;

pub(crate) fn write(doc: &Doc<'_>) -> Result<Vec<u8>, EncodeError> {
    let site = doc.site;
    let config = site.config;
    let mut x = Xml::new(doc.capacity(), Some(&doc.stylesheet(KIND)))?;
    x.start(
        "feed",
        &[("xmlns", NS), ("xmlns:fh", FH), ("xml:lang", doc.lang)],
    )?;
    x.text("title", &[("type", "text")], &doc.title())?;
    x.text("subtitle", &[("type", "text")], &doc.description())?;
    x.text("id", &[], &doc.id())?;
    x.text("updated", &[], &rfc3339(&doc.updated()))?;
    let self_url = doc.url(KIND);
    x.empty(
        "link",
        &[("rel", "self"), ("type", KIND.mime()), ("href", &self_url)],
    )?;
    let home = doc.home();
    x.empty(
        "link",
        &[
            ("rel", "alternate"),
            ("type", "text/html"),
            ("hreflang", doc.lang),
            ("href", &home),
        ],
    )?;
    if let Some(hub) = &site.hub {
        x.empty("link", &[("rel", "hub"), ("href", hub)])?;
    }
    archive_links(&mut x, doc, KIND)?;
    x.start("author", &[])?;
    x.text("name", &[], &config.organization.name)?;
    if let Some(email) = &config.organization.email {
        x.text("email", &[], email)?;
    }
    if let Some(url) = &config.organization.url {
        x.text("uri", &[], url)?;
    }
    x.end("author")?;
    x.text(
        "generator",
        &[("version", env!("CARGO_PKG_VERSION"))],
        "herald",
    )?;

    for item in &doc.items {
        let s = item.s;
        x.start("entry", &[("xml:lang", &s.lang)])?;
        x.text("title", &[("type", "text")], &item.title)?;
        x.text("id", &[], item.tag)?;
        x.text("published", &[], &rfc3339(&item.published))?;
        x.text("updated", &[], &rfc3339(&item.updated))?;
        for issuer in &s.meta.issuers {
            x.start("author", &[])?;
            x.text("name", &[], issuer)?;
            x.end("author")?;
        }
        for topic in &s.meta.topics {
            x.empty("category", &[("term", topic)])?;
        }
        x.empty(
            "link",
            &[
                ("rel", "alternate"),
                ("type", "text/html"),
                ("hreflang", &s.lang),
                ("href", item.url()),
            ],
        )?;
        // Translations: the same media type with its charset parameter, so that
        // readers which take the last `text/html` alternate as the entry's link
        // (Python's feedparser) still open the page in the feed's language.
        for (lang, url) in item.translations() {
            x.empty(
                "link",
                &[
                    ("rel", "alternate"),
                    ("type", "text/html; charset=utf-8"),
                    ("hreflang", lang),
                    ("href", url),
                ],
            )?;
        }
        if let Some((url, len)) = item.pdf() {
            x.empty(
                "link",
                &[
                    ("rel", "enclosure"),
                    ("type", "application/pdf"),
                    ("length", &len.to_string()),
                    ("hreflang", &s.lang),
                    ("href", url),
                ],
            )?;
        }
        if !item.summary.is_empty() {
            x.text("summary", &[("type", "text")], &item.summary)?;
        }
        x.text("content", &[("type", "html")], item.html())?;
        x.end("entry")?;
    }
    x.end("feed")?;
    Ok(x.finish())
}

/// RFC 5005 links; the `atom:` prefix is used when the host format is RSS.
pub(crate) fn archive_links(x: &mut Xml, doc: &Doc<'_>, kind: FeedKind) -> std::io::Result<()> {
    let link = if kind == FeedKind::Atom {
        "link"
    } else {
        "atom:link"
    };
    if let Page::Archive { .. } = doc.page {
        x.empty("fh:archive", &[])?;
        x.empty(
            link,
            &[("rel", "current"), ("href", &doc.current_url(kind))],
        )?;
    }
    if let Some(prev) = doc.prev_archive(kind) {
        x.empty(link, &[("rel", "prev-archive"), ("href", &prev)])?;
    }
    if let Some(next) = doc.next_archive(kind) {
        x.empty(link, &[("rel", "next-archive"), ("href", &next)])?;
    }
    Ok(())
}
