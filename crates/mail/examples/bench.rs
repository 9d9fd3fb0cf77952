//! Send one bulletin to N generated subscribers through postfix's `smtp-sink`
//! and print messages per second and peak memory.
//!
//! `cargo run -p herald-mail --release --example bench -- N [--dkim] [--concurrency C] [--db PATH]`
//!
//! Each message is composed with its own unsubscribe token and Message-ID, and
//! every ledger row is written before and after its send, as in production.

use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{TimeZone, Utc};
use herald_mail::{
    DkimAlgorithm, DkimSettings, MailSettings, MailStore, NewSubscriber, Secret, SmtpSettings,
    Status, TlsMode, deliver, queue,
};

struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args
        .first()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let dkim = args.iter().any(|a| a == "--dkim");
    let concurrency: usize = args
        .iter()
        .position(|a| a == "--concurrency")
        .and_then(|i| args.get(i + 1))
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(8);

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let sink_bin = ["/usr/sbin/smtp-sink", "smtp-sink"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("smtp-sink");
    let _sink = Sink(
        Command::new(sink_bin)
            .args(["-u", "postfix", "-8", &format!("127.0.0.1:{port}"), "1024"])
            .spawn()
            .map_err(|e| format!("cannot start smtp-sink (run `cargo xtask provision`): {e}"))?,
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err("smtp-sink did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = herald_content::load(&root)?;
    let dir = tempfile::tempdir()?;
    // `--db :memory:` takes the ledger's disk writes out of the measurement.
    let db = args
        .iter()
        .position(|a| a == "--db")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| dir.path().join("herald.db"), std::path::PathBuf::from);
    let store = MailStore::open(&db)?;
    let long_ago = Utc
        .with_ymd_and_hms(2010, 1, 1, 0, 0, 0)
        .single()
        .ok_or("date")?;
    let now = Utc
        .with_ymd_and_hms(2014, 7, 31, 6, 0, 0)
        .single()
        .ok_or("date")?;
    let langs = ["en", "ru", "kk"];
    let subscribers: Vec<NewSubscriber> = (0..n)
        .map(|i| NewSubscriber {
            address: format!("reader{i}@example.net"),
            name: format!("Reader {i}"),
            lang: langs[i % 3].into(),
            topics: vec![],
            status: Status::Confirmed,
            consent_source: "bench".into(),
            consent_ip: None,
            consent_at: Some(long_ago),
        })
        .collect();
    store.add_subscribers(&subscribers, long_ago)?;
    drop(subscribers);

    let dkim = if dkim {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| e.to_string())?;
        let key = dir.path().join("dkim.key");
        std::fs::write(&key, base64::engine::general_purpose::STANDARD.encode(seed))?;
        Some(DkimSettings {
            selector: "bench".into(),
            domain: "statements.example.org".into(),
            key,
            algorithm: DkimAlgorithm::Ed25519,
        })
    } else {
        None
    };
    let settings = MailSettings {
        smtp: Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: TlsMode::None,
            timeout_secs: 30,
            hello_name: Some("herald.bench".into()),
        }),
        concurrency,
        dkim,
        ..MailSettings::default()
    };
    let secret = Secret::generate()?;
    let due: Vec<_> = corpus
        .due(now)
        .into_iter()
        .filter(|s| s.id == "2014/world-day-against-trafficking")
        .collect();
    let queued = queue(&store, &corpus, &settings, &due, now)?;

    let t = Instant::now();
    let report = deliver(
        &store,
        &corpus,
        &settings,
        &secret,
        now,
        &AtomicBool::new(false),
        &indicatif::ProgressBar::hidden(),
    )?;
    let secs = t.elapsed().as_secs_f64();
    let size = report.bytes / (report.sent.max(1) as u64);
    println!(
        "{} messages ({queued} queued, {} failed, {} ambiguous) over {concurrency} connections{}: {:.2} s, {:.0} messages/s, peak memory {:.1} MB",
        report.sent,
        report.failed.len(),
        report.ambiguous.len(),
        if settings.dkim.is_some() {
            ", Ed25519 DKIM"
        } else {
            ""
        },
        secs,
        report.sent as f64 / secs,
        peak_rss_mb()
    );
    println!("average message: {size} bytes");
    ceiling(port, concurrency, size, report.sent);
    Ok(())
}

/// The same sink fed by postfix's own load generator (C, kept-open connections)
/// with messages of the same size: what the sink can take at all on this machine.
fn ceiling(port: u16, sessions: usize, size: u64, n: usize) {
    let Some(source) = ["/usr/sbin/smtp-source", "smtp-source"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        return;
    };
    let t = Instant::now();
    let status = Command::new(source)
        .args(["-d", "-s", &sessions.to_string(), "-l", &size.to_string()])
        .args([
            "-m",
            &n.to_string(),
            "-f",
            "bench@example.org",
            "-t",
            "reader@example.net",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .status();
    if status.is_ok_and(|s| s.success()) {
        let secs = t.elapsed().as_secs_f64();
        println!(
            "smtp-source, {n} messages of {size} bytes over {sessions} kept-open connections: {:.2} s, {:.0} messages/s (the sink's ceiling)",
            secs,
            n as f64 / secs
        );
    }
}
