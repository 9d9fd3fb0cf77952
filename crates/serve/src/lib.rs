//! herald-serve: `herald serve`.
//!
//! It serves the published archive (`public/`) for preview, exactly as `publish`
//! wrote it (so the embargo holds), rebuilds it when a statement changes, and
//! handles subscriptions against herald-mail's subscriber store: subscribe (double
//! opt-in), confirm, one-click unsubscribe (RFC 8058) and preferences. It never
//! writes below `public/` and never renders a statement itself.

mod conn;
pub mod csrf;
mod files;
mod form;
pub mod limit;
pub mod mailer;
pub mod pages;
pub mod settings;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_mail::{MailSettings, MailStore, Secret, StoreError, TokenError};
use notify::{EventKind, RecursiveMode, Watcher};

pub use pages::SiteInfo;
pub use settings::ServeSettings;

/// The current time. `herald serve` passes the system clock; tests pass their own.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;
/// Publishes the site again (the pipeline's `publish`), called after `content/` changes.
pub type Rebuild = Arc<dyn Fn() + Send + Sync>;

pub struct ServeOptions {
    /// The project root: the folder that holds `content/`, `public/` and `.herald/`.
    pub root: PathBuf,
    /// Overrides `[serve] listen` (e.g. `127.0.0.1:0` in tests).
    pub listen: Option<SocketAddr>,
    pub clock: Clock,
    /// Called (on a background thread, debounced) when a file under `content/` changes.
    pub rebuild: Option<Rebuild>,
    /// The key of the signed links; default: `HERALD_SECRET`, else `.herald/secret`
    /// (the same key `publish` signs bulletins' unsubscribe links with).
    pub secret: Option<Secret>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("root", &self.root)
            .field("listen", &self.listen)
            .field("rebuild", &self.rebuild.is_some())
            .finish_non_exhaustive()
    }
}

