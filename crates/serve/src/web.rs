//! The routes: static files from `public/`, and the subscription endpoints.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use herald_mail::{
    Claim, Confirmation, Confirmed, NewSubscriber, Origin, Purpose, Status, StoreError, Subscriber,
    TokenError, parse_address,
};
use tower_http::compression::CompressionLayer;

use crate::csrf::{self, CsrfError};
use crate::{App, pages};

type Shared = State<Arc<App>>;

/// Scripts only from the site itself (none inline), no framing, forms post only here.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/subscribe", get(subscribe_page).post(subscribe))
        .route("/confirm", get(confirm_page).post(confirm))
        .route("/unsubscribe", get(unsubscribe_page).post(unsubscribe))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page_path).post(unsubscribe_path),
        )
        .route("/preferences", get(preferences_page).post(preferences))
        .fallback(static_file)
        .layer(DefaultBodyLimit::max(app.settings.body_limit))
        .layer(CompressionLayer::new().compress_when(compressible()))
        .layer(axum::middleware::map_response(weaken_encoded_etag))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

/// Text is worth compressing, PDFs and images are compressed already; tiny bodies
/// are not worth the header.
fn compressible() -> impl tower_http::compression::Predicate {
    use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
    SizeAbove::new(256)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::const_new("application/pdf"))
        .and(NotForContentType::const_new("application/octet-stream"))
}

/// A compressed body is another representation: its ETag may only be weak (as
/// nginx does), so If-None-Match still matches it and If-Range never does.
async fn weaken_encoded_etag(mut res: Response) -> Response {
    if res.headers().contains_key(header::CONTENT_ENCODING)
        && let Some(etag) = res.headers().get(header::ETAG)
        && let Ok(tag) = etag.to_str()
        && !tag.starts_with("W/")
        && let Ok(weak) = HeaderValue::from_str(&format!("W/{tag}"))
    {
        res.headers_mut().insert(header::ETAG, weak);
    }
    res
}

async fn static_file(State(app): Shared, req: axum::extract::Request) -> Response {
    app.files
        .respond(req.method(), req.uri().path(), req.headers())
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Links carry tokens: never leak them to another site.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// An HTML page that must not be cached (it may hold tokens).
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn message(app: &App, status: StatusCode, title: &str, paragraphs: &[&str]) -> Response {
    html(status, pages::message(&app.site(), title, paragraphs))
}

fn internal(app: &App, what: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!("{what}: {e}");
    message(
        app,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        &["The request could not be completed. Please try again later."],
    )
}

/// Why store work did not complete.
enum Failure {
    /// The write lock stayed taken for the store's whole wait: answered 503.
    Busy,
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Busy => f.write_str("the mail store is busy"),
            Failure::Other(e) => f.write_str(e),
        }
    }
}

/// Run store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(StoreError::Busy)) => Err(Failure::Busy),
        Ok(Err(e)) => Err(Failure::Other(e.to_string())),
        Err(e) => Err(Failure::Other(e.to_string())),
    }
}

/// Seconds a client is asked to wait before it tries a busy store again.
const BUSY_RETRY_SECS: &str = "5";

/// 503 with Retry-After: the request changed nothing and may simply be repeated.
fn busy(mut res: Response) -> Response {
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(BUSY_RETRY_SECS),
    );
    res
}

const BUSY_TEXT: &str = "The service is busy sending mail right now and nothing was saved. Please try again in a few seconds.";

fn failed(app: &App, what: &str, f: Failure) -> Response {
    match f {
        Failure::Busy => busy(message(
            app,
            StatusCode::OK,
            "Please try again",
            &[BUSY_TEXT],
        )),
        Failure::Other(e) => internal(app, what, e),
    }
}

/// A form body or query string, with repeated keys (`topics=a&topics=b`).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(bytes: &[u8]) -> Fields {
        Fields(form_urlencoded::parse(bytes).into_owned().collect())
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn query(q: &Option<String>) -> Fields {
    Fields::parse(q.as_deref().unwrap_or("").as_bytes())
}

