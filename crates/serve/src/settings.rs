//! `[serve]` in `herald.toml`. Every key is optional.

use std::net::SocketAddr;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServeSettings {
    /// Address and port to listen on. Loopback by default: put a TLS proxy in front
    /// to serve the public.
    pub listen: SocketAddr,
    /// The address readers reach this service at, used in confirmation links, e.g.
    /// `https://statements.example.org/`. Default: `http://` + the listening address.
    pub public_url: Option<String>,
    /// Hours a confirmation link stays valid; unconfirmed subscriptions are deleted
    /// after this.
    pub confirm_expiry_hours: u32,
    /// One confirmation mail per address in this many seconds at most; further
    /// subscribes of the address get the same answer and send nothing.
    pub address_window_secs: u32,
    /// Subscribe requests per minute from one IP address (sustained).
    pub ip_per_minute: u32,
    /// Subscribe requests one IP address may make at once before the per-minute rate applies.
    pub ip_burst: u32,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Minutes a form (its CSRF token) stays valid.
    pub form_expiry_minutes: u32,
    /// Take the client's IP from the last `X-Forwarded-For` entry (only behind a proxy
    /// that sets it; otherwise clients could pick their own rate-limit key).
    pub trust_forwarded_for: bool,
    /// Seconds a client has to send a request's headers; also how long a kept-alive
    /// connection may wait idle for its next request.
    pub header_timeout_secs: u32,
    /// Seconds a client has to send a request's body once its headers are in.
    pub body_timeout_secs: u32,
    /// Connections open at once; more wait in the kernel's queue until one closes.
    pub max_connections: u32,
    /// Milliseconds a request waits for the database's write lock (held, for
    /// instance, by a `publish` sending bulletins) before it answers 503 with
    /// Retry-After. Reads never wait.
    pub db_wait_ms: u32,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            confirm_expiry_hours: 48,
            address_window_secs: 600,
            ip_per_minute: 30,
            ip_burst: 10,
            body_limit: 16 * 1024,
            form_expiry_minutes: 120,
            trust_forwarded_for: false,
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            max_connections: 1024,
            db_wait_ms: 2000,
        }
    }
}
