//! Interface strings, language names and dates in the site's languages.
//! English is the fallback for any language without its own table.

use chrono::{DateTime, Datelike, FixedOffset};
use serde::Serialize;

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

/// The primary subtag: `pt` for `pt-BR`.
fn primary(lang: &str) -> &str {
    lang.split('-').next().unwrap_or(lang)
}

/// Interface strings for `lang`, English when there are none.
pub fn strings(lang: &str) -> &'static Strings {
    match primary(lang) {
        "ru" => &RU,
        "kk" => &KK,
        _ => &EN,
    }
}

/// A language's name in that language, for language switchers.
pub fn language_name(lang: &str) -> &str {
    match lang {
        "en" => "English",
        "ru" => "Русский",
        "kk" => "Қазақша",
        "ky" => "Кыргызча",
        "uz" => "Oʻzbekcha",
        "tg" => "Тоҷикӣ",
        "tk" => "Türkmençe",
        "fr" => "Français",
        "es" => "Español",
        "de" => "Deutsch",
        "ar" => "العربية",
        "zh" => "中文",
        "fa" => "فارسی",
        "he" => "עברית",
        "ur" => "اردو",
        "tr" => "Türkçe",
        "pt" => "Português",
        _ => lang,
    }
}

/// Writing direction for the `dir` attribute.
pub fn direction(lang: &str) -> &'static str {
    match primary(lang) {
        "ar" | "fa" | "he" | "ur" | "ps" | "sd" | "yi" | "dv" | "ug" | "ckb" => "rtl",
        _ => "ltr",
    }
}

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

/// A date as readers of `lang` write it, in the offset the author gave.
pub fn long_date(lang: &str, d: &DateTime<FixedOffset>) -> String {
    let m = d.month0() as usize;
    let (day, year) = (d.day(), d.year());
    match primary(lang) {
        "en" => format!("{day} {} {year}", MONTHS_EN[m]),
        "ru" => format!("{day} {} {year} г.", MONTHS_RU[m]),
        "kk" => format!("{year} жылғы {day} {}", MONTHS_KK[m]),
        // No table: ISO 8601 is unambiguous everywhere.
        _ => d.format("%Y-%m-%d").to_string(),
    }
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

/// `year_title` with its year.
pub fn year_title(lang: &str, year: &str) -> String {
    strings(lang).year_title.replace("{year}", year)
}

/// `page_of` with its placeholders filled in.
pub fn page_of(lang: &str, n: usize, total: usize) -> String {
    strings(lang)
        .page_of
        .replace("{n}", &n.to_string())
        .replace("{total}", &total.to_string())
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
        assert_eq!(long_date("ru", &x), "30 июля 2014 г.");
        assert_eq!(long_date("kk", &x), "2014 жылғы 30 шілде");
        assert_eq!(long_date("fr", &x), "2014-07-30");
    }

    #[test]
    fn sizes() {
        assert_eq!(file_size("en", 1), "1 KB");
        assert_eq!(file_size("en", 240_001), "241 KB");
        assert_eq!(file_size("en", 1_249_999), "1.2 MB");
        assert_eq!(file_size("ru", 1_250_000), "1,3 МБ");
    }

    #[test]
    fn fallbacks() {
        assert_eq!(strings("de").statements, "Statements");
        assert_eq!(strings("kk").statements, "Мәлімдемелер");
        assert_eq!(page_of("ru", 2, 5), "Страница 2 из 5");
        assert_eq!(direction("ar"), "rtl");
        assert_eq!(direction("kk"), "ltr");
    }
}
