//! The mail loop through a real Postfix on loopback: its own config_directory,
//! queue_directory and data_directory in a temporary folder (`postfix -c DIR
//! start`; the system's configuration is never read or touched), a next hop on
//! loopback that refuses one recipient (550) and defers another (451), and a
//! pipe transport that runs `herald mail receive`. herald sends a bulletin
//! through Postfix; Postfix writes the DSNs to the VERP return paths and pipes
//! them to herald; a mail to the unsubscribe address goes the same way.
//! Needs root (Postfix's master) and the postfix package (`cargo xtask test`
//! installs it).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use herald_mail::{
    EventKind, MailSettings, MailStore, NewSubscriber, Secret, SmtpSettings, Status, TlsMode,
    VerpKind,
};

const SECRET: [u8; 32] = [42u8; 32];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// The next hop: 550 for `@unknown.example`, 451 for `@slow.example`, else accepts.
fn next_hop() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = serve(stream);
            });
        }
    });
    port
}

fn serve(stream: TcpStream) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    out.write_all(b"220 nexthop.test ESMTP\r\n")?;
    let mut line = String::new();
    let mut data = false;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if data {
            if line == ".\r\n" {
                data = false;
                out.write_all(b"250 2.0.0 ok\r\n")?;
            }
            continue;
        }
        let upper = line.trim_end().to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250 nexthop.test\r\n"
        } else if upper.starts_with("RCPT") && upper.contains("@UNKNOWN.EXAMPLE") {
            b"550 5.1.1 no such user here\r\n"
        } else if upper.starts_with("RCPT") && upper.contains("@SLOW.EXAMPLE") {
            b"451 4.4.1 try again later\r\n"
        } else if upper == "DATA" {
            data = true;
            b"354 go on\r\n"
        } else if upper == "QUIT" {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            b"250 2.0.0 ok\r\n"
        };
        out.write_all(answer)?;
    }
}

