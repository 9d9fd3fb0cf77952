//! Rate limits on subscribe: per client IP (refused with 429) and per address (a
//! second confirmation mail within the window is silently not sent, so the answer
//! never tells whether the address was known).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};

use crate::settings::ServeSettings;

pub struct Limits {
    ip: DefaultKeyedRateLimiter<IpAddr>,
    address: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limits(..)")
    }
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Limits {
    pub fn new(s: &ServeSettings) -> Limits {
        let per_ip = Quota::per_minute(nonzero(s.ip_per_minute)).allow_burst(nonzero(s.ip_burst));
        let window = Duration::from_secs(u64::from(s.address_window_secs.max(1)));
        let per_address = Quota::with_period(window)
            .unwrap_or_else(|| Quota::per_hour(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        Limits {
            ip: DefaultKeyedRateLimiter::keyed(per_ip),
            address: DefaultKeyedRateLimiter::keyed(per_address),
        }
    }

    /// May this client make another subscribe request now?
    pub fn ip_allows(&self, ip: IpAddr) -> bool {
        self.ip.check_key(&ip).is_ok()
    }

    /// May a confirmation mail go to this (normalized) address now?
    pub fn address_allows(&self, address: &str) -> bool {
        self.address
            .check_key(&address.to_ascii_lowercase())
            .is_ok()
    }

    /// Forget keys whose limits have fully recovered, so memory stays bounded.
    pub fn forget_idle(&self) {
        self.ip.retain_recent();
        self.address.retain_recent();
        self.ip.shrink_to_fit();
        self.address.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold() {
        let s = ServeSettings {
            ip_burst: 3,
            ..ServeSettings::default()
        };
        let l = Limits::new(&s);
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert!((0..3).all(|_| l.ip_allows(ip)));
        assert!(!l.ip_allows(ip));
        assert!(l.ip_allows([10, 0, 0, 2].into()));
        assert!(l.address_allows("a@example.org"));
        assert!(!l.address_allows("A@Example.org"));
        assert!(l.address_allows("b@example.org"));
    }
}
