//! The few pages this service renders itself. Plain HTML forms that work without
//! JavaScript, styled by the site's own stylesheet; no inline scripts or styles,
//! so the Content-Security-Policy can forbid both.

use herald_content::html::escape;
use herald_content::l10n::{self, TopicNames};
use herald_content::urls::STYLESHEET;

use crate::csrf::FIELD;

/// What the forms offer: the site's languages and the topics of what is published.
#[derive(Debug, Clone, Default)]
pub struct SiteInfo {
    pub title: String,
    pub languages: Vec<String>,
    pub default_language: String,
    /// Sorted, unique.
    pub topics: Vec<String>,
    /// `[site.topic_names]`: the names the site shows, so the form says the same.
    pub topic_names: TopicNames,
}

/// The language of these pages (the issue keeps them in English), for topic names.
const PAGE_LANG: &str = "en";

/// A whole page around `body` (already HTML).
pub fn page(site: &SiteInfo, title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"robots\" content=\"noindex\">\n<title>{title} — {site}</title>\n\
<link rel=\"stylesheet\" href=\"/{STYLESHEET}\">\n</head>\n<body>\n\
<header><p><a href=\"/{lang}/\">{site}</a></p></header>\n<main id=\"main\">\n<h1>{title}</h1>\n{body}</main>\n</body>\n</html>\n",
        title = escape(title),
        site = escape(&site.title),
        lang = escape(&site.default_language),
    )
}

/// A page that only says something: `paragraphs` are plain text.
pub fn message(site: &SiteInfo, title: &str, paragraphs: &[&str]) -> String {
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<p>{}</p>\n", escape(p)))
        .collect();
    page(site, title, &body)
}

fn language_select(site: &SiteInfo, chosen: &str) -> String {
    let mut out = String::from(
        "<p><label for=\"lang\">Language</label>\n<select id=\"lang\" name=\"lang\">\n",
    );
    for l in &site.languages {
        out.push_str(&format!(
            "<option value=\"{code}\" lang=\"{code}\"{sel}>{name}</option>\n",
            code = escape(l),
            name = escape(l10n::language_name(l)),
            sel = if l == chosen { " selected" } else { "" },
        ));
    }
    out.push_str("</select></p>\n");
    out
}

fn topic_boxes(site: &SiteInfo, chosen: &[String]) -> String {
    if site.topics.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("<fieldset>\n<legend>Topics (none chosen: all statements)</legend>\n");
    for t in &site.topics {
        out.push_str(&format!(
            "<p><label><input type=\"checkbox\" name=\"topics\" value=\"{v}\"{c}> {name}</label></p>\n",
            v = escape(t),
            name = escape(&site.topic_names.name(PAGE_LANG, t, &site.default_language)),
            c = if chosen.contains(t) { " checked" } else { "" },
        ));
    }
    out.push_str("</fieldset>\n");
    out
}

/// The subscribe form, with what the reader already entered and why it was not accepted.
pub fn subscribe_form(
    site: &SiteInfo,
    csrf: &str,
    email: &str,
    lang: &str,
    topics: &[String],
    problem: Option<&str>,
) -> String {
    let mut body = String::new();
    if let Some(p) = problem {
        body.push_str(&format!(
            "<p role=\"alert\"><strong>{}</strong></p>\n",
            escape(p)
        ));
    }
    body.push_str(
        "<p>Statements are sent by email as they are published. You will receive a mail \
with a link to confirm the subscription; nothing is sent before you confirm.</p>\n",
    );
    body.push_str(&format!(
        "<form method=\"post\" action=\"/subscribe\">\n<input type=\"hidden\" name=\"{FIELD}\" value=\"{csrf}\">\n\
<p><label for=\"email\">Email address</label>\n\
<input id=\"email\" name=\"email\" type=\"email\" required autocomplete=\"email\" value=\"{email}\"></p>\n",
        csrf = escape(csrf),
        email = escape(email),
    ));
    body.push_str(&language_select(site, lang));
    body.push_str(&topic_boxes(site, topics));
    body.push_str("<p><button type=\"submit\" id=\"subscribe\">Subscribe</button></p>\n</form>\n");
    page(site, "Subscribe by email", &body)
}

/// The page a confirmation link opens: one button, so that mail scanners that
/// follow links do not confirm on the reader's behalf.
pub fn confirm_form(site: &SiteInfo, token: &str) -> String {
    let body = format!(
        "<p>Press the button to confirm your subscription.</p>\n\
<form method=\"post\" action=\"/confirm\">\n<input type=\"hidden\" name=\"token\" value=\"{}\">\n\
<p><button type=\"submit\" id=\"confirm\">Confirm my subscription</button></p>\n</form>\n",
        escape(token)
    );
    page(site, "Confirm your subscription", &body)
}

/// The page an unsubscribe link opens (GET): a button that posts the RFC 8058
/// one-click body to the same URL, and a way to change preferences instead.
pub fn unsubscribe_form(site: &SiteInfo, action: &str, preferences: &str) -> String {
    let body = format!(
        "<p>Press the button to stop receiving statements by email.</p>\n\
<form method=\"post\" action=\"{action}\">\n\
<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\n\
<p><button type=\"submit\" id=\"unsubscribe\">Unsubscribe</button></p>\n</form>\n\
<p>Or <a href=\"{preferences}\">change your language and topics</a>.</p>\n",
        action = escape(action),
        preferences = escape(preferences),
    );
    page(site, "Unsubscribe", &body)
}

pub fn preferences_form(
    site: &SiteInfo,
    csrf: &str,
    token: &str,
    address: &str,
    lang: &str,
    topics: &[String],
    notice: Option<&str>,
) -> String {
    let mut body = String::new();
    if let Some(n) = notice {
        body.push_str(&format!(
            "<p role=\"status\"><strong>{}</strong></p>\n",
            escape(n)
        ));
    }
    body.push_str(&format!(
        "<p>Subscription of <strong>{address}</strong>.</p>\n\
<form method=\"post\" action=\"/preferences\">\n<input type=\"hidden\" name=\"{FIELD}\" value=\"{csrf}\">\n\
<input type=\"hidden\" name=\"token\" value=\"{token}\">\n",
        address = escape(address),
        csrf = escape(csrf),
        token = escape(token),
    ));
    body.push_str(&language_select(site, lang));
    body.push_str(&topic_boxes(site, topics));
    body.push_str("<p><button type=\"submit\" id=\"save\">Save</button></p>\n</form>\n");
    page(site, "Your subscription", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_escape_what_readers_typed() {
        let site = SiteInfo {
            title: "T".into(),
            languages: vec!["en".into(), "ru".into()],
            default_language: "en".into(),
            topics: vec!["human-rights".into(), "health".into()],
            topic_names: TopicNames(
                [(
                    "health".to_string(),
                    [("en".to_string(), "Health <i>care</i>".to_string())].into(),
                )]
                .into(),
            ),
        };
        let html = subscribe_form(
            &site,
            "tok",
            "\"><script>x</script>",
            "ru",
            &["human-rights".into()],
            Some("<b>"),
        );
        assert!(!html.contains("<script>x"));
        assert!(html.contains("&lt;b&gt;"));
        assert!(html.contains("value=\"ru\" lang=\"ru\" selected"));
        assert!(html.contains("value=\"human-rights\" checked> Human rights"));
        // Names from `[site.topic_names]`, escaped like everything else.
        assert!(html.contains("value=\"health\"> Health &lt;i&gt;care&lt;/i&gt;</label>"));
        assert!(html.contains("name=\"csrf\" value=\"tok\""));
    }
}
