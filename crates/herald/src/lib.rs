pub mod lock;
pub mod schedule;
