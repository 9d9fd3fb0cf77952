//! A project in a temporary folder (the sample content, its real published site,
//! [serve] settings) and a server on 127.0.0.1:0 to talk to.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use herald_mail::{MailStore, Purpose, Secret, Status, Subscriber};
use herald_serve::{Rebuild, ServeOptions};

pub const SECRET: [u8; 32] = [42u8; 32];

pub struct Project {
    pub dir: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Project {
    /// The sample content, `serve` settings appended to herald.toml, and `public/` as
    /// a publish would have written it (the embargoed 2027 statement absent).
    pub fn new(serve: &str) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&workspace().join("content"), &dir.path().join("content"));
        let toml = dir.path().join("content/herald.toml");
        let mut text = std::fs::read_to_string(&toml).expect("herald.toml");
        // The test's own [serve] settings replace the sample's.
        if let Some(at) = text.find("\n[serve]") {
            text.truncate(at);
        }
        text.push_str("\n[serve]\n");
        text.push_str(serve);
        std::fs::write(&toml, text).expect("write herald.toml");
        let p = Project { dir };
        p.write_site();
        p
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) {
        let path = self.root().join("public").join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    /// `public/` as a publish at [`start_time`] writes it: the real site (with the
    /// subscribe form) and PDFs, from herald-site and herald-pdf.
    fn write_site(&self) {
        let corpus = herald_content::load(self.root()).expect("sample content loads");
        let due = corpus.due(start_time());
        let config = &corpus.config;
        let pdf_settings = herald_pdf::PdfSettings::from_config(config).expect("[pdf]");
        let renderer = herald_pdf::Renderer::new(config, &pdf_settings).expect("renderer");
        let mut sizes = herald_content::fast::HashMap::default();
        for s in &due {
            let bytes = renderer.render(config, s).expect("pdf");
            let path = herald_content::urls::pdf(s);
            sizes.insert(path.clone(), bytes.len() as u64);
            self.write(&path, &bytes);
        }
        let mut topics: Vec<String> = due.iter().flat_map(|s| s.meta.topics.clone()).collect();
        topics.sort();
        topics.dedup();
        let form = herald_site::SubscribeForm {
            action: "/subscribe".into(),
            languages: config.languages.clone(),
            topics,
        };
        let sink = herald_content::urls::MemorySink::default();
        herald_site::render(
            &herald_site::SiteInput {
                settings: None,
                corpus: &corpus,
                published: &due,
                pdfs: herald_site::PdfLinks::Sizes(&sizes),
                feeds: &[],
                subscribe: Some(&form),
                integrity: Default::default(),
                previews: None,
            },
            &sink,
        )
        .expect("site");
        for (path, bytes) in sink.0.lock().expect("sink").iter() {
            self.write(path, bytes);
        }
    }

    /// The bytes of a file below `public/`.
    pub fn public(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.root().join("public").join(rel)).expect("public file")
    }

    pub fn outbox(&self) -> Vec<PathBuf> {
        let dir = self.root().join("outbox");
        let mut v: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    pub fn store(&self) -> MailStore {
        MailStore::open(&self.root().join(".herald/herald.db")).expect("store")
    }

    pub fn subscriber(&self, address: &str) -> Option<Subscriber> {
        self.store().subscriber_by_address(address).expect("query")
    }

    pub fn status(&self, address: &str) -> Option<Status> {
        self.subscriber(address).map(|s| s.status)
    }

    /// A link token for the row `id` as herald makes it (bound to its key).
    pub fn token(&self, purpose: Purpose, id: i64) -> String {
        let s = self.store().subscriber(id).expect("q").expect("row");
        secret().issue(purpose, id, s.token_key, None)
    }
}

pub fn secret() -> Secret {
    Secret::from_bytes(&SECRET).expect("secret")
}

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0)
        .single()
        .expect("valid")
}

pub struct Running {
    pub addr: SocketAddr,
    pub base: String,
    pub clock: Arc<Mutex<DateTime<Utc>>>,
    pub rebuilds: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn advance(&self, d: chrono::Duration) {
        let mut t = self.clock.lock().expect("clock");
        *t += d;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path.trim_start_matches('/'))
    }

    pub fn rebuilds(&self) -> usize {
        self.rebuilds.load(Ordering::SeqCst)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn start(project: &Project) -> Running {
    start_with(project, Arc::new(|| {})).await
}

/// [`start`], with `then` run by each rebuild after it is counted.
pub async fn start_with(project: &Project, then: Rebuild) -> Running {
    let clock = Arc::new(Mutex::new(start_time()));
    let c = clock.clone();
    let rebuilds = Arc::new(AtomicUsize::new(0));
    let r = rebuilds.clone();
    let rebuild: Rebuild = Arc::new(move || {
        r.fetch_add(1, Ordering::SeqCst);
        then();
    });
    let opts = ServeOptions {
        root: project.root().to_path_buf(),
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        clock: Arc::new(move || *c.lock().expect("clock")),
        rebuild: Some(rebuild),
        secret: Some(secret()),
    };
    let server = herald_serve::bind(opts).await.expect("bind");
    let addr = server.local_addr();
    let base = server.public_url().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run_until(async {
                let _ = rx.await;
            })
            .await
            .expect("server");
    });
    Running {
        addr,
        base,
        clock,
        rebuilds,
        stop: Some(tx),
        task,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of `name="csrf"` in a form page, and the cookie pair to send back.
pub fn csrf_of(html: &str, set_cookie: &str) -> (String, String) {
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("csrf field") + marker.len();
    let token = html[at..].split('"').next().expect("value").to_string();
    let cookie = set_cookie.split(';').next().expect("cookie").to_string();
    (token, cookie)
}

/// GET /subscribe: a fresh form token and its cookie.
pub async fn form_token(c: &reqwest::Client, run: &Running) -> (String, String) {
    let res = c
        .get(run.url("/subscribe"))
        .send()
        .await
        .expect("GET /subscribe");
    let cookie = res
        .headers()
        .get("set-cookie")
        .expect("set-cookie")
        .to_str()
        .expect("ascii")
        .to_string();
    let html = res.text().await.expect("body");
    csrf_of(&html, &cookie)
}

pub fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// POST /subscribe with a valid token: (status, body).
pub async fn subscribe(
    c: &reqwest::Client,
    run: &Running,
    email: &str,
    lang: &str,
    topics: &[&str],
) -> (u16, String) {
    let (token, cookie) = form_token(c, run).await;
    let mut fields = vec![("csrf", token.as_str()), ("email", email), ("lang", lang)];
    fields.extend(topics.iter().map(|t| ("topics", *t)));
    let res = c
        .post(run.url("/subscribe"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(form(&fields))
        .send()
        .await
        .expect("POST /subscribe");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// Wait (up to 5 s) for the outbox to hold `n` mails.
pub async fn wait_for_mails(p: &Project, n: usize) -> Vec<PathBuf> {
    for _ in 0..100 {
        let v = p.outbox();
        if v.len() >= n {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    p.outbox()
}

/// The confirmation link in a mail, read with a real MIME parser.
pub fn confirm_link(eml: &Path) -> String {
    let bytes = std::fs::read(eml).expect("eml");
    let msg = mail_parser::MessageParser::default()
        .parse(&bytes)
        .expect("parses");
    let text = msg.body_text(0).expect("text part").to_string();
    text.split_whitespace()
        .find(|w| w.contains("/confirm?token="))
        .expect("a confirmation link")
        .to_string()
}

pub fn token_of(link: &str) -> String {
    link.rsplit_once("token=").expect("token").1.to_string()
}
