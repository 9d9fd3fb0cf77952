//! One localisation for every channel: dates and month names, language names,
//! topic names (`[site.topic_names]`) and the interface labels that the site, the
//! PDF, the mail and `herald serve` show. A bulletin, a page and a PDF of the same
//! statement therefore say the same date in the same words. English is the
//! fallback for any language without its own table.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The primary subtag: `pt` for `pt-BR`.
pub fn primary(lang: &str) -> &str {
    lang.split('-').next().unwrap_or(lang)
}

// ---- interface labels ----

/// Every interface string a template may use, as `t.<name>`.
#[derive(Debug, Serialize)]
pub struct Strings {
    pub skip: &'static str,
    pub statements: &'static str,
    pub topics: &'static str,
    pub all_topics: &'static str,
    pub topic: &'static str,
    pub languages: &'static str,
    pub translations: &'static str,
    pub date: &'static str,
    pub place: &'static str,
    pub issuers: &'static str,
    pub occasion: &'static str,
    pub updated: &'static str,
    pub correction: &'static str,
    pub download_pdf: &'static str,
    pub pdf_signed_by: &'static str,
    pub signed_manifest: &'static str,
    pub follow: &'static str,
    pub feeds_for_topic: &'static str,
    pub subscribe: &'static str,
    pub subscribe_intro: &'static str,
    pub email: &'static str,
    pub language: &'static str,
    pub subscribe_button: &'static str,
    pub pages: &'static str,
    /// `{n}` and `{total}` are replaced.
    pub page_of: &'static str,
    pub newer: &'static str,
    pub older: &'static str,
    pub none_yet: &'static str,
    pub statement_count: &'static str,
    /// The year list on index pages.
    pub years: &'static str,
    /// A year page's heading; `{year}` is replaced.
    pub year_title: &'static str,
}

const EN: Strings = Strings {
    skip: "Skip to content",
    statements: "Statements",
    topics: "Topics",
    all_topics: "All topics",
    topic: "Topic",
    languages: "Languages",
    translations: "This statement in other languages",
    date: "Date",
    place: "Place",
    issuers: "Issued by",
    occasion: "Occasion",
    updated: "Updated",
    correction: "This statement was corrected after publication. Last update:",
    download_pdf: "Download PDF",
    pdf_signed_by: "The PDF is digitally signed by",
    signed_manifest: "signed list of published files",
    follow: "Follow",
    feeds_for_topic: "Feeds for this topic",
    subscribe: "Subscribe by email",
    subscribe_intro: "Receive new statements by email. We will send a link to confirm your address; every bulletin has a link to unsubscribe.",
    email: "Email address",
    language: "Language",
    subscribe_button: "Subscribe",
    pages: "Pages",
    page_of: "Page {n} of {total}",
    newer: "Newer statements",
    older: "Older statements",
    none_yet: "No statements have been published yet.",
    statement_count: "Statements",
    years: "Archive by year",
    year_title: "Statements of {year}",
};

const RU: Strings = Strings {
    skip: "Перейти к содержанию",
    statements: "Заявления",
    topics: "Темы",
    all_topics: "Все темы",
    topic: "Тема",
    languages: "Языки",
    translations: "Это заявление на других языках",
    date: "Дата",
    place: "Место",
    issuers: "От имени",
    occasion: "Повод",
    updated: "Обновлено",
    correction: "В заявление после публикации внесены исправления. Последнее обновление:",
    download_pdf: "Скачать PDF",
    pdf_signed_by: "PDF подписан электронной подписью:",
    signed_manifest: "подписанный список опубликованных файлов",
    follow: "Подписаться на ленту",
    feeds_for_topic: "Ленты по этой теме",
    subscribe: "Подписка по электронной почте",
    subscribe_intro: "Получайте новые заявления по электронной почте. Мы пришлём ссылку для подтверждения адреса; в каждом письме есть ссылка для отказа от подписки.",
    email: "Адрес электронной почты",
    language: "Язык",
    subscribe_button: "Подписаться",
    pages: "Страницы",
    page_of: "Страница {n} из {total}",
    newer: "Более новые заявления",
    older: "Более ранние заявления",
    none_yet: "Заявлений пока нет.",
    statement_count: "Заявления",
    years: "Архив по годам",
    year_title: "Заявления за {year} год",
};

