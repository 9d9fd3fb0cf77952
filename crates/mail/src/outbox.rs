//! The outbox: with no `[mail.smtp]`, each message is written as one `.eml`
//! file (atomically, named by its Message-ID, so a redone write is the same file).

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::deliver::{DeliverError, Next, Shared};
use crate::store::BulletinState;

pub(crate) fn outbox(shared: &Shared<'_>, dir: &Path) -> Result<(), DeliverError> {
    let result = outbox_loop(shared, dir);
    // Outcomes queued before an error are still recorded.
    let flushed = shared.flush();
    result?;
    Ok(flushed?)
}

fn outbox_loop(shared: &Shared<'_>, dir: &Path) -> Result<(), DeliverError> {
    let io = |source| DeliverError::Outbox {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    loop {
        let job = match shared.next() {
            Next::Job(j) => j,
            Next::Wait(d) => {
                shared.flush()?;
                std::thread::sleep(d);
                continue;
            }
            Next::Done => return Ok(()),
        };
        let composed = match shared.compose(&job) {
            Ok(c) => c,
            Err(e) => {
                shared.done(job, BulletinState::Failed, Some(e.to_string()))?;
                continue;
            }
        };
        shared.sending(&job)?;
        let name: String = job
            .row
            .message_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{name}.eml"));
        // As an MTA's final delivery writes it: the envelope sender (the VERP
        // address with a bounce address) is visible in the file.
        let return_path = format!(
            "Return-Path: <{}>\r\n",
            composed
                .envelope
                .from()
                .map(|a| a.to_string())
                .unwrap_or_default()
        );
        let mut file = Vec::with_capacity(return_path.len() + composed.bytes.len());
        file.extend_from_slice(return_path.as_bytes());
        file.extend_from_slice(&composed.bytes);
        crate::atomic::write(&path, &file).map_err(io)?;
        shared.bytes.fetch_add(file.len() as u64, Ordering::Relaxed);
        shared.done(job, BulletinState::Sent, None)?;
    }
}
