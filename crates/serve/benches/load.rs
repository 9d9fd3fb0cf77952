//! Load test: `cargo bench -p herald-serve --bench load` (needs `wrk`, see
//! `cargo xtask provision`). wrk hammers POST /subscribe (each request a new address,
//! a valid CSRF token), POST /confirm with each row's link (a repeat answers 410) and then the one-click POST /unsubscribe, 20 s each on
//! loopback; the bench prints req/s, p50, p99 and errors, then checks the
//! subscriber rows: none lost, none duplicated, every unsubscribe applied.
//! `HERALD_LOAD_SECS` shortens the runs. `HERALD_LOAD_SEND=20000` adds a run of
//! subscribe while a bulletin goes to that many subscribers (through postfix's
//! smtp-sink) on the same database, and prints the longest subscribe.
//! `HERALD_LOAD_SLOW=5` holds five slow connections open during the subscription runs. First it serves static pages and a PDF, beside
//! nginx on the same files when nginx is installed (`static_pages.rs`). The per-IP limit is raised for the run:
//! every request comes from 127.0.0.1.

#[path = "../tests/common/mod.rs"]
mod common;
mod slow;
mod static_pages;

use std::process::Command;

use common::*;
use herald_mail::{Purpose, Status};

const SUBSCRIBE: &str = r#"
local threads = {}
local counter = 1
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function init(args)
  n = 0; ok = 0; bad = 0
