//! End-to-end: the real `herald` CLI on a copy of the sample content.

mod attention;
mod contract;
mod dates;
mod digest;
mod gate;
mod incremental;
mod previews;
mod publish;
mod render_keys;
mod schedule;
mod signing;
mod staging;
