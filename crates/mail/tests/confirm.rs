//! The subscription confirmation mail in the subscriber's language: composed and
//! DKIM-signed by herald-mail, received by postfix's smtp-sink (a real SMTP
//! server) or written to the outbox, and verified by dkimpy and mail-parser.
//! `cargo xtask provision` installs smtp-sink, python3 with dkimpy and openssl.

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use chrono::TimeZone;
use herald_mail::{
    Confirmation, Confirmer, DkimAlgorithm, DkimSettings, MailSettings, SmtpSettings, TlsMode,
    send_now,
};
use support::*;

struct Sink {
    child: Child,
    port: u16,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// smtp-sink dumping every message into `dir` (which the postfix user can write).
fn sink(dir: &Path) -> Sink {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let bin = if Path::new("/usr/sbin/smtp-sink").exists() {
        "/usr/sbin/smtp-sink"
    } else {
        "smtp-sink"
    };
    let child = Command::new(bin)
        .args(["-u", "postfix", "-d"])
        .arg(format!("{}/m.", dir.display()))
        .arg(format!("127.0.0.1:{port}"))
        .arg("8")
        .spawn()
        .expect("smtp-sink (run `cargo xtask provision`)");
    let sink = Sink { child, port };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "smtp-sink did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sink
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An RSA key (PKCS#1 PEM) and an Ed25519 seed in `d`, with their DNS TXT records.
fn keys(d: &Path) -> [(DkimAlgorithm, PathBuf, PathBuf); 2] {
    let out = run(Command::new("python3").args([
        "-c",
        "import nacl.signing, base64; k = nacl.signing.SigningKey.generate(); \
         print(base64.b64encode(bytes(k)).decode()); print(base64.b64encode(bytes(k.verify_key)).decode())",
    ]));
    let mut lines = out.lines();
    let (seed, public) = (lines.next().expect("seed"), lines.next().expect("public"));
    std::fs::write(d.join("ed.key"), seed).expect("write");
    std::fs::write(d.join("ed.txt"), format!("v=DKIM1; k=ed25519; p={public}")).expect("write");
    run(Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(d.join("rsa.pem"))
        .arg("2048"));
    let der = Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(d.join("rsa.pem"))
        .output()
        .expect("openssl");
    assert!(der.status.success());
    use base64::Engine;
    let p = base64::engine::general_purpose::STANDARD.encode(&der.stdout);
    std::fs::write(d.join("rsa.txt"), format!("v=DKIM1; k=rsa; p={p}")).expect("write");
    [
        (DkimAlgorithm::Rsa, d.join("rsa.pem"), d.join("rsa.txt")),
        (DkimAlgorithm::Ed25519, d.join("ed.key"), d.join("ed.txt")),
    ]
}

fn dkimpy(file: &Path, txt: &Path) -> (bool, String) {
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_mail.py"))
        .arg("dkim")
        .arg(file)
        .arg(txt)
        .output()
        .expect("python3 with dkimpy (run the tests with `cargo xtask test`: its python3 is target/test-venv)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The confirmation for `lang`, to `address`.
fn confirmation<'a>(lang: &'a str, address: &'a str, link: &'a str) -> Confirmation<'a> {
    Confirmation {
        subscriber_id: 7,
        address,
        lang,
        site: "UN Kazakhstan — Official Statements",
        organization: "United Nations Country Team in Kazakhstan",
        link,
        expires: chrono::Utc
            .with_ymd_and_hms(2014, 8, 2, 6, 0, 0)
            .single()
            .expect("valid"),
    }
}

/// What the reader sees: (subject, Content-Language, text).
fn read(bytes: &[u8]) -> (String, String, String) {
    let msg = mail_parser::MessageParser::default()
        .parse(bytes)
        .expect("parses");
    let lang = msg
        .header_raw("Content-Language")
        .expect("Content-Language")
        .trim()
        .to_string();
    (
        msg.subject().expect("subject").to_string(),
        lang,
        msg.body_text(0).expect("text").to_string(),
    )
}

/// Expected words per language: the subject, a line of the body, the expiry date.
const WORDS: [(&str, &str, &str, &str); 2] = [
    (
        "ru",
        "Подтвердите подписку: UN Kazakhstan — Official Statements",
        "Чтобы подтвердить подписку, откройте эту ссылку до",
        "2 августа 2014 г., 06:00 (UTC)",
    ),
    (
        "kk",
        "Жазылымды растаңыз: UN Kazakhstan — Official Statements",
        "Жазылымды растау үшін бұл сілтемені",
        "2014 жылғы 2 тамыз, 06:00 (UTC)",
    ),
];

#[test]
fn russian_and_kazakh_confirmations_reach_smtp_sink_dkim_signed() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let keys = keys(d);
    let dumps = d.join("dumps");
    std::fs::create_dir(&dumps).expect("mkdir");
    let sink = sink(&dumps);
    let corpus = corpus();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for ((lang, subject, line, expires), (algorithm, key, _)) in WORDS.iter().zip(&keys) {
        let settings = MailSettings {
            smtp: Some(SmtpSettings {
                host: "127.0.0.1".into(),
                port: Some(sink.port),
                tls: TlsMode::None,
                timeout_secs: 5,
                hello_name: Some("herald.test".into()),
            }),
            dkim: Some(DkimSettings {
                selector: "herald".into(),
                domain: "statements.example.org".into(),
                key: key.clone(),
                algorithm: *algorithm,
            }),
            ..MailSettings::default()
        };
        let confirmer = Confirmer::new(&corpus.config, &corpus.root, &settings).expect("confirmer");
        let address = format!("reader.{lang}@example.org");
        let link = format!("https://statements.example.org/confirm?token={lang}TOKEN");
        let composed = confirmer
            .compose(&confirmation(lang, &address, &link), now())
            .expect("compose");
        let (s, l, text) = read(&composed.bytes);
        assert_eq!(s, *subject);
        assert_eq!(l, *lang);
        assert!(text.contains(line), "{lang}: {text}");
        assert!(text.contains(expires), "{lang}: {text}");
        assert!(text.contains(&link), "{lang}: {text}");
        rt.block_on(send_now(&settings, &d.join("unused-outbox"), &composed))
            .expect("smtp-sink takes it");
    }
    assert!(!d.join("unused-outbox").exists(), "SMTP set: no outbox");
    // smtp-sink writes its dumps as it takes the messages.
    let start = Instant::now();
    let files = loop {
        let files: Vec<PathBuf> = std::fs::read_dir(&dumps)
            .expect("dumps")
            .map(|e| e.expect("entry").path())
            .collect();
        if files.len() >= 2 || start.elapsed() > Duration::from_secs(10) {
            break files;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(files.len(), 2, "one dump per confirmation");
    for ((lang, subject, line, _), (algorithm, _, txt)) in WORDS.iter().zip(&keys) {
        let file = files
            .iter()
            .find(|f| {
                std::fs::read_to_string(f)
                    .expect("dump")
                    .contains(&format!("reader.{lang}@example.org"))
            })
            .unwrap_or_else(|| panic!("no mail to the {lang} reader"));
        let (ok, out) = dkimpy(file, txt);
        assert!(ok, "{lang} {algorithm:?}: {out}");
        assert!(out.contains("relaxed/relaxed"), "{out}");
        let bytes = std::fs::read(file).expect("dump");
        let (s, _, text) = read(&bytes);
        assert_eq!(s, *subject);
        assert!(text.contains(line));
        // A changed subject or body breaks the signature: dkimpy really checks.
        let raw = String::from_utf8(bytes).expect("ascii");
        let subject_at = raw.find("\nSubject: ").expect("Subject") + 10;
        // smtp-sink writes its dumps with bare LF line ends.
        let body_at = raw.find("\n\n").expect("body") + 2;
        for tampered in [
            format!("{}X{}", &raw[..subject_at], &raw[subject_at..]),
            format!("{}x{}", &raw[..body_at], &raw[body_at..]),
        ] {
            let bad = d.join("tampered.eml");
            std::fs::write(&bad, tampered).expect("write");
            let (ok, out) = dkimpy(&bad, txt);
            assert!(!ok, "a tampered {lang} mail verified: {out}");
        }
    }
}

#[test]
fn without_an_smtp_server_the_confirmation_goes_to_the_outbox_signed() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let [_, (algorithm, key, txt)] = keys(d);
    let corpus = corpus();
    let settings = MailSettings {
        dkim: Some(DkimSettings {
            selector: "herald".into(),
            domain: "statements.example.org".into(),
            key,
            algorithm,
        }),
        ..MailSettings::default()
    };
    let confirmer = Confirmer::new(&corpus.config, &corpus.root, &settings).expect("confirmer");
    let link = "https://statements.example.org/confirm?token=T";
    let composed = confirmer
        .compose(&confirmation("kk", "oqyrman@example.org", link), now())
        .expect("compose");
    let outbox = d.join("outbox");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(send_now(&settings, &outbox, &composed))
        .expect("outbox");
    let files: Vec<PathBuf> = std::fs::read_dir(&outbox)
        .expect("outbox")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].extension().is_some_and(|x| x == "eml"));
    let (ok, out) = dkimpy(&files[0], &txt);
    assert!(ok, "{out}");
    let (subject, lang, text) = read(&std::fs::read(&files[0]).expect("eml"));
    assert_eq!(subject, WORDS[1].1);
    assert_eq!(lang, "kk");
    assert!(text.contains(link));
}