const KK: Strings = Strings {
    skip: "Мазмұнға өту",
    statements: "Мәлімдемелер",
    topics: "Тақырыптар",
    all_topics: "Барлық тақырыптар",
    topic: "Тақырып",
    languages: "Тілдер",
    translations: "Бұл мәлімдеме басқа тілдерде",
    date: "Күні",
    place: "Орны",
    issuers: "Мәлімдеме жасаған",
    occasion: "Себебі",
    updated: "Жаңартылды",
    correction: "Мәлімдемеге жарияланғаннан кейін түзету енгізілді. Соңғы жаңарту:",
    download_pdf: "PDF жүктеп алу",
    pdf_signed_by: "PDF электрондық қолтаңбамен қол қойылған:",
    signed_manifest: "жарияланған файлдардың қол қойылған тізімі",
    follow: "Арнаға жазылу",
    feeds_for_topic: "Осы тақырып бойынша арналар",
    subscribe: "Электрондық пошта арқылы жазылу",
    subscribe_intro: "Жаңа мәлімдемелерді электрондық пошта арқылы алыңыз. Мекенжайыңызды растау үшін сілтеме жібереміз; әр хатта жазылымнан бас тарту сілтемесі бар.",
    email: "Электрондық пошта мекенжайы",
    language: "Тіл",
    subscribe_button: "Жазылу",
    pages: "Беттер",
    page_of: "{total} беттің {n}-беті",
    newer: "Жаңарақ мәлімдемелер",
    older: "Ертерек мәлімдемелер",
    none_yet: "Әзірге мәлімдеме жарияланған жоқ.",
    statement_count: "Мәлімдемелер",
    years: "Жылдар бойынша мұрағат",
    year_title: "{year} жылғы мәлімдемелер",
};

/// Interface strings for `lang`, English when there are none.
pub fn strings(lang: &str) -> &'static Strings {
    match primary(lang) {
        "ru" => &RU,
        "kk" => &KK,
        _ => &EN,
    }
}

/// `year_title` with its year.
pub fn year_title(lang: &str, year: &str) -> String {
    strings(lang).year_title.replace("{year}", year)
}

/// "Page X of Y", on index pages and in the PDF's footer.
pub fn page_of(lang: &str, n: usize, total: usize) -> String {
    match primary(lang) {
        "ru" | "kk" | "en" => strings(lang)
            .page_of
            .replace("{n}", &n.to_string())
            .replace("{total}", &total.to_string()),
        "uk" => format!("Сторінка {n} з {total}"),
        "fr" => format!("Page {n} sur {total}"),
        "es" => format!("Página {n} de {total}"),
        "de" => format!("Seite {n} von {total}"),
        "ar" => format!("صفحة {n} من {total}"),
        _ => EN
            .page_of
            .replace("{n}", &n.to_string())
            .replace("{total}", &total.to_string()),
    }
}

/// The heading of a statement's end notes (the PDF).
pub fn notes(lang: &str) -> &'static str {
    match primary(lang) {
        "ru" => "Примечания",
        "kk" => "Ескертпелер",
        "uk" => "Примітки",
        "fr" => "Notes",
        "es" => "Notas",
        "de" => "Anmerkungen",
        "ar" => "ملاحظات",
        _ => "Notes",
    }
}

/// "Updated", before a correction's date (the page says `t.updated`; the PDF this).
pub fn updated(lang: &str) -> &'static str {
    match primary(lang) {
        "uk" => "Оновлено",
        "fr" => "Mis à jour le",
        "es" => "Actualizado el",
        "de" => "Aktualisiert am",
        "ar" => "حُدّث في",
        _ => strings(lang).updated,
    }
}

/// What a bulletin or digest says around the statement, by language.
#[derive(Debug)]
pub struct MailLabels {
    pub read_online: &'static str,
    pub download_pdf: &'static str,
    pub unsubscribe: &'static str,
    /// Why the reader gets the mail; `{org}` is replaced.
    why: &'static str,
    /// Before the title of a correction bulletin.
    pub correction: &'static str,
}

impl MailLabels {
    /// The "why you receive this" line for `org`.
    pub fn why(&self, org: &str) -> String {
        self.why.replace("{org}", org)
    }
}

const MAIL_EN: MailLabels = MailLabels {
    read_online: "Read online",
    download_pdf: "Download the PDF",
    unsubscribe: "Unsubscribe",
    why: "You receive this because you subscribed to statements from {org}.",
    correction: "Correction",
};
const MAIL_RU: MailLabels = MailLabels {
    read_online: "Читать на сайте",
    download_pdf: "Скачать PDF",
    unsubscribe: "Отписаться",
    why: "Вы получили это письмо, потому что подписались на заявления: {org}.",
    correction: "Исправление",
};
const MAIL_KK: MailLabels = MailLabels {
    read_online: "Сайтта оқу",
    download_pdf: "PDF жүктеп алу",
    unsubscribe: "Жазылымнан бас тарту",
    why: "Сіз бұл хатты {org} мәлімдемелеріне жазылғандықтан алдыңыз.",
    correction: "Түзету",
};

