//! Per-user rate limiting: a keyed GCRA limiter (the `governor` crate).

use std::sync::atomic::{AtomicU64, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::RateLimit;

/// Allows `messages` per `per` to each user, in bursts.
pub struct UserRateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl UserRateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        let period = limit.per / limit.messages.get();
        let quota = Quota::with_period(period.max(std::time::Duration::from_millis(1)))
            .expect("period is at least 1 ms")
            .allow_burst(limit.messages);
        UserRateLimiter { limiter: DefaultKeyedRateLimiter::keyed(quota), checks: AtomicU64::new(0) }
    }

    /// True when `user` may go on now.
    pub fn check(&self, user: &str) -> bool {
        // Forget idle users now and then so the map does not grow forever.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&user.to_string()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use super::*;

    #[test]
    fn limits_each_user_separately() {
        let limiter =
            UserRateLimiter::new(RateLimit { messages: NonZeroU32::new(2).unwrap(), per: Duration::from_secs(60) });
        assert!(limiter.check("a"));
        assert!(limiter.check("a"));
        assert!(!limiter.check("a"));
        assert!(limiter.check("b"));
    }
}