impl ServeOptions {
    /// Defaults: `[serve] listen`, the system clock, no rebuild, the project's secret.
    pub fn new(root: impl Into<PathBuf>) -> ServeOptions {
        ServeOptions {
            root: root.into(),
            listen: None,
            clock: Arc::new(Utc::now),
            rebuild: None,
            secret: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot load content/: {0}")]
    Content(#[from] herald_content::LoadError),
    #[error("{0}")]
    Config(Box<herald_content::Diagnostic>),
    #[error("[serve] public_url {0:?} is not an http(s) URL")]
    PublicUrl(String),
    #[error("the link secret: {0}")]
    Secret(#[from] TokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mailer(#[from] mailer::MailerError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot watch content/ for changes: {0}")]
    Watch(#[from] notify::Error),
    #[error("no random numbers from the system: {0}")]
    Random(String),
    #[error("[serve] {0} must be at least 1")]
    Zero(&'static str),
}

/// The statements' languages and topics, as the forms offer them.
pub fn site_info(root: &Path, now: DateTime<Utc>) -> Result<SiteInfo, herald_content::LoadError> {
    let corpus = herald_content::load(root)?;
    let mut topics: Vec<String> = corpus
        .due(now)
        .iter()
        .flat_map(|s| s.meta.topics.iter().cloned())
        .collect();
    topics.sort();
    topics.dedup();
    let topic_names = herald_content::l10n::TopicNames::from_config(&corpus.config)
        .map_err(|d| herald_content::LoadError::Invalid(herald_content::Diagnostics(vec![d])))?;
    Ok(SiteInfo {
        topic_names,
        title: corpus.config.title.clone(),
        languages: corpus.config.languages.clone(),
        default_language: corpus.config.default_language.clone(),
        topics,
    })
}

/// Everything the handlers share.
pub(crate) struct App {
    pub root: PathBuf,
    pub settings: ServeSettings,
    pub public_url: String,
    pub organization: String,
    pub site: RwLock<Arc<SiteInfo>>,
    pub store: Arc<MailStore>,
    pub files: files::Files,
    pub secret: Secret,
    pub csrf: csrf::Csrf,
    pub limits: limit::Limits,
    pub mailer: mailer::Mailer,
    pub clock: Clock,
}

impl App {
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub fn site(&self) -> Arc<SiteInfo> {
        match self.site.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn reload_site(&self) {
        match site_info(&self.root, self.now()) {
            Ok(info) => match self.site.write() {
                Ok(mut s) => *s = Arc::new(info),
                Err(poisoned) => *poisoned.into_inner() = Arc::new(info),
            },
            Err(e) => tracing::warn!("content/ does not load, forms keep the previous topics: {e}"),
        }
    }
}

/// A bound server, not yet answering: [`Server::local_addr`] tells where it listens.
pub struct Server {
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

/// Load the settings, open the store, bind the address and start watching `content/`.
pub async fn bind(opts: ServeOptions) -> Result<Server, ServeError> {
    let root = opts.root;
    let corpus = herald_content::load(&root)?;
    let config = &corpus.config;
    let settings: ServeSettings = config
        .section("serve")
        .map_err(|d| ServeError::Config(Box::new(d)))?;
    let mail: MailSettings = config
        .section("mail")
        .map_err(|d| ServeError::Config(Box::new(d)))?;
    for (name, value) in [
        ("header_timeout_secs", settings.header_timeout_secs),
        ("body_timeout_secs", settings.body_timeout_secs),
        ("max_connections", settings.max_connections),
    ] {
        if value == 0 {
            return Err(ServeError::Zero(name));
        }
    }
    let paths = herald_content::urls::Paths::new(&root);
    let secret = match opts.secret {
        Some(s) => s,
        None => Secret::from_env_or_file(&paths.state)?,
    };
    let store_path = paths.ledger.clone();
    let store = tokio::task::spawn_blocking(move || MailStore::open(&store_path))
        .await
        .map_err(|e| ServeError::Io(std::io::Error::other(e)))??;
    // A request waits this long for the write lock, then answers 503.
    store.set_write_wait(Duration::from_millis(u64::from(settings.db_wait_ms)))?;
    let addr = opts.listen.unwrap_or(settings.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    let public_url = match &settings.public_url {
        Some(u)
            if (u.starts_with("https://") || u.starts_with("http://"))
                && !u.contains(char::is_whitespace) =>
        {
            if u.ends_with('/') {
                u.clone()
            } else {
                format!("{u}/")
            }
        }
        Some(u) => return Err(ServeError::PublicUrl(u.clone())),
        None => format!("http://{local}/"),
    };
    let org = &config.organization;
    let mailer = mailer::Mailer::new(config, &paths, &mail)?;
    let csrf = csrf::Csrf::new(i64::from(settings.form_expiry_minutes) * 60)
        .map_err(|e| ServeError::Random(e.to_string()))?;
    let now = (opts.clock)();
    let app = Arc::new(App {
        site: RwLock::new(Arc::new(site_info(&root, now)?)),
        root: root.clone(),
        public_url,
        organization: org.name.clone(),
        limits: limit::Limits::new(&settings),
        settings,
        store: Arc::new(store),
        files: files::Files::new(paths.public.clone()),
        secret,
        csrf,
        mailer,
        clock: opts.clock,
    });
    let watcher = match opts.rebuild {
        Some(rebuild) => Some(watch(&root, rebuild, app.clone())?),
        None => None,
    };
    tracing::info!("serving {} at {}", paths.public.display(), app.public_url);
    Ok(Server {
        listener,
        app,
        _watcher: watcher,
    })
}

/// How long `content/` must stay quiet after a change before the rebuild runs, so
/// an editor's save (several events) rebuilds once.
const QUIET: Duration = Duration::from_millis(300);

/// Stack of the watcher thread, which runs the rebuild.
const WATCH_STACK: usize = 64 << 20;

/// Only changes count. inotify also reports opens and reads, and the rebuild itself
/// reads every statement: counting those would rebuild forever.
fn is_change(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// Watches `content/` and calls `rebuild` on a thread of its own once a burst of
/// changes has been quiet for [`QUIET`]. The thread ends when the watcher is dropped.
fn watch(
    root: &Path,
    rebuild: Rebuild,
    app: Arc<App>,
) -> Result<notify::RecommendedWatcher, ServeError> {
    let (tx, rx) = std::sync::mpsc::channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(move |res| {
        // The receiver is gone only when the server is: nothing left to tell.
        let _ = tx.send(res);
    })?;
    watcher.watch(&herald_content::content_dir(root), RecursiveMode::Recursive)?;
    std::thread::Builder::new()
        .name("herald-serve-watch".into())
        // The rebuild runs here: room for what the main thread of `herald publish`
        // would have (reserved, not committed, until used).
        .stack_size(WATCH_STACK)
        .spawn(move || {
            use std::sync::mpsc::RecvTimeoutError;
            let mut changed: std::collections::HashSet<PathBuf> = Default::default();
            loop {
                let next = if changed.is_empty() {
                    rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
                } else {
                    rx.recv_timeout(QUIET)
                };
                match next {
                    Ok(Ok(event)) if is_change(&event.kind) => changed.extend(event.paths),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("watching content/: {e}"),
                    Err(RecvTimeoutError::Timeout) => {
                        tracing::info!("content/ changed ({} files): rebuilding", changed.len());
                        changed.clear();
                        // Whatever the content does to a rebuild, the watcher (and with it
                        // every later rebuild) lives on and the last good site stays served.
                        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            rebuild();
                            app.reload_site();
                        }));
                        if let Err(panic) = run {
                            let why = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_else(|| "unknown panic".into());
                            tracing::error!(
                                "rebuild panicked ({why}); public/ keeps the last good site"
                            );
                            eprintln!(
                                "herald serve: rebuild panicked ({why}); the last good site is still served"
                            );
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        })?;
    Ok(watcher)
}

impl Server {
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Where confirmation links point (ends with `/`).
    pub fn public_url(&self) -> &str {
        &self.app.public_url
    }

    /// Answer requests until `shutdown` completes.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let sweeper = tokio::spawn(sweep(self.app.clone()));
        let router = web::router(self.app.clone());
        let s = &self.app.settings;
        let limits = conn::ConnLimits {
            header_timeout: Duration::from_secs(u64::from(s.header_timeout_secs)),
            body_timeout: Duration::from_secs(u64::from(s.body_timeout_secs)),
            max_connections: s.max_connections as usize,
            shutdown_grace: Duration::from_secs(5),
        };
        let result = conn::serve(self.listener, router, limits, shutdown).await;
        sweeper.abort();
        Ok(result?)
    }
}

/// Delete expired pending subscriptions and idle rate-limit keys, every minute.
async fn sweep(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let before =
            app.now() - chrono::Duration::hours(i64::from(app.settings.confirm_expiry_hours));
        let store = app.store.clone();
        match tokio::task::spawn_blocking(move || store.expire_pending(before)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!("{n} unconfirmed subscriptions expired"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("expiring pending subscriptions: {e}"),
            Err(e) => tracing::warn!("expiring pending subscriptions: {e}"),
        }
        app.limits.forget_idle();
    }
}

/// Bind and serve until Ctrl-C.
pub async fn serve(opts: ServeOptions) -> Result<(), ServeError> {
    let server = bind(opts).await?;
    server
        .run_until(async {
            if tokio::signal::ctrl_c().await.is_err() {
                // No signal handling: run until killed.
                std::future::pending::<()>().await;
            }
        })
        .await
}

/// [`serve`] on a runtime of its own, for callers that are not async.
pub fn run(opts: ServeOptions) -> Result<(), ServeError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(opts))
}
