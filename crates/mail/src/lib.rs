//! herald-mail: email bulletins.
//!
//! It owns the subscriber list and the bulletin ledger (its own tables in the
//! project's SQLite file), the signed tokens in unsubscribe and confirmation
//! links, the composition of each message, and exactly-once delivery over SMTP
//! or into an outbox of `.eml` files.
//!
//! The pipeline calls [`queue`] with the statements it has just published, then
//! [`deliver`]. `herald serve` uses [`MailStore`] and [`token`] for subscribe,
//! confirm and unsubscribe.

pub mod atomic;
pub mod compose;
pub mod confirm;
pub mod db;
pub mod deliver;
mod dkim;
pub mod inbound;
mod journal;
mod outbox;
pub mod queue;
pub mod settings;
mod smtp;
pub mod store;
pub mod subscribers_csv;
pub mod token;

pub use compose::{ComposeError, Composer, check_templates, has_overrides};
pub use confirm::{Confirmation, Confirmer};
pub use deliver::{DeliverError, DeliveryReport, Outcome, deliver};
pub use queue::{digest_key, queue, queue_digest};
pub use settings::{DkimAlgorithm, DkimSettings, MailSettings, SmtpSettings, TlsMode};
pub use smtp::{send_now, smtputf8_offered};
pub use store::{
    Bulletin, BulletinKind, BulletinState, Confirmed, Event, EventKind, MailStore, NewSubscriber,
    Origin, Status, StoreError, Subscriber, SubscriberError, parse_address,
};
pub use token::{
    Claim, Purpose, Secret, TokenError, VerpClaim, VerpKind, verp_address, verp_token,
};
