//! Per-user rate limiting: a keyed GCRA limiter (the `governor` crate),
//! plus a note of whom we already told to slow down, so the bot's own
//! "too fast" replies are limited too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::RateLimit;

/// What to do with a user's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Over the limit; `warn` is true once per window, so the bot says
    /// "too fast" once rather than to every message.
    Deny {
        warn: bool,
    },
}

/// Allows `messages` per `per` to each user, in bursts.
pub struct UserRateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    window: Duration,
    warned: Mutex<HashMap<String, Instant>>,
    checks: AtomicU64,
}

impl UserRateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        let period = (limit.per / limit.messages.get()).max(Duration::from_millis(1));
        let quota = Quota::with_period(period).expect("period is at least 1 ms").allow_burst(limit.messages);
        UserRateLimiter {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            window: limit.per,
            warned: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
        }
    }

    pub fn check(&self, user: &str) -> Verdict {
        let now = Instant::now();
        // Forget idle users now and then so the maps do not grow forever.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.limiter.retain_recent();
            self.warned().retain(|_, at| now.duration_since(*at) < self.window);
        }
        if self.limiter.check_key(&user.to_string()).is_ok() {
            return Verdict::Allow;
        }
        let mut warned = self.warned();
        let warn = warned.get(user).is_none_or(|at| now.duration_since(*at) >= self.window);
        if warn {
            warned.insert(user.to_string(), now);
        }
        Verdict::Deny { warn }
    }

    fn warned(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.warned.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    #[test]
    fn limits_each_user_separately_and_warns_once() {
        let limiter =
            UserRateLimiter::new(RateLimit { messages: NonZeroU32::new(2).unwrap(), per: Duration::from_secs(60) });
        assert_eq!(limiter.check("a"), Verdict::Allow);
        assert_eq!(limiter.check("a"), Verdict::Allow);
        assert_eq!(limiter.check("a"), Verdict::Deny { warn: true });
        assert_eq!(limiter.check("a"), Verdict::Deny { warn: false });
        assert_eq!(limiter.check("b"), Verdict::Allow);
    }
}