/// The labels of bulletins and digests in `lang`, English when there are none.
pub fn mail_labels(lang: &str) -> &'static MailLabels {
    match primary(lang) {
        "ru" => &MAIL_RU,
        "kk" => &MAIL_KK,
        _ => &MAIL_EN,
    }
}

/// The subject of a digest of `n` statements from `org`.
pub fn digest_subject(lang: &str, org: &str, n: usize) -> String {
    match primary(lang) {
        "ru" => format!("{org}: новые заявления ({n})"),
        "kk" => format!("{org}: жаңа мәлімдемелер ({n})"),
        _ => match n {
            1 => format!("{org}: 1 new statement"),
            n => format!("{org}: {n} new statements"),
        },
    }
}

/// The subscription confirmation mail (double opt-in), in the language the
/// subscriber chose on the form.
#[derive(Debug)]
pub struct ConfirmLabels {
    /// `{site}` is replaced.
    subject: &'static str,
    /// `{org}` is replaced.
    asked: &'static str,
    /// `{expires}` is replaced (a date and a UTC time).
    open: &'static str,
    pub not_you: &'static str,
}

impl ConfirmLabels {
    pub fn subject(&self, site: &str) -> String {
        self.subject.replace("{site}", site)
    }

    pub fn asked(&self, org: &str) -> String {
        self.asked.replace("{org}", org)
    }

    pub fn open(&self, expires: &str) -> String {
        self.open.replace("{expires}", expires)
    }
}

const CONFIRM_EN: ConfirmLabels = ConfirmLabels {
    subject: "Confirm your subscription: {site}",
    asked: "Someone, probably you, asked to receive the statements of {org} by email at this address.",
    open: "To confirm, open this link before {expires} (UTC):",
    not_you: "If it was not you, ignore this mail: nothing will be sent to you.",
};
const CONFIRM_RU: ConfirmLabels = ConfirmLabels {
    subject: "Подтвердите подписку: {site}",
    asked: "Кто-то (вероятно, вы) попросил присылать на этот адрес заявления: {org}.",
    open: "Чтобы подтвердить подписку, откройте эту ссылку до {expires} (UTC):",
    not_you: "Если это были не вы, не обращайте внимания на это письмо: мы ничего не будем вам присылать.",
};
const CONFIRM_KK: ConfirmLabels = ConfirmLabels {
    subject: "Жазылымды растаңыз: {site}",
    asked: "Біреу (мүмкін, сіз) осы мекенжайға {org} мәлімдемелерін электрондық пошта арқылы жіберуді сұрады.",
    open: "Жазылымды растау үшін бұл сілтемені {expires} (UTC) дейін ашыңыз:",
    not_you: "Егер бұл сіз болмасаңыз, бұл хатты елемеңіз: сізге ештеңе жіберілмейді.",
};

/// The confirmation mail's words in `lang`, English when there are none.
pub fn confirm_labels(lang: &str) -> &'static ConfirmLabels {
    match primary(lang) {
        "ru" => &CONFIRM_RU,
        "kk" => &CONFIRM_KK,
        _ => &CONFIRM_EN,
    }
}

// ---- languages ----

/// Every language herald can name, with its name in that language (for
/// language switchers and the subscribe form). One list for every channel.
pub const LANGUAGE_NAMES: &[(&str, &str)] = &[
    ("en", "English"),
    ("ru", "Русский"),
    ("kk", "Қазақша"),
    ("ky", "Кыргызча"),
    ("uz", "Oʻzbekcha"),
    ("tg", "Тоҷикӣ"),
    ("tk", "Türkmençe"),
    ("fr", "Français"),
    ("es", "Español"),
    ("de", "Deutsch"),
    ("ar", "العربية"),
    ("zh", "中文"),
    ("fa", "فارسی"),
    ("he", "עברית"),
    ("ur", "اردو"),
    ("tr", "Türkçe"),
    ("pt", "Português"),
];

/// A language's name in that language; the code itself when herald has none.
pub fn language_name(lang: &str) -> &str {
    LANGUAGE_NAMES
        .iter()
        .find(|(code, _)| *code == lang)
        .map_or(lang, |(_, name)| name)
}