fn client_ip(app: &App, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if app.settings.trust_forwarded_for
        && let Some(ip) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back()
    {
        return ip;
    }
    peer.ip()
}

fn csrf_cookie_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| csrf::cookie(v, csrf::COOKIE))
}

/// A fresh CSRF token and the cookie that carries it.
fn new_csrf(app: &App) -> Result<(String, HeaderValue), String> {
    let token = app.csrf.issue(app.now()).map_err(|e| e.to_string())?;
    let secure = if app.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let max_age = u64::from(app.settings.form_expiry_minutes) * 60;
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        csrf::COOKIE
    );
    let value = HeaderValue::from_str(&cookie).map_err(|e| e.to_string())?;
    Ok((token, value))
}

/// What a reader asked for in the subscribe form.
struct Request {
    email: String,
    lang: String,
    topics: Vec<String>,
}

fn subscribe_form(app: &App, status: StatusCode, req: &Request, problem: Option<&str>) -> Response {
    let (token, cookie) = match new_csrf(app) {
        Ok(t) => t,
        Err(e) => return internal(app, "CSRF token", e),
    };
    let mut res = html(
        status,
        pages::subscribe_form(
            &app.site(),
            &token,
            &req.email,
            &req.lang,
            &req.topics,
            problem,
        ),
    );
    res.headers_mut().append(header::SET_COOKIE, cookie);
    res
}

fn requested(app: &App, f: &Fields) -> Request {
    let site = app.site();
    Request {
        email: f.get("email").unwrap_or("").trim().to_string(),
        lang: f
            .get("lang")
            .filter(|l| !l.is_empty())
            .unwrap_or(&site.default_language)
            .to_string(),
        topics: f.all("topics"),
    }
}

async fn subscribe_page(State(app): Shared, RawQuery(q): RawQuery) -> Response {
    let req = requested(&app, &query(&q));
    subscribe_form(&app, StatusCode::OK, &req, None)
}

