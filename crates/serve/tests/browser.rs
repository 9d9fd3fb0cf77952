//! End to end in Debian's headless Chromium, driven over the DevTools protocol:
//! open the index, follow a statement, download its PDF, subscribe with the page's
//! form, confirm from the mail, unsubscribe from a bulletin's link. Screenshots of
//! the index and the statement go to `target/artifacts/`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use herald_mail::{Purpose, Status};
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

const CHROMIUM: &str = "/usr/bin/chromium";

struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    session: String,
    next: u64,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().expect("profile");
        // Download PDFs instead of opening them in the built-in viewer.
        std::fs::create_dir_all(profile.path().join("Default")).expect("profile dir");
        std::fs::write(
            profile.path().join("Default/Preferences"),
            r#"{"plugins":{"always_open_pdf_externally":true},"download":{"prompt_for_download":false}}"#,
        )
        .expect("preferences");
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=1200,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts (run `cargo xtask provision`)");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines.next().expect("DevTools line").expect("utf-8");
            if let Some(u) = line.strip_prefix("DevTools listening on ") {
                break u.trim().to_string();
            }
        };
        // Keep draining stderr so chromium never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        let hostport = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("host")
            .to_string();
        let stream = TcpStream::connect(&hostport).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("websocket");
        let mut b = Browser {
            child,
            ws,
            session: String::new(),
            next: 0,
            _profile: profile,
        };
        let targets = b.call(None, "Target.getTargets", json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .expect("targets")
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page")["targetId"]
            .clone();
        let attached = b.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": page, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().expect("session").to_string();
        b.page("Page.enable", json!({}));
        b
    }

    /// Send a command and wait for its answer, skipping events.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        match self.try_call(session, method, params) {
            Ok(v) => v,
            Err(e) => panic!("{method}: {e}"),
        }
    }

    /// [`Browser::call`], with the error answer returned rather than a panic.
    fn try_call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).expect("send");
        loop {
            let m = self.ws.read().expect("read");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["id"] == id {
                return match v.get("error") {
                    Some(_) => Err(v),
                    None => Ok(v["result"].clone()),
                };
            }
        }
    }

    fn page(&mut self, method: &str, params: Value) -> Value {
        let s = self.session.clone();
        self.call(Some(&s), method, params)
    }

    /// Run `js` in the page. A click that navigates may end its own evaluation with
    /// "Inspected target navigated or closed": the action ran, so that is success.
    fn eval(&mut self, js: &str) -> Value {
        match self.evaluate(js) {
            Ok(v) => v,
            Err(e) if e.to_string().contains("navigated or closed") => Value::Null,
            Err(e) => panic!("Runtime.evaluate {js}: {e}"),
        }
    }

    /// Read a value from the page; during a navigation, ask again the page that loads.
    fn read(&mut self, js: &str) -> Value {
        let start = Instant::now();
        loop {
            match self.evaluate(js) {
                Ok(v) => return v,
                Err(e)
                    if e.to_string().contains("navigated or closed")
                        && start.elapsed() < Duration::from_secs(20) =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("Runtime.evaluate {js}: {e}"),
            }
        }
    }

    fn evaluate(&mut self, js: &str) -> Result<Value, Value> {
        let s = self.session.clone();
        let params = json!({"expression": js, "returnByValue": true});
        self.try_call(Some(&s), "Runtime.evaluate", params)
            .map(|r| r["result"]["value"].clone())
    }

    /// Wait until the page at a URL containing `part` has loaded.
    fn wait_for(&mut self, part: &str) {
        let start = Instant::now();
        loop {
            let href = self
                .read("location.href")
                .as_str()
                .unwrap_or("")
                .to_string();
            let ready = self.read("document.readyState");
            if href.contains(part) && ready == "complete" {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "never reached {part}, at {href}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn goto(&mut self, url: &str) {
        self.page("Page.navigate", json!({"url": url}));
        self.wait_for(url);
    }

    fn text(&mut self) -> String {
        self.read("document.body.innerText")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn screenshot(&mut self, path: &Path) {
        let r = self.page("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("data"))
            .expect("base64");
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(path, png).expect("write screenshot");
    }
}

fn artifacts() -> PathBuf {
    let dir = workspace().join("target/artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts");
    dir
}

#[test]
fn reader_subscribes_confirms_and_unsubscribes_in_chromium() {
    let p = Project::new("");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let run = rt.block_on(start(&p));
    let mut b = Browser::launch();
    let downloads = tempfile::tempdir().expect("downloads");
    b.call(
        None,
        "Browser.setDownloadBehavior",
        json!({"behavior": "allow", "downloadPath": downloads.path().to_str().expect("utf-8")}),
    );

    // The index, then the statement by its link.
    b.goto(&run.url("/en/"));
    assert!(b.text().contains("World Day against Trafficking"));
    b.screenshot(&artifacts().join("serve-index.png"));
    b.eval("document.querySelector('a[href$=\"2014/world-day-against-trafficking/\"]').click()");
    b.wait_for("/en/2014/world-day-against-trafficking/");
    b.screenshot(&artifacts().join("serve-statement.png"));

    // Its PDF, downloaded by following the link.
    assert!(b.text().contains("Subscribe"), "{}", b.text());
    b.eval("document.querySelector('p.pdf a').click()");
    let pdf = downloads
        .path()
        .join("world-day-against-trafficking.en.pdf");
    let start = Instant::now();
    while !pdf.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no PDF downloaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        std::fs::read(&pdf).expect("pdf"),
        p.public("en/2014/world-day-against-trafficking/world-day-against-trafficking.en.pdf")
    );

    // The page's own subscribe form (no token: the service asks once more).
    b.eval(
        "document.querySelector('#subscribe-email').value = 'browser@example.org';\
         document.querySelector('#subscribe-lang').value = 'ru';\
         document.querySelector('input[value=migration]').checked = true;\
         document.querySelector('section.subscribe button[type=submit]').click()",
    );
    b.wait_for("/subscribe");
    assert!(b.text().contains("Check your details"), "{}", b.text());
    b.eval("document.querySelector('#subscribe').click()");
    let start = Instant::now();
    while !b.text().contains("Check your inbox") {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", b.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = p.subscriber("browser@example.org").expect("stored");
    assert_eq!(
        (s.status, s.lang.as_str(), s.topics.clone()),
        (Status::Pending, "ru", vec!["migration".to_string()])
    );

    // The confirmation mail, and its link opened in the browser.
    let mails = rt.block_on(wait_for_mails(&p, 1));
    let link = confirm_link(&mails[0]);
    b.goto(&link);
    assert_eq!(
        p.status("browser@example.org"),
        Some(Status::Pending),
        "GET must not confirm"
    );
    b.eval("document.querySelector('#confirm').click()");
    let start = Instant::now();
    while !b.text().contains("Subscription confirmed") {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", b.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(p.status("browser@example.org"), Some(Status::Confirmed));

    // A bulletin's unsubscribe link (as herald-mail makes it), opened and clicked.
    let token = p.token(Purpose::Unsubscribe, s.id);
    b.goto(&run.url(&format!("/unsubscribe/{token}")));
    assert_eq!(
        p.status("browser@example.org"),
        Some(Status::Confirmed),
        "GET must not unsubscribe"
    );
    b.eval("document.querySelector('#unsubscribe').click()");
    let start = Instant::now();
    while !b.text().contains("You are unsubscribed") {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", b.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(p.status("browser@example.org"), Some(Status::Unsubscribed));
    drop(run);
}

/// axe-core's browser build, installed by `cargo xtask provision` into the target folder.
fn axe_source() -> String {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let path = target.join("axe/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `cargo xtask provision` (it installs axe-core with npm into the target folder)",
            path.display()
        )
    })
}

impl Browser {
    /// Run `js` (an expression giving a promise) and wait for its value.
    fn await_value(&mut self, js: &str) -> Value {
        let s = self.session.clone();
        let params = json!({"expression": js, "returnByValue": true, "awaitPromise": true});
        match self.try_call(Some(&s), "Runtime.evaluate", params) {
            Ok(r) => {
                if let Some(e) = r.get("exceptionDetails") {
                    panic!("{js}: {e}");
                }
                r["result"]["value"].clone()
            }
            Err(e) => panic!("{js}: {e}"),
        }
    }

    /// A key press as a keyboard sends it.
    fn key(&mut self, key: &str, code: u32, text: Option<&str>) {
        for kind in ["keyDown", "keyUp"] {
            let mut p = json!({
                "type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code,
            });
            if let (Some(t), "keyDown") = (text, kind) {
                p["text"] = json!(t);
            }
            self.page("Input.dispatchKeyEvent", p);
        }
    }

    fn focused(&mut self) -> String {
        self.read("(document.activeElement && (document.activeElement.id || document.activeElement.tagName + ':' + (document.activeElement.value || document.activeElement.textContent || '').trim())) || ''")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Press Tab until the focused element answers `is` (as `focused` describes it).
    fn tab_to(&mut self, is: &str) {
        for _ in 0..200 {
            self.key("Tab", 9, None);
            if self.focused() == is {
                // The focus is visible: an outline is drawn around it.
                let outline = self.read("getComputedStyle(document.activeElement).outlineStyle");
                assert_ne!(outline, "none", "{is} has no visible focus");
                return;
            }
        }
        panic!("Tab never reached {is}");
    }
}

/// The WCAG 2.2 A and AA rules of axe-core (and those of 2.0 and 2.1 they extend).
const AXE_RUN: &str = "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22a', 'wcag22aa']}, resultTypes: ['violations']}).then(r => ({passes: r.passes.length, violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}))}))";

#[test]
fn axe_finds_no_wcag_22_aa_violation_on_any_page_type_in_any_language() {
    let p = Project::new("");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let run = rt.block_on(start(&p));
    let axe = axe_source();
    let mut b = Browser::launch();
    let mut pages: Vec<String> = Vec::new();
    for lang in ["en", "ru", "kk"] {
        pages.push(format!("/{lang}/"));
        pages.push(format!("/{lang}/2014/world-day-against-trafficking/"));
        pages.push(format!("/{lang}/topics/"));
        pages.push(format!("/{lang}/topics/trafficking/"));
        pages.push(format!("/{lang}/2014/"));
        pages.push(format!("/subscribe?lang={lang}"));
    }
    pages.push("/en/2016/labour-migration-in-figures/".into());
    let mut checked = 0;
    for scheme in ["light", "dark"] {
        b.page(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        );
        for path in &pages {
            let url = run.url(path);
            b.goto(&url);
            assert!(
                !b.text().contains("404") || b.text().len() > 400,
                "{path} is missing"
            );
            // The site's CSP forbids scripts; DevTools evaluation is not a page script.
            b.eval(&axe);
            let result = b.await_value(AXE_RUN);
            assert!(
                result["passes"].as_u64().unwrap_or(0) > 10,
                "{path}: axe ran no rule: {result}"
            );
            let violations = &result["violations"];
            assert_eq!(
                violations,
                &json!([]),
                "{path} ({scheme}): {}",
                serde_json::to_string_pretty(violations).unwrap_or_default()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * pages.len());
    // The check can fail: an image without a text alternative is reported.
    b.eval("document.querySelector('main').insertAdjacentHTML('beforeend', '<img src=\"/style.css\">')");
    let result = b.await_value(AXE_RUN);
    assert!(
        result["violations"].to_string().contains("image-alt"),
        "{result}"
    );
    drop(run);
}

#[test]
fn a_keyboard_alone_subscribes() {
    let p = Project::new("");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let run = rt.block_on(start(&p));
    let mut b = Browser::launch();
    b.goto(&run.url("/kk/"));
    // The skip link comes first and moves the focus to the content.
    b.key("Tab", 9, None);
    assert_eq!(b.focused(), format!("A:{}", "Мазмұнға өту"));
    b.tab_to("subscribe-email");
    b.page("Input.insertText", json!({"text": "keys@example.org"}));
    b.tab_to("subscribe-lang");
    assert_eq!(b.read("document.activeElement.value"), "kk");
    // The first topic, checked with the space bar.
    b.key("Tab", 9, None);
    assert_eq!(b.read("document.activeElement.type"), "checkbox");
    let topic = b
        .read("document.activeElement.value")
        .as_str()
        .expect("topic")
        .to_string();
    b.key(" ", 32, Some(" "));
    assert_eq!(b.read("document.activeElement.checked"), true);
    b.tab_to(&format!("BUTTON:{}", "Жазылу"));
    b.key("Enter", 13, Some("\r"));
    b.wait_for("/subscribe");
    let start = Instant::now();
    while !b.text().contains("Check your details") {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", b.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    b.tab_to("subscribe");
    b.key("Enter", 13, Some("\r"));
    let start = Instant::now();
    while !b.text().contains("Check your inbox") {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", b.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = p.subscriber("keys@example.org").expect("stored");
    assert_eq!(
        (s.status, s.lang.as_str(), s.topics.clone()),
        (Status::Pending, "kk", vec![topic])
    );
    drop(run);
}
