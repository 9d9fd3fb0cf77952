//! The few words the PDF itself says, in the statement's language.

use chrono::{DateTime, Datelike, FixedOffset};

/// The primary subtag: `pt-BR` -> `pt`.
fn primary(lang: &str) -> &str {
    lang.split('-').next().unwrap_or(lang)
}

/// "Page X of Y".
pub(crate) fn page_of(lang: &str, page: usize, pages: usize) -> String {
    match primary(lang) {
        "ru" => format!("Страница {page} из {pages}"),
        "kk" => format!("{pages} беттің {page}-беті"),
        "uk" => format!("Сторінка {page} з {pages}"),
        "fr" => format!("Page {page} sur {pages}"),
        "es" => format!("Página {page} de {pages}"),
        "de" => format!("Seite {page} von {pages}"),
        "ar" => format!("صفحة {page} من {pages}"),
        _ => format!("Page {page} of {pages}"),
    }
}

/// The heading of the end notes.
pub(crate) fn notes(lang: &str) -> &'static str {
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

/// "Updated" before a correction's date.
pub(crate) fn updated(lang: &str) -> &'static str {
    match primary(lang) {
        "ru" => "Обновлено",
        "kk" => "Жаңартылды",
        "uk" => "Оновлено",
        "fr" => "Mis à jour le",
        "es" => "Actualizado el",
        "de" => "Aktualisiert am",
        "ar" => "حُدّث في",
        _ => "Updated",
    }
}

const EN: [&str; 12] = [
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
// Genitive, as after a day number.
const RU: [&str; 12] = [
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
const KK: [&str; 12] = [
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

/// A date as the statement's readers write it, in the statement's own offset.
pub(crate) fn date(lang: &str, d: &DateTime<FixedOffset>) -> String {
    let (day, month, year) = (d.day(), d.month0() as usize, d.year());
    match primary(lang) {
        "ru" => format!("{day} {} {year} г.", RU[month]),
        "kk" => format!("{year} жылғы {day} {}", KK[month]),
        _ => format!("{day} {} {year}", EN[month]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_pages() {
        let d = DateTime::parse_from_rfc3339("2014-07-30T09:00:00+06:00").expect("date");
        assert_eq!(date("en", &d), "30 July 2014");
        assert_eq!(date("ru", &d), "30 июля 2014 г.");
        assert_eq!(date("kk", &d), "2014 жылғы 30 шілде");
        assert_eq!(page_of("en-GB", 2, 3), "Page 2 of 3");
        assert_eq!(page_of("ru", 1, 2), "Страница 1 из 2");
    }
}
