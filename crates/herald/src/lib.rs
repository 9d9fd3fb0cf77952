//! herald: the pipeline that decides what runs when, and records what happened.
//!
//! The channel crates turn the content model into bytes or messages; this crate
//! plans a publish for a given `now`, runs them in order, writes their output
//! atomically and keeps the ledger. Both the `herald` binary and `cargo xtask`
//! call [`cli::run`].

pub mod channels;
pub mod cli;
pub mod dirs;
pub mod keys;
pub mod ledger;
pub mod lock;
pub mod mail_cli;
pub mod manifest;
pub mod output;
pub mod pipeline;
pub mod run;
pub mod schedule;
pub mod status;

pub use pipeline::{PublishOptions, PublishReport, check, publish};

/// Where herald keeps things below the project root.
pub use herald_content::urls::Paths;

/// Everything that can stop a herald command, each mapped to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Content(#[from] herald_content::LoadError),
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A channel (or the ledger, keys, manifest, serve) failed; `source` is its
    /// own error, kept whole so its chain reaches the report.
    #[error("{channel}: {source}")]
    Channel {
        channel: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error("{0}")]
    Usage(String),
    /// SIGTERM or SIGINT arrived before anything of the run became visible.
    #[error(
        "stopped by signal: nothing of this run was published or recorded; the next run publishes what is due"
    )]
    Cancelled,
}

/// Documented exit codes (see the README).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A runtime failure: I/O, the ledger, a channel.
    pub const FAILURE: u8 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: u8 = 2;
    /// The content or herald.toml is invalid; nothing was published.
    pub const INVALID: u8 = 3;
    /// Another herald process holds the lock.
    pub const BUSY: u8 = 4;
    /// Published, but some bulletins ended ambiguous or failed: see `herald status`.
    pub const ATTENTION: u8 = 5;
}

/// A channel's error, whatever its type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error with what herald was doing when it happened (a file, a step); the
/// error itself stays its `source`.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct Context {
    pub what: String,
    #[source]
    pub source: BoxError,
}

/// `source`, said to have happened while doing `what`.
pub fn context(what: impl std::fmt::Display, source: impl Into<BoxError>) -> Context {
    Context {
        what: what.to_string(),
        source: source.into(),
    }
}

impl Error {
    /// `channel` failed with `source` (an error value, or a message when there is none).
    pub fn channel(channel: &'static str, source: impl Into<BoxError>) -> Error {
        Error::Channel {
            channel,
            source: source.into(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Content(herald_content::LoadError::Invalid(_)) => exit::INVALID,
            Error::Busy(_) | Error::Lock(lock::LockError::Busy { .. }) => exit::BUSY,
            Error::Usage(_) => exit::USAGE,
            // A requested stop, like a stop during mail delivery: not a failure.
            Error::Cancelled => exit::OK,
            _ => exit::FAILURE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_channel_error_keeps_its_source_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::channel("keys", context("/srv/keys/signing.pem", io));
        // The message reads as before: channel, what, error.
        assert_eq!(e.to_string(), "keys: /srv/keys/signing.pem: denied");
        // And the chain is there to walk: Context, then the io::Error itself.
        let ctx = e.source().expect("context");
        assert!(ctx.downcast_ref::<Context>().is_some());
        let io = ctx.source().expect("io error");
        assert_eq!(
            io.downcast_ref::<std::io::Error>()
                .map(std::io::Error::kind),
            Some(std::io::ErrorKind::PermissionDenied)
        );
        let store = Error::channel("mail", herald_mail::StoreError::Busy);
        assert!(
            store
                .source()
                .and_then(|s| s.downcast_ref::<herald_mail::StoreError>())
                .is_some_and(|s| matches!(s, herald_mail::StoreError::Busy))
        );
    }
}
