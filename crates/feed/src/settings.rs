//! `[feed]` in `herald.toml`.

use herald_content::Config;
use serde::Deserialize;

use crate::FeedError;

/// The default number of entries in a subscription feed, and in each archive page.
pub const DEFAULT_LIMIT: usize = 50;
/// A feed larger than this is a mistake (readers time out on it).
pub const MAX_LIMIT: usize = 10_000;

/// The `[feed]` section. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedSettings {
    /// Write feeds (default true). When false, pages link no feed.
    pub enabled: bool,
    /// The `tag:` URI authority (RFC 4151) for new entry ids: a domain name or an
    /// e-mail address the organization owns. Defaults to the host of `base_url`.
    pub authority: Option<String>,
    /// A date (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`) on which the organization owned the
    /// authority, for the feeds' own ids. Unset, the feeds' ids take the authority
    /// and date of the oldest entry's id, so they too survive a change of `base_url`.
    pub since: Option<String>,
    /// Entries in a subscription feed, and in each RFC 5005 archive page.
    pub limit: usize,
    /// A WebSub hub to link (`rel="hub"`) and to ping after a publish.
    pub hub: Option<String>,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            authority: None,
            since: None,
            limit: DEFAULT_LIMIT,
            hub: None,
        }
    }
}

impl FeedSettings {
    /// Read and check `[feed]`.
    pub fn from_config(config: &Config) -> Result<Self, FeedError> {
        let s: FeedSettings = config
            .section("feed")
            .map_err(|d| FeedError::Config(Box::new(d)))?;
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), FeedError> {
        let bad = |key: &'static str, value: &str, hint: &'static str| FeedError::Setting {
            key,
            value: value.to_string(),
            hint,
        };
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(bad(
                "limit",
                &self.limit.to_string(),
                "give a number of entries from 1 to 10000, e.g. limit = 50",
            ));
        }
        if let Some(a) = &self.authority
            && !is_authority(a)
        {
            return Err(bad(
                "authority",
                a,
                "use a domain name or e-mail address you own, e.g. authority = \"statements.example.org\"",
            ));
        }
        if let Some(d) = &self.since
            && !is_tag_date(d)
        {
            return Err(bad(
                "since",
                d,
                "use a date on which you owned the authority: YYYY, YYYY-MM or YYYY-MM-DD",
            ));
        }
        if let Some(h) = &self.hub
            && !is_http_url(h)
        {
            return Err(bad(
                "hub",
                h,
                "give the hub's http(s) URL, e.g. hub = \"https://pubsubhubbub.appspot.com/\"",
            ));
        }
        Ok(())
    }

    /// The configured authority, or the host of `base_url`.
    pub fn authority(&self, config: &Config) -> String {
        match &self.authority {
            Some(a) => a.to_ascii_lowercase(),
            None => host_of(&config.base_url),
        }
    }
}

/// The host of an http(s) URL, lowercased, without port or user info.
pub(crate) fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = host.split(':').next().unwrap_or(host);
    host.to_ascii_lowercase()
}

/// RFC 4151 `authorityName`: a DNS name or an e-mail address.
pub fn is_authority(s: &str) -> bool {
    let (local, domain) = match s.split_once('@') {
        Some((l, d)) => (Some(l), d),
        None => (None, s),
    };
    let dns_ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let local_ok = local.is_none_or(|l| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
    });
    dns_ok && local_ok
}

/// RFC 4151 `date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
pub fn is_tag_date(s: &str) -> bool {
    let day = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok();
    match s.len() {
        4 => s.bytes().all(|b| b.is_ascii_digit()),
        7 => day(&format!("{s}-01")),
        10 => day(s),
        _ => false,
    }
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://"))
        && !host_of(s).is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(feed: &str) -> Config {
        let src = format!(
            "title = \"T\"\nbase_url = \"https://Statements.Example.org:8443/news\"\nlanguages = [\"en\"]\n\
             default_language = \"en\"\ntime_zone = \"UTC\"\n[organization]\nname = \"Org\"\n{feed}"
        );
        Config::parse(Path::new("herald.toml"), &src).expect("valid config")
    }

    #[test]
    fn defaults() {
        let c = config("");
        let s = FeedSettings::from_config(&c).expect("defaults");
        assert_eq!(s, FeedSettings::default());
        assert_eq!(s.limit, 50);
        assert_eq!(s.authority(&c), "statements.example.org");
    }

    #[test]
    fn reads_every_key() {
        let c = config(
            "[feed]\nauthority = \"press@un.example\"\nsince = \"2006-05\"\nlimit = 7\nhub = \"https://hub.example/\"\n",
        );
        let s = FeedSettings::from_config(&c).expect("valid");
        assert_eq!(s.limit, 7);
        assert_eq!(s.authority(&c), "press@un.example");
        assert_eq!(s.since.as_deref(), Some("2006-05"));
        assert_eq!(s.hub.as_deref(), Some("https://hub.example/"));
    }

    #[test]
    fn refuses_bad_values() {
        for (feed, key) in [
            ("limit = 0", "limit"),
            ("authority = \"not a domain\"", "authority"),
            ("authority = \"-x.org\"", "authority"),
            ("since = \"2014-13\"", "since"),
            ("since = \"14\"", "since"),
            ("hub = \"ftp://hub\"", "hub"),
        ] {
            let c = config(&format!("[feed]\n{feed}\n"));
            match FeedSettings::from_config(&c) {
                Err(FeedError::Setting { key: k, .. }) => assert_eq!(k, key, "{feed}"),
                other => panic!("{feed}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_unknown_keys() {
        let c = config("[feed]\nlimt = 5\n");
        let e = FeedSettings::from_config(&c).expect_err("unknown key");
        assert!(e.to_string().contains("limt"), "{e}");
    }
}