/// Writing direction for the `dir` attribute.
pub fn direction(lang: &str) -> &'static str {
    match primary(lang) {
        "ar" | "fa" | "he" | "ur" | "ps" | "sd" | "yi" | "dv" | "ug" | "ckb" => "rtl",
        _ => "ltr",
    }
}

// ---- dates ----

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
// Genitive, as used after a day number.
const MONTHS_RU: [&str; 12] = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
];
const MONTHS_KK: [&str; 12] = [
    "қаңтар",
    "ақпан",
    "наурыз",
    "сәуір",
    "мамыр",
    "маусым",
    "шілде",
    "тамыз",
    "қыркүйек",
    "қазан",
    "қараша",
    "желтоқсан",
];

/// The name of month `month0` (0 = January) as it follows a day number in
/// `lang`; `None` for a language without a table or a month past 11.
pub fn month_name(lang: &str, month0: u32) -> Option<&'static str> {
    let table = match primary(lang) {
        "en" => &MONTHS_EN,
        "ru" => &MONTHS_RU,
        "kk" => &MONTHS_KK,
        _ => return None,
    };
    table.get(month0 as usize).copied()
}

/// A date as readers of `lang` write it, in the offset the author gave:
/// "30 July 2014", "30 июля 2014 г.", "2014 жылғы 30 шілде". Pages, PDFs and
/// mails all show this.
pub fn long_date(lang: &str, d: &DateTime<FixedOffset>) -> String {
    let (day, year) = (d.day(), d.year());
    match (primary(lang), month_name(lang, d.month0())) {
        ("en", Some(m)) => format!("{day} {m} {year}"),
        ("ru", Some(m)) => format!("{day} {m} {year} г."),
        ("kk", Some(m)) => format!("{year} жылғы {day} {m}"),
        // No table: ISO 8601 is unambiguous everywhere.
        _ => d.format("%Y-%m-%d").to_string(),
    }
}

/// A UTC moment for a deadline: its long date and the time, e.g. "31 July 2014, 09:00".
pub fn long_date_time_utc(lang: &str, t: &DateTime<Utc>) -> String {
    format!(
        "{}, {}",
        long_date(lang, &t.fixed_offset()),
        t.format("%H:%M")
    )
}

/// A file size for a download link: `240 KB`, `1.2 MB` (`1,2 МБ` in ru and kk).
pub fn file_size(lang: &str, bytes: u64) -> String {
    let (kb, mb) = match primary(lang) {
        "ru" | "kk" => ("КБ", "МБ"),
        _ => ("KB", "MB"),
    };
    let text = if bytes < 1_000_000 {
        format!("{} {kb}", bytes.div_ceil(1000).max(1))
    } else {
        // One decimal, rounded half up, in integer arithmetic.
        let tenths = (bytes + 50_000) / 100_000;
        format!("{}.{} {mb}", tenths / 10, tenths % 10)
    };
    match primary(lang) {
        "ru" | "kk" => text.replace('.', ","),
        _ => text,
    }
}

// ---- topics ----

/// Display names of topics per language: `[site.topic_names.migration]
/// en = "Migration"`. Without one, the slug is shown with spaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct TopicNames(pub BTreeMap<String, BTreeMap<String, String>>);

/// Only the part of `[site]` this module reads; the site refuses unknown keys.
#[derive(Default, Deserialize)]
struct SiteTopics {
    #[serde(default)]
    topic_names: TopicNames,
}

impl TopicNames {
    /// `[site.topic_names]` of `herald.toml`.
    pub fn from_config(config: &Config) -> Result<TopicNames, crate::Diagnostic> {
        Ok(config.section::<SiteTopics>("site")?.topic_names)
    }

    /// The name of `topic` in `lang`: the configured one, else the one for
    /// `default_language`, else the slug with spaces and a capital.
    pub fn name(&self, lang: &str, topic: &str, default_language: &str) -> String {
        self.0
            .get(topic)
            .and_then(|n| n.get(lang).or_else(|| n.get(default_language)))
            .cloned()
            .unwrap_or_else(|| humanize(topic))
    }
}