async fn subscribe(
    State(app): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Fields::parse(&body);
    let req = requested(&app, &f);
    let now = app.now();
    match app
        .csrf
        .verify(f.get(csrf::FIELD), csrf_cookie_of(&headers), now)
    {
        Ok(()) => {}
        // The site's static pages carry no token: show this form, filled in, to
        // submit once more. Nothing is stored or sent before that.
        Err(CsrfError::Missing) if f.get(csrf::FIELD).is_none() => {
            return subscribe_form(
                &app,
                StatusCode::OK,
                &req,
                Some("Check your details and press Subscribe."),
            );
        }
        Err(e) => return subscribe_form(&app, StatusCode::FORBIDDEN, &req, Some(&e.to_string())),
    }
    let ip = client_ip(&app, peer, &headers);
    if !app.limits.ip_allows(ip) {
        let mut res = message(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            &[
                "Too many subscriptions were asked for from your network. Please try again in a few minutes.",
            ],
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return res;
    }
    let address = match parse_address(&req.email) {
        Ok(a) => a,
        Err(e) => return subscribe_form(&app, StatusCode::BAD_REQUEST, &req, Some(&e.to_string())),
    };
    // Refused now rather than never delivered: the mail server must offer SMTPUTF8.
    if !address.is_ascii() && !app.mailer.carries_utf8().await {
        let p = format!(
            "{address} has characters outside ASCII, and this service's mail server cannot \
             deliver to such addresses (it does not offer SMTPUTF8). Please use an address \
             written in ASCII letters."
        );
        return subscribe_form(&app, StatusCode::BAD_REQUEST, &req, Some(&p));
    }
    let site = app.site();
    if !site.languages.contains(&req.lang) {
        let p = format!(
            "Language {:?} is not one of {}.",
            req.lang,
            site.languages.join(", ")
        );
        return subscribe_form(&app, StatusCode::BAD_REQUEST, &req, Some(&p));
    }
    if let Some(t) = req.topics.iter().find(|t| !site.topics.contains(t)) {
        let p = format!("There is no topic {t:?}.");
        return subscribe_form(&app, StatusCode::BAD_REQUEST, &req, Some(&p));
    }
    let referer = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .map(|r| {
            r.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        });
    let source = match referer {
        Some(r) => format!("web form ({r})"),
        None => "web form".to_string(),
    };
    let new = NewSubscriber {
        address: address.clone(),
        name: String::new(),
        lang: req.lang.clone(),
        topics: req.topics.clone(),
        status: Status::Pending,
        consent_source: source,
        consent_ip: Some(ip.to_string()),
        consent_at: None,
    };
    let store = app.store.clone();
    let languages = site.languages.clone();
    // The subscriber who should get a confirmation mail, if any, and whether the
    // row was made now (with its confirmation key and subscribe event).
    let outcome = blocking(move || -> Result<Option<(Subscriber, bool)>, StoreError> {
        let existing = match store.subscriber_by_address(&new.address)? {
            Some(s) => s,
            None => match store.add_subscriber(new.clone(), &languages, now) {
                Ok(s) => return Ok(Some((s, true))),
                // Added by a concurrent request since we looked.
                Err(StoreError::Exists(_)) => store
                    .subscriber_by_address(&new.address)?
                    .ok_or(StoreError::NotFound(new.address.clone()))?,
                Err(e) => return Err(e),
            },
        };
        Ok(match existing.status {
            // Confirmed already: nothing to do, and the answer must not say so.
            Status::Confirmed => None,
            Status::Pending | Status::Unsubscribed | Status::Bounced | Status::Complained => {
                Some((existing, false))
            }
        })
    })
    .await;
    // The form keeps what the person typed when the store is busy.
    let busy_form = |app: &App| busy(subscribe_form(app, StatusCode::OK, &req, Some(BUSY_TEXT)));
    let subscriber = match outcome {
        Ok(s) => s,
        Err(Failure::Busy) => return busy_form(&app),
        Err(e) => return internal(&app, "subscribe", e),
    };
    if let Some((s, added)) = subscriber
        && app.limits.address_allows(&s.address)
    {
        if added && let Some(key) = s.confirm_key {
            // Sent in the background: the answer takes as long whether or not a mail goes.
            tokio::spawn(send_confirmation(app.clone(), s.id, key, s.address, s.lang));
            return check_inbox(&app, &address);
        }
        let store = app.store.clone();
        let (lang, topics, languages) =
            (req.lang.clone(), req.topics.clone(), site.languages.clone());
        let ip = ip.to_string();
        let id = s.id;
        let changed = s.lang != req.lang || s.topics != req.topics;
        let key = blocking(move || {
            let origin = Origin {
                source: "web form",
                ip: Some(&ip),
            };
            // Preferences of an unconfirmed row may change: they take effect only
            // once the mailbox's owner confirms.
            if changed {
                store.set_preferences(id, &lang, &topics, &languages, origin, now)?;
            }
            store.begin_confirmation(id, origin, now)
        })
        .await;
        let key = match key {
            Ok(k) => k,
            Err(Failure::Busy) => return busy_form(&app),
            Err(e) => return internal(&app, "subscribe", e),
        };
        // In the language just chosen on the form (stored above).
        tokio::spawn(send_confirmation(
            app.clone(),
            s.id,
            key,
            s.address,
            req.lang.clone(),
        ));
    }
    check_inbox(&app, &address)
}

/// The answer to every accepted subscribe: it never tells whether the address was known.
fn check_inbox(app: &App, address: &str) -> Response {
    message(
        app,
        StatusCode::OK,
        "Check your inbox",
        &[
            &format!(
                "If {address} can receive statements, a mail with a confirmation link is on its way."
            ),
            "Open the link in it to start your subscription. Nothing is sent before you confirm.",
        ],
    )
}

async fn send_confirmation(app: Arc<App>, id: i64, key: i64, address: String, lang: String) {
    let now = app.now();
    let expires = now + chrono::Duration::hours(i64::from(app.settings.confirm_expiry_hours));
    let token = app.secret.issue(Purpose::Confirm, id, key, Some(expires));
    let link = format!("{}confirm?token={token}", app.public_url);
    let site = app.site();
    let c = Confirmation {
        subscriber_id: id,
        address: &address,
        lang: &lang,
        site: &site.title,
        organization: &app.organization,
        link: &link,
        expires,
    };
    let (message_id, sent) = match app.mailer.send(&c, now).await {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("confirmation mail to subscriber #{id}: {e}");
            return;
        }
    };
    let error = match sent {
        Ok(()) => {
            tracing::info!("confirmation mail sent to subscriber #{id}");
            None
        }
        Err(e) => {
            tracing::error!("confirmation mail to subscriber #{id}: {e}");
            Some(e.to_string())
        }
    };
    // Recorded, so `herald mail status` shows a confirmation that did not go out.
    let store = app.store.clone();
    let recorded = blocking(move || {
        store.record_confirmation(id, &address, &lang, &message_id, error.as_deref(), now)
    })
    .await;
    if let Err(e) = recorded {
        tracing::error!("recording the confirmation mail to subscriber #{id}: {e}");
    }
}