struct Postfix {
    conf: PathBuf,
    log: PathBuf,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .output();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_postfix(dir: &Path, port: u16, hop: u16, project: &Path) -> Postfix {
    let conf = dir.join("conf");
    let queue = dir.join("queue");
    let data = dir.join("data");
    let log = dir.join("maillog");
    for d in [&conf, &queue, &data] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    run(Command::new("chown").arg("postfix").arg(&data));
    let d = dir.display();
    std::fs::write(
        conf.join("main.cf"),
        format!(
            "compatibility_level = 3.6
queue_directory = {q}
data_directory = {data}
mail_owner = postfix
myhostname = mx.herald.test
mydomain = herald.test
myorigin = statements.example.org
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination = statements.example.org
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
local_recipient_maps =
alias_maps =
alias_database =
local_transport = herald
herald_destination_recipient_limit = 1
recipient_delimiter = +
transport_maps = texthash:{c}/transport
default_transport = error:no mail leaves this test
relay_transport = error:no mail leaves this test
disable_dns_lookups = yes
smtp_dns_support_level = disabled
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = 1s
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
smtputf8_enable = no
biff = no
",
            q = queue.display(),
            data = data.display(),
            c = conf.display(),
        ),
    )
    .expect("main.cf");
    std::fs::write(
        conf.join("transport"),
        format!(
            "unknown.example smtp:[127.0.0.1]:{hop}\nslow.example smtp:[127.0.0.1]:{hop}\nfine.example smtp:[127.0.0.1]:{hop}\n"
        ),
    )
    .expect("transport");
    let herald = env!("CARGO_BIN_EXE_herald");
    std::fs::write(
        conf.join("master.cf"),
        format!(
            "127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
herald    unix  - n n - - pipe
  flags=Rq user=nobody argv={herald} --root {p} mail receive --recipient ${{recipient}}
",
            p = project.display()
        ),
    )
    .expect("master.cf");
    let postfix = Postfix {
        conf: conf.clone(),
        log,
    };
    run(Command::new("postfix").arg("-c").arg(&conf).arg("start"));
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "postfix did not listen: {}",
            std::fs::read_to_string(&postfix.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    postfix
}

fn submit(port: u16, from: &str, to: &str, message: &str) {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut out = stream.try_clone().expect("clone");
    let mut input = BufReader::new(stream);
    let mut answer = |expect: &str| {
        let mut line = String::new();
        loop {
            line.clear();
            input.read_line(&mut line).expect("answer");
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        assert!(line.starts_with(expect), "expected {expect}: {line}");
    };
    answer("220");
    for (cmd, expect) in [
        ("EHLO client.test".to_string(), "250"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_string(), "354"),
    ] {
        out.write_all(format!("{cmd}\r\n").as_bytes())
            .expect("write");
        answer(expect);
    }
    out.write_all(message.as_bytes()).expect("write");
    out.write_all(b"\r\n.\r\n").expect("write");
    answer("250");
    out.write_all(b"QUIT\r\n").expect("write");
}

fn wait_for(what: &str, log: &Path, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not happen; maillog:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn bounces_and_unsubscribes_come_back_through_a_real_postfix() {
    assert!(
        Path::new("/usr/sbin/postfix").exists(),
        "postfix is not installed (cargo xtask test provisions it)"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    run(Command::new("chmod").arg("755").arg(dir));
    let project = dir.join("project");
    let state = project.join(".herald");
    std::fs::create_dir_all(project.join("content")).expect("mkdir");
    std::fs::create_dir_all(&state).expect("mkdir");
    let toml = std::fs::read_to_string(repo().join("content/herald.toml")).expect("toml");
    std::fs::write(
        project.join("content/herald.toml"),
        format!(
            "{toml}\n[mail]\nbounce_address = \"bounces@statements.example.org\"\n\
unsubscribe_mailto = \"unsubscribe@statements.example.org\"\nbounce_after = 1\n"
        ),
    )
    .expect("herald.toml");
    std::fs::write(state.join("secret"), hex(&SECRET)).expect("secret");

    let now = Utc
        .with_ymd_and_hms(2014, 7, 31, 6, 0, 0)
        .single()
        .expect("t");
    let store = MailStore::open(&state.join("herald.db")).expect("store");
    let addresses = [
        "gone@unknown.example",
        "busy@slow.example",
        "reader@fine.example",
    ];
    let subs: Vec<NewSubscriber> = addresses
        .iter()
        .map(|a| NewSubscriber {
            address: a.to_string(),
            name: String::new(),
            lang: "en".into(),
            topics: vec![],
            status: Status::Confirmed,
            consent_source: "test".into(),
            consent_ip: None,
            consent_at: Some(
                Utc.with_ymd_and_hms(2010, 1, 1, 0, 0, 0)
                    .single()
                    .expect("t"),
            ),
        })
        .collect();
    store.add_subscribers(&subs, now).expect("subscribers");

    let (port, hop) = (free_port(), next_hop());
    let postfix = start_postfix(dir, port, hop, &project);

    let corpus = herald_content::load(&repo()).expect("content");
    let settings = MailSettings {
        smtp: Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: TlsMode::None,
            timeout_secs: 10,
            hello_name: Some("herald.test".into()),
        }),
        bounce_address: Some("bounces@statements.example.org".into()),
        unsubscribe_mailto: Some("unsubscribe@statements.example.org".into()),
        bounce_after: 1,
        ..MailSettings::default()
    };
    let secret = Secret::from_bytes(&SECRET).expect("key");
    let due: Vec<_> = corpus
        .due(now)
        .into_iter()
        .filter(|s| s.id == "2014/world-day-against-trafficking")
        .collect();
    herald_mail::queue(&store, &corpus, &settings, &due, now).expect("queue");
    let report = herald_mail::deliver(
        &store,
        &corpus,
        &settings,
        &secret,
        now,
        &AtomicBool::new(false),
        &indicatif::ProgressBar::hidden(),
    )
    .expect("deliver");
    assert_eq!(report.sent, 3, "Postfix accepts every one: {report:?}");
    // The pipe runs as nobody: it owns the project (SQLite gives later -wal and
    // -shm files the database's owner). Until now it answered EX_TEMPFAIL, and
    // Postfix kept the DSNs and tries again.
    run(Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(&project));

    let status = |a: &str| {
        store
            .subscriber_by_address(a)
            .expect("q")
            .expect("there")
            .status
    };
    let kinds = |a: &str| -> Vec<(EventKind, Option<String>)> {
        let id = store.subscriber_by_address(a).expect("q").expect("s").id;
        store
            .events(Some(id))
            .expect("events")
            .into_iter()
            .filter(|e| e.source.starts_with("mail"))
            .map(|e| (e.kind, e.status_code))
            .collect()
    };

    // The unknown recipient: Postfix's DSN, piped to herald, bounces them.
    wait_for("the hard bounce", &postfix.log, || {
        status(addresses[0]) == Status::Bounced
    });
    let hard = kinds(addresses[0]);
    assert_eq!(
        hard[0],
        (EventKind::HardBounce, Some("5.1.1".into())),
        "{hard:?}"
    );
    // The deferring next hop: Postfix's delay warning is a soft bounce, which
    // alone (soft_bounce_days = 7) leaves them subscribed.
    wait_for("the soft bounce", &postfix.log, || {
        kinds(addresses[1]).iter().any(|(k, c)| {
            *k == EventKind::SoftBounce && c.as_deref().is_some_and(|c| c.starts_with('4'))
        })
    });
    assert_eq!(status(addresses[1]), Status::Confirmed);
    assert_eq!(status(addresses[2]), Status::Confirmed);
    assert!(kinds(addresses[2]).is_empty());

    // A mail client's unsubscribe, submitted to that Postfix.
    let reader = store
        .subscriber_by_address(addresses[2])
        .expect("q")
        .expect("s");
    let to = herald_mail::verp_address(
        "unsubscribe@statements.example.org",
        &secret.verp(VerpKind::Unsubscribe, reader.id, reader.token_key),
    );
    submit(
        port,
        addresses[2],
        &to,
        &format!(
            "From: {}\r\nTo: {to}\r\nSubject: unsubscribe\r\nMessage-ID: <u1@fine.example>\r\n\r\nunsubscribe",
            addresses[2]
        ),
    );
    wait_for("the unsubscribe", &postfix.log, || {
        status(addresses[2]) == Status::Unsubscribed
    });

    // The next statement is not queued for the bounced or the unsubscribed.
    let later = Utc
        .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .expect("t");
    let next: Vec<_> = corpus
        .due(later)
        .into_iter()
        .filter(|s| s.id != "2014/world-day-against-trafficking")
        .collect();
    herald_mail::queue(&store, &corpus, &settings, &next, later).expect("queue");
    let queued: Vec<String> = store
        .bulletins(Some(herald_mail::BulletinState::Pending))
        .expect("rows")
        .into_iter()
        .map(|b| b.address)
        .collect();
    assert!(!queued.is_empty());
    assert!(queued.iter().all(|a| a == addresses[1]), "{queued:?}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
