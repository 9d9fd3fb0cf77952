//! What a page says about itself to machines: OpenGraph and Twitter card tags for
//! link previews, and one schema.org `NewsArticle` as JSON-LD per statement page.
//! Data only: the JSON-LD block is `application/ld+json`, which browsers never run,
//! and its text cannot close the element (every `<` is written as `\u003c`).

use serde::Serialize;
use serde_json::{Value as Json, json};

/// One `<meta>` of the head: `attr` is `property` (OpenGraph) or `name` (Twitter).
#[derive(Debug, Serialize)]
pub struct MetaTag {
    pub attr: &'static str,
    pub key: &'static str,
    pub content: String,
}

/// The OpenGraph locale (`ll_CC`) of a language code; region-less codes get the
/// region their readers most often mean.
pub fn og_locale(lang: &str) -> String {
    let known = match lang {
        "en" => "en_US",
        "ru" => "ru_RU",
        "kk" => "kk_KZ",
        "ky" => "ky_KG",
        "uz" => "uz_UZ",
        "tg" => "tg_TJ",
        "tk" => "tk_TM",
        "fr" => "fr_FR",
        "es" => "es_ES",
        "de" => "de_DE",
        "ar" => "ar_AR",
        "zh" => "zh_CN",
        "fa" => "fa_IR",
        "he" => "he_IL",
        "ur" => "ur_PK",
        "tr" => "tr_TR",
        "pt" => "pt_PT",
        _ => "",
    };
    if known.is_empty() {
        lang.replace('-', "_")
    } else {
        known.to_string()
    }
}

/// Builds the tag list in a fixed order.
#[derive(Default)]
pub struct Tags(pub Vec<MetaTag>);

impl Tags {
    pub fn og(&mut self, key: &'static str, content: impl Into<String>) -> &mut Self {
        self.0.push(MetaTag {
            attr: "property",
            key,
            content: content.into(),
        });
        self
    }

    pub fn twitter(&mut self, key: &'static str, content: impl Into<String>) -> &mut Self {
        self.0.push(MetaTag {
            attr: "name",
            key,
            content: content.into(),
        });
        self
    }
}

/// A preview image as the tags describe it (absolute URL).
pub struct ImageTag<'a> {
    pub url: String,
    pub width: u32,
    pub height: u32,
    pub alt: &'a str,
}

/// What the common tags of a page say.
pub struct Page<'a> {
    /// `article` or `website`.
    pub kind: &'static str,
    pub site_name: &'a str,
    pub title: &'a str,
    pub description: Option<&'a str>,
    /// Absolute, the canonical URL.
    pub url: &'a str,
    pub lang: &'a str,
    /// The other languages the page exists in.
    pub alternates: &'a [&'a str],
    pub image: Option<&'a ImageTag<'a>>,
}

/// Tags every page has: site name, type, title, URL, locale and alternates, image.
pub fn common(tags: &mut Tags, page: &Page<'_>) {
    let Page {
        kind,
        site_name,
        title,
        description,
        url,
        lang,
        alternates,
        image,
    } = *page;
    tags.og("og:type", kind)
        .og("og:site_name", site_name)
        .og("og:title", title);
    if let Some(d) = description.filter(|d| !d.is_empty()) {
        tags.og("og:description", d);
    }
    tags.og("og:url", url).og("og:locale", og_locale(lang));
    for a in alternates {
        tags.og("og:locale:alternate", og_locale(a));
    }
    if let Some(img) = image {
        tags.og("og:image", img.url.clone())
            .og("og:image:type", "image/png")
            .og("og:image:width", img.width.to_string())
            .og("og:image:height", img.height.to_string())
            .og("og:image:alt", img.alt);
    }
    let card = if image.is_some() {
        "summary_large_image"
    } else {
        "summary"
    };
    tags.twitter("twitter:card", card)
        .twitter("twitter:title", title);
    if let Some(d) = description.filter(|d| !d.is_empty()) {
        tags.twitter("twitter:description", d);
    }
    if let Some(img) = image {
        tags.twitter("twitter:image", img.url.clone())
            .twitter("twitter:image:alt", img.alt);
    }
}

/// JSON as the text of a `<script type="application/ld+json">` element: `<`, `>`
/// and `&` as `\u` escapes (still the same JSON), so no `</script>` or `<!--` can
/// end or change the element whatever a title holds.
pub fn script_json(value: &Json) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            // Valid in JSON, but line terminators in older JavaScript parsers.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// An organization as schema.org names it.
pub fn organization(name: &str, url: Option<&str>) -> Json {
    let mut o = json!({ "@type": "Organization", "name": name });
    if let Some(u) = url {
        o["url"] = json!(u);
    }
    o
}

/// A reference to another language version of the same statement.
pub fn article_ref(url: &str, lang: &str, headline: &str) -> Json {
    json!({
        "@type": "NewsArticle",
        "@id": format!("{url}#article"),
        "url": url,
        "inLanguage": lang,
        "headline": headline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_break_out() {
        let v = json!({ "headline": "</script><script>alert(1)</script> <!-- & \u{2028}" });
        let s = script_json(&v);
        assert!(
            !s.contains('<') && !s.contains('>') && !s.contains('&'),
            "{s}"
        );
        // Still the same JSON.
        let back: Json = serde_json::from_str(&s).expect("valid JSON");
        assert_eq!(back, v);
    }

    #[test]
    fn locales() {
        assert_eq!(og_locale("kk"), "kk_KZ");
        assert_eq!(og_locale("pt-BR"), "pt_BR");
        assert_eq!(og_locale("xx"), "xx");
    }
}