/// Why a link was not accepted, for the reader.
fn refused(app: &App, e: &TokenError) -> Response {
    let status = match e {
        TokenError::Expired => StatusCode::GONE,
        _ => StatusCode::BAD_REQUEST,
    };
    let hint = match e {
        TokenError::Expired => "Please subscribe again to get a new link.",
        _ => {
            "Please open the link from the mail as it is; if it was split over two lines, join them."
        }
    };
    message(
        app,
        status,
        "This link does not work",
        &[&e.to_string(), hint],
    )
}

fn token_of(f: &Fields) -> &str {
    f.get("token").unwrap_or("")
}

/// The row a token still acts on (see `MailStore::bound`).
async fn lookup(
    app: &Arc<App>,
    claim: Claim,
    purpose: Purpose,
) -> Result<Option<Subscriber>, Response> {
    let store = app.store.clone();
    blocking(move || store.bound(claim, purpose))
        .await
        .map_err(|e| failed(app, "subscriber", e))
}

fn used(app: &App) -> Response {
    message(
        app,
        StatusCode::GONE,
        "This link was already used",
        &[
            "A confirmation link works once. If you unsubscribed since, subscribe again for a new link.",
        ],
    )
}

fn gone(app: &App) -> Response {
    message(
        app,
        StatusCode::GONE,
        "This link does not work any more",
        &["The subscription it was for no longer exists. Please subscribe again."],
    )
}

/// GET never confirms: mail scanners follow links.
async fn confirm_page(State(app): Shared, RawQuery(q): RawQuery) -> Response {
    let f = query(&q);
    let token = token_of(&f);
    let claim = match app.secret.verify(token, Purpose::Confirm, app.now()) {
        Ok(c) => c,
        Err(e) => return refused(&app, &e),
    };
    match lookup(&app, claim, Purpose::Confirm).await {
        Err(r) => r,
        Ok(Some(_)) => html(StatusCode::OK, pages::confirm_form(&app.site(), token)),
        Ok(None) => {
            let store = app.store.clone();
            match blocking(move || store.subscriber(claim.subscriber)).await {
                Ok(Some(_)) => used(&app),
                Ok(None) => gone(&app),
                Err(e) => failed(&app, "confirm", e),
            }
        }
    }
}

