//! End-to-end: the real `herald` CLI on a copy of the sample content.

mod publish;
mod schedule;
