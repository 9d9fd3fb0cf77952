//! The outbox: with no `[mail.smtp]`, each message is written as one `.eml`
//! file (atomically, named by its Message-ID, so a redone write is the same file).

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::compose::Composed;
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
        let file = eml(&composed);
        let path = dir.join(file_name(&job.row.message_id));
        crate::atomic::write(&path, &file).map_err(io)?;
        shared.bytes.fetch_add(file.len() as u64, Ordering::Relaxed);
        shared.done(job, BulletinState::Sent, None)?;
    }
}

/// The outbox file of a Message-ID: the characters a file name can hold, `.eml`.
fn file_name(message_id: &str) -> String {
    let name: String = message_id
        .chars()
        .filter(|c| !matches!(c, '<' | '>'))
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}.eml")
}

/// As an MTA's final delivery writes it: the envelope sender (the VERP address
/// with a bounce address) is visible in the file.
fn eml(composed: &Composed) -> Vec<u8> {
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
    file
}

/// One message outside the ledger (the confirmation mail) into the outbox, the
/// same way a bulletin is written; named by its Message-ID header.
pub(crate) fn write_one(dir: &Path, composed: &Composed) -> Result<(), DeliverError> {
    let id = composed.message_id().unwrap_or_else(|| "message".into());
    crate::atomic::write(&dir.join(file_name(&id)), &eml(composed)).map_err(|source| {
        DeliverError::Outbox {
            path: dir.to_path_buf(),
            source,
        }
    })
}
