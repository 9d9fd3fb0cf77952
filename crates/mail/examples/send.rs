//! Queue and deliver the bulletins of every statement due at a given time, to an
//! SMTP server on loopback without TLS. Used by the crash test (which kills it
//! mid-send) and handy for trying a server by hand:
//!
//! `cargo run -p herald-mail --example send -- ROOT DB PORT NOW [CONCURRENCY]`

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use herald_mail::{MailSettings, MailStore, Secret, SmtpSettings, TlsMode, deliver, queue};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, db, port, now, rest @ ..] = args.as_slice() else {
        return Err("usage: send ROOT DB PORT NOW [CONCURRENCY]".into());
    };
    let root = PathBuf::from(root);
    let now = herald_content::statement::instant(now).ok_or("NOW must be RFC 3339")?;
    let corpus = herald_content::load(&root)?;
    let store = MailStore::open(&PathBuf::from(db))?;
    let settings = MailSettings {
        smtp: Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port: Some(port.parse()?),
            tls: TlsMode::None,
            timeout_secs: 5,
            hello_name: Some("herald.test".into()),
        }),
        concurrency: rest.first().map(|c| c.parse()).transpose()?.unwrap_or(4),
        ..MailSettings::default()
    };
    let secret = Secret::from_env_or_file(&root.join(".herald"))?;
    let due = corpus.due(now);
    queue(&store, &corpus, &settings, &due, now)?;
    let report = deliver(
        &store,
        &corpus,
        &settings,
        &secret,
        now,
        &AtomicBool::new(false),
        &indicatif::ProgressBar::hidden(),
    )?;
    println!(
        "sent {} failed {} ambiguous {} deferred {} recovered-ambiguous {}",
        report.sent,
        report.failed.len(),
        report.ambiguous.len(),
        report.deferred.len(),
        report.recovered_ambiguous
    );
    Ok(())
}
