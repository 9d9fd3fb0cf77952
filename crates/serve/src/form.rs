//! Reading RFC 8058 one-click unsubscribe bodies: mailbox providers send
//! `multipart/form-data` (as the RFC recommends) or urlencoded forms.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart};
use axum::http::{HeaderMap, Request, header};

const FIELD: &str = "List-Unsubscribe";
const VALUE: &str = "One-Click";

/// Whether the body says `List-Unsubscribe=One-Click`. Err: a multipart body
/// that cannot be parsed (what was wrong, for the answer).
pub(crate) async fn one_click(headers: &HeaderMap, body: Bytes) -> Result<bool, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_multipart = content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("multipart/form-data"));
    if !is_multipart {
        return Ok(form_urlencoded::parse(&body).any(|(k, v)| k == FIELD && v == VALUE));
    }
    let request = Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .map_err(|e| e.to_string())?;
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| e.body_text())?;
    while let Some(field) = multipart.next_field().await.map_err(|e| e.body_text())? {
        if field.name() == Some(FIELD) {
            let value = field.text().await.map_err(|e| e.body_text())?;
            if value.trim() == VALUE {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