end
function request()
  n = n + 1
  local body = "csrf=__TOKEN__&lang=en&topics=migration&email=w" .. id .. "-" .. n .. "%40load.example.org"
  return wrk.format("POST", "/subscribe", {["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = "__COOKIE__"}, body)
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local sent, oks, bads = 0, 0, 0
  for _, t in ipairs(threads) do
    sent = sent + t:get("n"); oks = oks + t:get("ok"); bads = bads + t:get("bad")
  end
  io.write(string.format("HERALD sent=%d ok=%d bad=%d p50=%d p99=%d max=%d rps=%.0f errors=%d\n", sent, oks, bads,
    latency:percentile(50), latency:percentile(99), latency.max, summary.requests / (summary.duration / 1e6),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"#;

const CONFIRM: &str = r#"
local threads = {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function init(args)
  n = 0; ok = 0; bad = 0
  tokens = {}
  for line in io.lines("__TOKENS__") do tokens[#tokens + 1] = line end
  step = __THREADS__
end
function request()
  local i = (id + n * step) % #tokens + 1
  n = n + 1
  return wrk.format("POST", "/confirm", {["Content-Type"] = "application/x-www-form-urlencoded"}, "token=" .. tokens[i])
end
-- The first use of a link confirms (200), a repeat is refused as used (410).
function response(status, headers, body)
  if status == 200 or status == 410 then ok = ok + 1 else bad = bad + 1 end
end
"#;

const UNSUBSCRIBE: &str = r#"
local threads = {}
local counter = 0
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function init(args)
  n = 0; ok = 0; bad = 0
  tokens = {}
  for line in io.lines("__TOKENS__") do tokens[#tokens + 1] = line end
  step = __THREADS__
end
function request()
  local i = (id + n * step) % #tokens + 1
  n = n + 1
  return wrk.format("POST", "/unsubscribe?token=" .. tokens[i], {["Content-Type"] = "application/x-www-form-urlencoded"}, "List-Unsubscribe=One-Click")
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else bad = bad + 1 end
end
"#;

struct Run {
    sent: u64,
    ok: u64,
    bad: u64,
    max_ms: f64,
}

fn wrk(url: &str, script: &str, secs: u64, threads: u32, dir: &std::path::Path, name: &str) -> Run {
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, script).expect("script");
    let out = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            "64",
            "-d",
            &format!("{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(&path)
        .arg(url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("HERALD "))
        .expect("summary line");
    let get = |k: &str| -> f64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .expect("field")
    };
    println!(
        "{name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, non-200 {}, socket errors {} ({} requests in {secs} s)",
        get("rps"),
        get("p50") / 1000.0,
        get("p99") / 1000.0,
        get("max") / 1000.0,
        get("bad"),
        get("errors"),
        get("sent"),
    );
    Run {
        sent: get("sent") as u64,
        ok: get("ok") as u64,
        bad: get("bad") as u64 + get("errors") as u64,
        max_ms: get("max") / 1000.0,
    }
}

const DONE: &str = "function done(summary, latency, requests)
  local sent, oks, bads = 0, 0, 0
  for _, t in ipairs(threads) do
    sent = sent + t:get(\"n\"); oks = oks + t:get(\"ok\"); bads = bads + t:get(\"bad\")
  end
  io.write(string.format(\"HERALD sent=%d ok=%d bad=%d p50=%d p99=%d max=%d rps=%.0f errors=%d\\n\", sent, oks, bads,
    latency:percentile(50), latency:percentile(99), latency.max, summary.requests / (summary.duration / 1e6),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
";

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: skip then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let secs: u64 = std::env::var("HERALD_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let threads = 2;
    let p = Project::new("ip_per_minute = 100000000\nip_burst = 100000000\n");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let run = rt.block_on(start(&p));
    let c = client();
    let (token, cookie) = rt.block_on(form_token(&c, &run));
    let base = format!("http://{}", run.addr);
    static_pages::run(&p.root().join("public"), &base, secs.min(10));
    // HERALD_LOAD_SLOW=5: the subscription endpoints under load with that many slow
    // clients holding connections open the whole time.
    let slow_n: usize = std::env::var("HERALD_LOAD_SLOW")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let slow = slow::Slow::hold(run.addr, slow_n);
    if slow_n > 0 {
        println!("{slow_n} slow connections held open from here on");
    }

    let script = SUBSCRIBE
        .replace("__TOKEN__", &token)
        .replace("__COOKIE__", &cookie);
    let sub = wrk(&base, &script, secs, threads, p.root(), "subscribe");
    // Requests still in flight when wrk stopped may finish after it: let them.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let store = p.store();
    let rows: Vec<_> = store
        .subscribers(None)
        .expect("rows")
        .into_iter()
        .filter(|s| s.address.ends_with("@load.example.org"))
        .collect();
    let n = rows.len() as u64;
    let mut addresses: Vec<&str> = rows.iter().map(|s| s.address.as_str()).collect();
    addresses.sort();
    addresses.dedup();
    println!(
        "subscribe rows: {n} (answered 200: {}, sent: {}), distinct addresses: {}",
        sub.ok,
        sub.sent,
        addresses.len()
    );
    assert_eq!(sub.bad, 0, "errors during subscribe");
    assert!(n >= sub.ok && n <= sub.sent, "lost or extra rows");
    assert_eq!(addresses.len() as u64, n, "duplicated rows");
    assert!(
        rows.iter()
            .all(|s| s.status == Status::Pending && s.topics == ["migration"])
    );

    // The links the confirmation mails carry (each bound to its row's key).
    let tokens: String = p
        .outbox()
        .iter()
        .map(|eml| format!("{}\n", token_of(&confirm_link(eml))))
        .collect();
    let tokens_path = p.root().join("confirm-tokens.txt");
    std::fs::write(&tokens_path, tokens).expect("tokens");
    let script = CONFIRM
        .replace("__TOKENS__", tokens_path.to_str().expect("utf-8"))
        .replace("__THREADS__", &threads.to_string())
        + DONE;
    let confirm = wrk(&base, &script, secs, threads, p.root(), "confirm");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let confirmed = store
        .subscribers(Some(Status::Confirmed))
        .expect("rows")
        .len() as u64;
    println!(
        "confirm: {confirmed} of {n} rows confirmed ({} answered 200 or 410)",
        confirm.ok
    );
    assert_eq!(confirm.bad, 0, "errors during confirm");
    assert!(confirmed <= n);

    let tokens: String = rows
        .iter()
        .map(|s| {
            format!(
                "{}\n",
                secret().issue(Purpose::Unsubscribe, s.id, s.token_key, None)
            )
        })
        .collect();
    let tokens_path = p.root().join("tokens.txt");
    std::fs::write(&tokens_path, tokens).expect("tokens");
    let script = UNSUBSCRIBE
        .replace("__TOKENS__", tokens_path.to_str().expect("utf-8"))
        .replace("__THREADS__", &threads.to_string())
        + DONE;
    let unsub = wrk(&base, &script, secs, threads, p.root(), "unsubscribe");
    std::thread::sleep(std::time::Duration::from_secs(1));
    let after = store.subscribers(None).expect("rows");
    let unsubscribed = after
        .iter()
        .filter(|s| s.status == Status::Unsubscribed)
        .count() as u64;
    println!(
        "unsubscribe: {unsubscribed} of {n} rows unsubscribed ({} answered 200)",
        unsub.ok
    );
    assert_eq!(unsub.bad, 0, "errors during unsubscribe");
    assert_eq!(after.len() as u64, n, "rows lost or added by unsubscribe");
    assert!(unsubscribed >= unsub.ok.min(n) && unsubscribed <= unsub.sent.min(n));

    // HERALD_LOAD_SEND=N: subscribe while `publish` sends a bulletin to N
    // subscribers (through postfix's smtp-sink) on the same database.
    if let Some(n) = std::env::var("HERALD_LOAD_SEND")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        subscribe_during_send(&p, &base, &token, &cookie, n, secs, threads);
    }
    if slow_n > 0 {
        println!(
            "slow connections closed by the server (and opened again): {}",
            slow.closed()
        );
    }
    drop(slow);
    drop(run);
}

struct Sink(std::process::Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn subscribe_during_send(
    p: &Project,
    base: &str,
    token: &str,
    cookie: &str,
    n: usize,
    secs: u64,
    threads: u32,
) {
    use herald_mail::{MailSettings, NewSubscriber, SmtpSettings, TlsMode};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let _sink = Sink(
        Command::new("/usr/sbin/smtp-sink")
            .args(["-u", "postfix", &format!("127.0.0.1:{port}"), "256"])
            .spawn()
            .expect("smtp-sink (apt-get install postfix)"),
    );
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let store = p.store();
    let all: Vec<NewSubscriber> = (0..n)
        .map(|i| NewSubscriber {
            address: format!("reader{i}@send.example.org"),
            name: String::new(),
            lang: "en".into(),
            topics: vec![],
            status: Status::Confirmed,
            consent_source: "bench".into(),
            consent_ip: None,
            // Before every statement: the bulletin goes to all of them.
            consent_at: Some(start_time() - chrono::Duration::days(365 * 30)),
        })
        .collect();
    store
        .add_subscribers(&all, start_time())
        .expect("subscribers");
    let corpus = herald_content::load(p.root()).expect("corpus");
    let settings = MailSettings {
        smtp: Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: TlsMode::None,
            timeout_secs: 10,
            hello_name: Some("herald.test".into()),
        }),
        concurrency: 4,
        ..MailSettings::default()
    };
    let now = start_time();
    let due = corpus.due(now);
    let one: Vec<_> = due.into_iter().take(1).collect();
    let queued = herald_mail::queue(&store, &corpus, &settings, &one, now).expect("queue");
    let root = p.root().to_path_buf();
    let sender = std::thread::spawn(move || {
        // A store of its own, as `herald publish` (another process) would open.
        let store = herald_mail::MailStore::open(&root.join(".herald/herald.db")).expect("store");
        let start = std::time::Instant::now();
        let report = herald_mail::deliver(
            &store,
            &corpus,
            &settings,
            &secret(),
            now,
            &std::sync::atomic::AtomicBool::new(false),
            &indicatif::ProgressBar::hidden(),
        )
        .expect("deliver");
        (report.sent, start.elapsed())
    });
    let script = SUBSCRIBE
        .replace("__TOKEN__", token)
        .replace("__COOKIE__", cookie)
        .replace("load.example.org", "during.example.org");
    let during = wrk(
        base,
        &script,
        secs,
        threads,
        p.root(),
        "subscribe during send",
    );
    let (sent, took) = sender.join().expect("sender");
    println!(
        "send: {sent} of {queued} bulletins in {:.1} s while subscribing; longest subscribe {:.1} ms, non-200 {}",
        took.as_secs_f64(),
        during.max_ms,
        during.bad
    );
}