async fn confirm(
    State(app): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Fields::parse(&body);
    let now = app.now();
    let claim = match app.secret.verify(token_of(&f), Purpose::Confirm, now) {
        Ok(c) => c,
        Err(e) => return refused(&app, &e),
    };
    let store = app.store.clone();
    let ip = client_ip(&app, peer, &headers).to_string();
    // Check and change in one transaction: a replay racing the first use finds
    // the link's key cleared.
    let result = blocking(move || {
        let origin = Origin {
            source: "confirmation link",
            ip: Some(&ip),
        };
        store.confirm(claim, origin, now)
    })
    .await;
    match result {
        Err(e) => failed(&app, "confirm", e),
        Ok(Confirmed::Gone) => gone(&app),
        Ok(Confirmed::Used) => used(&app),
        Ok(Confirmed::Now(s)) => {
            let prefs = app
                .secret
                .issue(Purpose::Preferences, s.id, s.token_key, None);
            let link = format!("/preferences?token={prefs}");
            html(
                StatusCode::OK,
                pages::page(
                    &app.site(),
                    "Subscription confirmed",
                    &format!(
                        "<p>Thank you. Statements will come by email as they are published.</p>\n\
<p>Every mail has a link to unsubscribe. You can also <a href=\"{}\">change your language and topics</a>.</p>\n",
                        herald_content::html::escape(&link)
                    ),
                ),
            )
        }
    }
}

async fn unsubscribe_page(State(app): Shared, RawQuery(q): RawQuery) -> Response {
    let f = query(&q);
    let token = token_of(&f).to_string();
    let action = format!("/unsubscribe?token={}", encode(&token));
    unsubscribe_get(&app, &token, &action)
}

