//! `content/herald.toml`: the site, its languages, time zone and organization.
//! Channel crates read their own sections (`[feed]`, `[pdf]`, `[mail]`, ...) through
//! [`Config::section`], so this crate never needs to know their settings.

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::diag::Diagnostic;

/// Sections that belong to channels; anything else at the top level is an error.
pub const SECTIONS: &[&str] = &["site", "feed", "pdf", "mail", "schedule", "serve"];

#[derive(Debug, Clone)]
pub struct Config {
    pub title: String,
    /// Always ends with `/`.
    pub base_url: String,
    /// Language codes in the order the site lists them; the first is not special,
    /// `default_language` is.
    pub languages: Vec<String>,
    pub default_language: String,
    pub time_zone: Tz,
    pub organization: Organization,
    /// The file this came from, for error messages.
    pub path: PathBuf,
    source: String,
    /// The channel sections as parsed once with the file: `section` deserializes
    /// from these, never from the text again.
    sections: toml::Table,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    pub name: String,
    #[serde(default)]
    pub short_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
}

impl Organization {
    pub fn short(&self) -> &str {
        self.short_name.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    title: String,
    base_url: String,
    languages: Vec<String>,
    default_language: String,
    time_zone: String,
    organization: Organization,
    // Channel sections are read later by their owners.
    #[serde(default)]
    site: Option<toml::Table>,
    #[serde(default)]
    feed: Option<toml::Table>,
    #[serde(default)]
    pdf: Option<toml::Table>,
    #[serde(default)]
    mail: Option<toml::Table>,
    #[serde(default)]
    schedule: Option<toml::Table>,
    #[serde(default)]
    serve: Option<toml::Table>,
}

/// A BCP 47 language tag of the simple kind herald supports: `en`, `kk`, `pt-BR`, `zh-Hant`.
pub fn is_language_code(code: &str) -> bool {
    let mut parts = code.split('-');
    let Some(primary) = parts.next() else {
        return false;
    };
    if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_lowercase()) {
        return false;
    }
    parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl Config {
    /// Parse `herald.toml` text. `path` is used in messages only.
    pub fn parse(path: &Path, source: &str) -> Result<Config, Diagnostic> {
        let raw: Raw = toml::from_str(source).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            Diagnostic::at(
                "config",
                path,
                source,
                span,
                e.message().trim().to_string(),
                format!(
                    "herald.toml needs title, base_url, languages, default_language, time_zone and [organization]; channel settings go in {}",
                    SECTIONS
                        .iter()
                        .map(|s| format!("[{s}]"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let find = |key: &str| {
            let at = source
                .find(&format!("\n{key}"))
                .map(|i| i + 1)
                .or_else(|| source.starts_with(key).then_some(0))
                .unwrap_or(0);
            at..at + key.len()
        };
        let err = |key: &str, msg: String, hint: &str| {
            Diagnostic::at("config", path, source, find(key), msg, hint)
        };
        if raw.title.trim().is_empty() {
            return Err(err(
                "title",
                "title is empty".into(),
                "name the site, e.g. title = \"Statements\"",
            ));
        }
        let mut base_url = raw.base_url.trim().to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://"))
            || base_url.contains(char::is_whitespace)
        {
            return Err(err(
                "base_url",
                format!("base_url {base_url:?} is not an http(s) URL"),
                "give the public address of the site, e.g. base_url = \"https://statements.example.org/\"",
            ));
        }
        if !base_url.ends_with('/') {
            base_url.push('/');
        }
        if raw.languages.is_empty() {
            return Err(err(
                "languages",
                "no languages listed".into(),
                "list at least one, e.g. languages = [\"en\"]",
            ));
        }
        for (i, l) in raw.languages.iter().enumerate() {
            if !is_language_code(l) {
                return Err(err(
                    "languages",
                    format!("{l:?} is not a language code"),
                    "use lowercase BCP 47 codes such as \"en\", \"ru\", \"kk\"",
                ));
            }
            if raw.languages[..i].contains(l) {
                return Err(err(
                    "languages",
                    format!("{l:?} is listed twice"),
                    "list each language once",
                ));
            }
        }
        if !raw.languages.contains(&raw.default_language) {
            return Err(err(
                "default_language",
                format!(
                    "default_language {:?} is not in languages",
                    raw.default_language
                ),
                "pick one of the languages listed",
            ));
        }
        let time_zone: Tz = raw.time_zone.parse().map_err(|_| {
            err(
                "time_zone",
                format!("unknown time zone {:?}", raw.time_zone),
                "use an IANA zone name such as \"Asia/Almaty\" or \"Europe/Berlin\"",
            )
        })?;
        if raw.organization.name.trim().is_empty() {
            return Err(err(
                "[organization]",
                "organization name is empty".into(),
                "set name under [organization]",
            ));
        }
        let sections: toml::Table = [
            ("site", raw.site),
            ("feed", raw.feed),
            ("pdf", raw.pdf),
            ("mail", raw.mail),
            ("schedule", raw.schedule),
            ("serve", raw.serve),
        ]
        .into_iter()
        .filter_map(|(name, t)| Some((name.to_string(), toml::Value::Table(t?))))
        .collect();
        Ok(Config {
            sections,
            title: raw.title,
            base_url,
            languages: raw.languages,
            default_language: raw.default_language,
            time_zone,
            organization: raw.organization,
            path: path.to_path_buf(),
            source: source.to_string(),
        })
    }

    /// Read `path` (usually `content/herald.toml`).
    pub fn load(path: &Path) -> Result<Config, Diagnostic> {
        let bytes = std::fs::read(path).map_err(|e| {
            Diagnostic::file(
                "config",
                path,
                format!("cannot read: {e}"),
                "create content/herald.toml (see the README)",
            )
        })?;
        let source = String::from_utf8(bytes).map_err(|_| {
            Diagnostic::file("config", path, "not UTF-8", "save herald.toml as UTF-8")
        })?;
        Config::parse(path, &source)
    }

    /// A channel's own section, e.g. `config.section::<FeedSettings>("feed")`.
    /// Missing sections give `T::default()`; unknown keys are the channel's to refuse
    /// (use `#[serde(deny_unknown_fields)]`).
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, Diagnostic> {
        let header = format!("[{name}]");
        match self.sections.get(name) {
            None => Ok(T::default()),
            Some(value) => value.clone().try_into().map_err(|e: toml::de::Error| {
                let at = self.source.find(&header).unwrap_or(0);
                Diagnostic::at(
                    "config",
                    &self.path,
                    &self.source,
                    at..at + header.len(),
                    format!("in {header}: {}", e.message().trim()),
                    format!("see the README for the settings {header} accepts"),
                )
            }),
        }
    }

    /// The raw text of the file, for fingerprinting.
    pub fn source(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"title = "T"
base_url = "https://ex.org/news"
languages = ["en", "ru", "kk"]
default_language = "en"
time_zone = "Asia/Almaty"
[organization]
name = "Org"
[feed]
limit = 5
"#;

    #[test]
    fn parses_and_normalizes() {
        let c = Config::parse(Path::new("herald.toml"), OK).expect("valid");
        assert_eq!(c.base_url, "https://ex.org/news/");
        assert_eq!(c.time_zone, chrono_tz::Asia::Almaty);
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct Feed {
            limit: u32,
        }
        assert_eq!(c.section::<Feed>("feed").map(|f| f.limit), Ok(5));
        assert!(c.section::<Feed>("pdf").is_ok());
    }

    #[test]
    fn bad_zone_names_line() {
        let src = OK.replace("Asia/Almaty", "Mars/Olympus");
        let e = Config::parse(Path::new("herald.toml"), &src).expect_err("invalid");
        assert_eq!(e.line, 5);
        assert!(e.message.contains("Mars/Olympus"));
    }

    #[test]
    fn unknown_key_is_error() {
        let src = OK.replace("title = \"T\"", "title = \"T\"\ncolour = 1");
        let e = Config::parse(Path::new("herald.toml"), &src).expect_err("invalid");
        assert!(e.message.contains("colour"), "{e}");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn language_codes() {
        assert!(is_language_code("kk"));
        assert!(is_language_code("pt-BR"));
        assert!(!is_language_code("EN"));
        assert!(!is_language_code("english"));
    }
}
