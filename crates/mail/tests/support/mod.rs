//! Test support: a real SMTP server on loopback (std threads) that records every
//! message it accepts and can be told to misbehave for chosen recipients, and a
//! project fixture.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use herald_mail::{MailSettings, MailStore, NewSubscriber, SmtpSettings, Status, TlsMode};

/// How the server misbehaves for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `450` to RCPT.
    RcptTemp,
    /// `451` to RCPT (a local error: greylisting answers so).
    Rcpt451,
    /// `550` to RCPT.
    RcptPerm,
    /// `421` to RCPT, then close.
    Rcpt421,
    /// Close the connection at RCPT, without answering.
    DropAtRcpt,
    /// Stop answering at RCPT.
    SilentAtRcpt,
    /// Read the data, then `554`.
    DataPerm,
    /// Read the data, keep the message, close without answering.
    DropAfterData,
    /// Read the data, keep the message, stop answering.
    SilentAfterData,
}

#[derive(Debug, Clone)]
pub struct Received {
    /// The MAIL command as it came (with its parameters).
    pub mail: String,
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

#[derive(Default)]
struct State {
    /// Offer PIPELINING (commands then arrive several in one write).
    pipelining: bool,
    /// Offer SMTPUTF8 (RFC 6531).
    smtputf8: bool,
    received: Mutex<Vec<Received>>,
    faults: Mutex<HashMap<String, (Fault, usize)>>,
    connections: AtomicUsize,
    stop: AtomicBool,
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        Self::start_with(false)
    }

    /// A server that offers PIPELINING when `pipelining`.
    pub fn start_with(pipelining: bool) -> SmtpServer {
        Self::start_offering(pipelining, false)
    }

    /// A server that offers PIPELINING and SMTPUTF8 as asked.
    pub fn start_offering(pipelining: bool, smtputf8: bool) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            pipelining,
            smtputf8,
            ..State::default()
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                st.connections.fetch_add(1, Ordering::Relaxed);
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = session(stream, &st);
                });
            }
        });
        SmtpServer { addr, state }
    }

    /// Misbehave `times` times for `address` (then behave).
    pub fn fault(&self, address: &str, fault: Fault, times: usize) {
        self.state
            .faults
            .lock()
            .expect("lock")
            .insert(address.to_lowercase(), (fault, times));
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.state.received.lock().expect("lock").len()
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Messages per recipient.
    pub fn per_recipient(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for r in self.received() {
            for t in r.to {
                *m.entry(t.to_lowercase()).or_insert(0) += 1;
            }
        }
        m
    }

    pub fn settings(&self) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: Some(self.addr.port()),
            tls: TlsMode::None,
            timeout_secs: 2,
            hello_name: Some("herald.test".into()),
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn take_fault(st: &State, address: &str) -> Option<Fault> {
    let mut faults = st.faults.lock().ok()?;
    let entry = faults.get_mut(&address.to_lowercase())?;
    if entry.1 == 0 {
        return None;
    }
    entry.1 -= 1;
    Some(entry.0)
}

fn angle(arg: &str) -> String {
    let s = arg.split_once(':').map_or(arg, |(_, v)| v).trim();
    let s = s.split_whitespace().next().unwrap_or("");
    s.trim_start_matches('<').trim_end_matches('>').to_string()
}

fn session(stream: TcpStream, st: &State) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    out.write_all(b"220 test ESMTP ready\r\n")?;
    let mut from = String::new();
    let mut mail = String::new();
    let mut to: Vec<String> = Vec::new();
    let mut pending_data_fault: Option<Fault> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            if st.smtputf8 {
                out.write_all(b"250-SMTPUTF8\r\n")?;
            }
            if st.pipelining {
                out.write_all(
                    b"250-test\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SIZE 50000000\r\n",
                )?;
            } else {
                out.write_all(b"250-test\r\n250-8BITMIME\r\n250 SIZE 50000000\r\n")?;
            }
        } else if upper.starts_with("MAIL FROM") {
            from = angle(&cmd);
            mail = cmd.clone();
            to.clear();
            pending_data_fault = None;
            out.write_all(b"250 2.1.0 ok\r\n")?;
        } else if upper.starts_with("RCPT TO") {
            let rcpt = angle(&cmd);
            match take_fault(st, &rcpt) {
                Some(Fault::RcptTemp) => out.write_all(b"450 4.2.1 mailbox busy, try later\r\n")?,
                Some(Fault::Rcpt451) => {
                    out.write_all(b"451 4.3.0 greylisted, try again later\r\n")?
                }
                Some(Fault::RcptPerm) => out.write_all(b"550 5.1.1 no such user\r\n")?,
                Some(Fault::Rcpt421) => {
                    out.write_all(b"421 4.3.2 shutting down\r\n")?;
                    return Ok(());
                }
                Some(Fault::DropAtRcpt) => return Ok(()),
                Some(Fault::SilentAtRcpt) => {
                    std::thread::sleep(Duration::from_secs(10));
                    return Ok(());
                }
                Some(f) => {
                    pending_data_fault = Some(f);
                    to.push(rcpt);
                    out.write_all(b"250 2.1.5 ok\r\n")?;
                }
                None => {
                    to.push(rcpt);
                    out.write_all(b"250 2.1.5 ok\r\n")?;
                }
            }
        } else if upper == "DATA" {
            out.write_all(b"354 go ahead\r\n")?;
            let mut data = Vec::new();
            loop {
                line.clear();
                if input.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                let l = line.strip_prefix('.').unwrap_or(&line);
                data.extend_from_slice(l.as_bytes());
            }
            let keep = Received {
                mail: mail.clone(),
                from: from.clone(),
                to: to.clone(),
                data,
            };
            match pending_data_fault.take() {
                Some(Fault::DataPerm) => out.write_all(b"554 5.6.0 message refused\r\n")?,
                Some(Fault::DropAfterData) => {
                    st.received.lock().expect("lock").push(keep);
                    return Ok(());
                }
                Some(Fault::SilentAfterData) => {
                    st.received.lock().expect("lock").push(keep);
                    std::thread::sleep(Duration::from_secs(10));
                    return Ok(());
                }
                _ => {
                    st.received.lock().expect("lock").push(keep);
                    out.write_all(b"250 2.0.0 queued\r\n")?;
                }
            }
        } else if upper == "RSET" {
            to.clear();
            pending_data_fault = None;
            out.write_all(b"250 2.0.0 ok\r\n")?;
        } else if upper == "NOOP" {
            out.write_all(b"250 2.0.0 ok\r\n")?;
        } else if upper == "QUIT" {
            out.write_all(b"221 2.0.0 bye\r\n")?;
            return Ok(());
        } else {
            out.write_all(b"502 5.5.2 unknown command\r\n")?;
        }
    }
}