async fn unsubscribe_page_path(State(app): Shared, Path(token): Path<String>) -> Response {
    let action = format!("/unsubscribe/{}", encode(&token));
    unsubscribe_get(&app, &token, &action)
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn unsubscribe_get(app: &App, token: &str, action: &str) -> Response {
    match app.secret.verify(token, Purpose::Unsubscribe, app.now()) {
        Err(e) => refused(app, &e),
        // The preferences page takes the unsubscribe link's token as well.
        Ok(_) => html(
            StatusCode::OK,
            pages::unsubscribe_form(
                &app.site(),
                action,
                &format!("/preferences?token={}", encode(token)),
            ),
        ),
    }
}

async fn unsubscribe(
    State(app): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = token_of(&query(&q)).to_string();
    let ip = client_ip(&app, peer, &headers);
    unsubscribe_post(app, token, ip, headers, body).await
}

async fn unsubscribe_path(
    State(app): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = client_ip(&app, peer, &headers);
    unsubscribe_post(app, token, ip, headers, body).await
}

/// RFC 8058 one-click: the body must be `List-Unsubscribe=One-Click`, as
/// `multipart/form-data` (what the RFC asks mailbox providers to send) or
/// urlencoded. The signed token is the proof, so no CSRF token (mail providers
/// post without cookies). A repeat answers 200 as well.
async fn unsubscribe_post(
    app: Arc<App>,
    token: String,
    ip: IpAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let one_click = match crate::form::one_click(&headers, body).await {
        Ok(v) => v,
        Err(e) => {
            return message(
                &app,
                StatusCode::BAD_REQUEST,
                "Not unsubscribed",
                &[&format!("The request body cannot be read: {e}.")],
            );
        }
    };
    if !one_click {
        return message(
            &app,
            StatusCode::BAD_REQUEST,
            "Not unsubscribed",
            &["The request must carry List-Unsubscribe=One-Click (RFC 8058)."],
        );
    }
    let now = app.now();
    let claim = match app.secret.verify(&token, Purpose::Unsubscribe, now) {
        Ok(c) => c,
        Err(e) => return refused(&app, &e),
    };
    let store = app.store.clone();
    let ip = ip.to_string();
    // Removed, or unsubscribed already: nothing changes, and the reader's wish holds.
    let result = blocking(move || {
        let origin = Origin {
            source: "unsubscribe link",
            ip: Some(&ip),
        };
        store.unsubscribe(claim, origin, now)
    })
    .await;
    match result {
        Err(e) => failed(&app, "unsubscribe", e),
        Ok(_) => message(
            &app,
            StatusCode::OK,
            "You are unsubscribed",
            &[
                "You will receive no more statements by email. To come back, subscribe again from any page.",
            ],
        ),
    }
}

/// The preferences link, or a bulletin's unsubscribe link, opens the preferences.
fn preferences_claim(app: &App, token: &str) -> Result<Claim, TokenError> {
    let now = app.now();
    app.secret
        .verify(token, Purpose::Preferences, now)
        .or_else(|e| match e {
            TokenError::WrongPurpose => app.secret.verify(token, Purpose::Unsubscribe, now),
            e => Err(e),
        })
}

fn preferences_form(
    app: &App,
    status: StatusCode,
    token: &str,
    s: &Subscriber,
    notice: Option<&str>,
) -> Response {
    let (csrf, cookie) = match new_csrf(app) {
        Ok(t) => t,
        Err(e) => return internal(app, "CSRF token", e),
    };
    let mut res = html(
        status,
        pages::preferences_form(
            &app.site(),
            &csrf,
            token,
            &s.address,
            &s.lang,
            &s.topics,
            notice,
        ),
    );
    res.headers_mut().append(header::SET_COOKIE, cookie);
    res
}

async fn preferences_page(State(app): Shared, RawQuery(q): RawQuery) -> Response {
    let f = query(&q);
    let token = token_of(&f);
    let claim = match preferences_claim(&app, token) {
        Ok(c) => c,
        Err(e) => return refused(&app, &e),
    };
    match lookup(&app, claim, Purpose::Preferences).await {
        Err(r) => r,
        Ok(None) => gone(&app),
        Ok(Some(s)) => preferences_form(&app, StatusCode::OK, token, &s, None),
    }
}

async fn preferences(
    State(app): Shared,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = Fields::parse(&body);
    let token = token_of(&f).to_string();
    let claim = match preferences_claim(&app, &token) {
        Ok(c) => c,
        Err(e) => return refused(&app, &e),
    };
    let now = app.now();
    let subscriber = match lookup(&app, claim, Purpose::Preferences).await {
        Err(r) => return r,
        Ok(None) => return gone(&app),
        Ok(Some(s)) => s,
    };
    if let Err(e) = app
        .csrf
        .verify(f.get(csrf::FIELD), csrf_cookie_of(&headers), now)
    {
        return preferences_form(
            &app,
            StatusCode::FORBIDDEN,
            &token,
            &subscriber,
            Some(&e.to_string()),
        );
    }
    let site = app.site();
    let lang = f.get("lang").unwrap_or("").to_string();
    let topics = f.all("topics");
    if let Some(t) = topics.iter().find(|t| !site.topics.contains(t)) {
        let p = format!("There is no topic {t:?}.");
        return preferences_form(&app, StatusCode::BAD_REQUEST, &token, &subscriber, Some(&p));
    }
    let store = app.store.clone();
    let languages = site.languages.clone();
    let (l, t) = (lang.clone(), topics.clone());
    let ip = client_ip(&app, peer, &headers).to_string();
    let id = subscriber.id;
    let saved = blocking(move || {
        let origin = Origin {
            source: "preferences page",
            ip: Some(&ip),
        };
        store.set_preferences(id, &l, &t, &languages, origin, now)
    })
    .await;
    match saved {
        Ok(()) => {
            let updated = Subscriber {
                lang,
                topics,
                ..subscriber
            };
            preferences_form(
                &app,
                StatusCode::OK,
                &token,
                &updated,
                Some("Your choices are saved."),
            )
        }
        // A bad language: the store's own message says which ones exist.
        Err(Failure::Other(e)) if !site.languages.contains(&lang) => {
            preferences_form(&app, StatusCode::BAD_REQUEST, &token, &subscriber, Some(&e))
        }
        Err(Failure::Busy) => busy(preferences_form(
            &app,
            StatusCode::OK,
            &token,
            &subscriber,
            Some(BUSY_TEXT),
        )),
        Err(e) => internal(&app, "preferences", e),
    }
}