/// `human-rights` -> `Human rights`.
pub fn humanize(slug: &str) -> String {
    let spaced = slug.replace('-', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => spaced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("date")
    }

    #[test]
    fn dates_per_language() {
        // Late evening in Almaty is still the 30th there, though the 30th is over in UTC+10.
        let x = d("2014-07-30T23:30:00+06:00");
        assert_eq!(long_date("en", &x), "30 July 2014");
        assert_eq!(long_date("en-GB", &x), "30 July 2014");
        assert_eq!(long_date("ru", &x), "30 июля 2014 г.");
        assert_eq!(long_date("kk", &x), "2014 жылғы 30 шілде");
        assert_eq!(long_date("fr", &x), "2014-07-30");
        assert_eq!(month_name("ru", 0), Some("января"));
        assert_eq!(month_name("kk", 11), Some("желтоқсан"));
        assert_eq!(month_name("fr", 0), None);
        assert_eq!(month_name("en", 12), None);
        let t = d("2014-07-31T03:05:00Z").with_timezone(&Utc);
        assert_eq!(long_date_time_utc("ru", &t), "31 июля 2014 г., 03:05");
    }

    #[test]
    fn sizes() {
        assert_eq!(file_size("en", 1), "1 KB");
        assert_eq!(file_size("en", 240_001), "241 KB");
        assert_eq!(file_size("en", 1_249_999), "1.2 MB");
        assert_eq!(file_size("ru", 1_250_000), "1,3 МБ");
    }

    #[test]
    fn labels_and_fallbacks() {
        assert_eq!(strings("de").statements, "Statements");
        assert_eq!(strings("kk").statements, "Мәлімдемелер");
        assert_eq!(page_of("ru", 2, 5), "Страница 2 из 5");
        assert_eq!(page_of("kk", 1, 2), "2 беттің 1-беті");
        assert_eq!(page_of("en-GB", 2, 3), "Page 2 of 3");
        assert_eq!(page_of("fr", 1, 2), "Page 1 sur 2");
        assert_eq!(page_of("tr", 1, 2), "Page 1 of 2");
        assert_eq!(updated("ru"), "Обновлено");
        assert_eq!(updated("de"), "Aktualisiert am");
        assert_eq!(updated("tr"), "Updated");
        assert_eq!(notes("kk"), "Ескертпелер");
        assert_eq!(direction("ar"), "rtl");
        assert_eq!(direction("kk"), "ltr");
        assert_eq!(language_name("kk"), "Қазақша");
        assert_eq!(language_name("xx"), "xx");
        assert_eq!(
            mail_labels("ru").why("ООН"),
            "Вы получили это письмо, потому что подписались на заявления: ООН."
        );
        assert_eq!(digest_subject("en", "UN", 1), "UN: 1 new statement");
        assert_eq!(confirm_labels("kk").subject("S"), "Жазылымды растаңыз: S");
        assert_eq!(
            confirm_labels("pt").subject("S"),
            "Confirm your subscription: S"
        );
    }

    #[test]
    fn every_language_name_is_listed_once() {
        let mut codes: Vec<&str> = LANGUAGE_NAMES.iter().map(|(c, _)| *c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), LANGUAGE_NAMES.len());
    }

    #[test]
    fn topic_names_are_read_from_site_and_leave_its_other_keys_to_the_site() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("herald.toml");
        std::fs::write(
            &path,
            "title = \"T\"\nbase_url = \"https://ex.org/\"\nlanguages = [\"en\", \"ru\"]\n\
             default_language = \"en\"\ntime_zone = \"UTC\"\n[organization]\nname = \"Org\"\n\
             [site]\nper_page = 10\n[site.topic_names.migration]\nru = \"Миграция\"\n",
        )
        .expect("write");
        let config = Config::load(&path).expect("config");
        let names = TopicNames::from_config(&config).expect("names");
        assert_eq!(names.name("ru", "migration", "en"), "Миграция");
        assert_eq!(names.name("en", "migration", "en"), "Migration");
    }

    #[test]
    fn topic_names_fall_back_to_the_default_language_then_the_slug() {
        let mut names = TopicNames::default();
        names.0.insert(
            "human-rights".into(),
            BTreeMap::from([
                ("en".into(), "Human rights".into()),
                ("ru".into(), "Права человека".into()),
            ]),
        );
        assert_eq!(names.name("ru", "human-rights", "en"), "Права человека");
        assert_eq!(names.name("kk", "human-rights", "en"), "Human rights");
        names.0.insert(
            "migration".into(),
            BTreeMap::from([("ru".into(), "Миграция".into())]),
        );
        assert_eq!(names.name("kk", "migration", "en"), "Migration");
        assert_eq!(
            names.name("en", "migration-and-asylum", "en"),
            "Migration and asylum"
        );
    }
}