/// The repository's sample content (read only).
pub fn content_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn corpus() -> herald_content::Corpus {
    herald_content::load(&content_root()).expect("sample content loads")
}

/// The morning after the 2014 statement.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2014, 7, 31, 6, 0, 0)
        .single()
        .expect("valid")
}

pub fn long_ago() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2010, 1, 1, 0, 0, 0)
        .single()
        .expect("valid")
}

pub fn secret() -> herald_mail::Secret {
    herald_mail::Secret::from_bytes(&[42u8; 32]).expect("secret")
}

/// Settings that send to `server` quickly, with short retries.
pub fn smtp_settings(server: &SmtpServer) -> MailSettings {
    MailSettings {
        smtp: Some(server.settings()),
        concurrency: 4,
        max_attempts: 3,
        retry_backoff_ms: 20,
        ..MailSettings::default()
    }
}

pub const LANGS: [&str; 3] = ["en", "ru", "kk"];

/// `n` confirmed subscribers, languages in turn, consent long before 2014.
pub fn subscribers(store: &MailStore, n: usize) -> Vec<String> {
    let all: Vec<NewSubscriber> = (0..n)
        .map(|i| NewSubscriber {
            address: format!("reader{i}@example.net"),
            name: format!("Reader {i}"),
            lang: LANGS[i % 3].into(),
            topics: vec![],
            status: Status::Confirmed,
            consent_source: "test".into(),
            consent_ip: None,
            consent_at: Some(long_ago()),
        })
        .collect();
    store
        .add_subscribers(&all, long_ago())
        .expect("subscribers");
    all.into_iter().map(|s| s.address).collect()
}

pub const STATEMENT: &str = "2014/world-day-against-trafficking";
