//! What the dashboard shows of this process's recent work: the last
//! failures (who, which command, why, when) and, per command, counts and
//! latencies minute by minute over the last hour.
//!
//! Kept in memory, bounded, and always on: a command's window is one
//! uncontended lock per invocation, found when the command loads (as its
//! metrics are), never looked up by name on the message path.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Failures kept; the oldest go first.
pub const FAILURES_KEPT: usize = 10_000;
/// Minutes a command's window covers.
pub const MINUTES: usize = 60;
/// Latency buckets: four per doubling, from 1 µs to about 2^27 µs (134 s).
const BUCKETS: usize = 4 * 28;

/// One failed invocation, or a host call the command was not granted.
#[derive(Debug, Clone)]
pub struct Failure {
    pub at: SystemTime,
    pub command: String,
    /// The author's id on the platform.
    pub user: String,
    /// One word: `deadline`, `out_of_memory`, `panic`, `denied_call`, …
    pub cause: &'static str,
    /// One bounded line.
    pub detail: String,
}

/// The process's recent work.
#[derive(Default)]
pub struct Recent {
    failures: Mutex<VecDeque<Failure>>,
    commands: Mutex<BTreeMap<String, Arc<CommandWindow>>>,
}

/// The process's one [`Recent`].
pub fn recent() -> &'static Recent {
    static RECENT: OnceLock<Recent> = OnceLock::new();
    RECENT.get_or_init(Recent::default)
}

impl Recent {
    /// `command`'s window, the same across its versions.
    pub fn command(&self, command: &str) -> Arc<CommandWindow> {
        lock(&self.commands).entry(command.to_string()).or_default().clone()
    }

    pub fn failed(&self, failure: Failure) {
        let mut failures = lock(&self.failures);
        if failures.len() == FAILURES_KEPT {
            failures.pop_front();
        }
        failures.push_back(failure);
    }

    /// Up to `limit` failures, newest first, skipping the `skip` newest.
    pub fn failures(&self, skip: usize, limit: usize) -> (Vec<Failure>, usize) {
        let failures = lock(&self.failures);
        (failures.iter().rev().skip(skip).take(limit).cloned().collect(), failures.len())
    }
}

/// One command's last hour, and its totals since the process started.
#[derive(Default)]
pub struct CommandWindow {
    inner: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    /// Indexed by minute since the epoch, modulo [`MINUTES`].
    minutes: Vec<Minute>,
    invocations: u64,
    /// Failures since start, by cause.
    causes: BTreeMap<&'static str, u64>,
}

#[derive(Clone)]
struct Minute {
    /// Minutes since the epoch this slot holds.
    minute: u64,
    count: u32,
    failed: u32,
    buckets: [u32; BUCKETS],
}

/// One minute of a command, as the dashboard draws it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinuteStats {
    /// Minutes before now (0: this minute).
    pub ago: usize,
    pub count: u32,
    pub failed: u32,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
}

/// A command's figures, as of now.
#[derive(Debug, Clone, Default)]
pub struct CommandSummary {
    /// Since the process started.
    pub invocations: u64,
    pub causes: BTreeMap<&'static str, u64>,
    /// Over the last hour.
    pub hour_count: u64,
    pub hour_p50: Option<Duration>,
    pub hour_p99: Option<Duration>,
    /// Oldest first: `minutes[0]` is 59 minutes ago.
    pub minutes: Vec<MinuteStats>,
}

impl CommandWindow {
    /// One invocation ended after `elapsed`; `cause` when it failed.
    pub fn invocation(&self, elapsed: Duration, cause: Option<&'static str>) {
        self.record(now_minute(), elapsed, cause);
    }

    /// A failure that did not end an invocation (a denied host call).
    pub fn cause(&self, cause: &'static str) {
        *lock(&self.inner).causes.entry(cause).or_default() += 1;
    }

    fn record(&self, minute: u64, elapsed: Duration, cause: Option<&'static str>) {
        let mut window = lock(&self.inner);
        window.invocations += 1;
        if let Some(cause) = cause {
            *window.causes.entry(cause).or_default() += 1;
        }
        let slot = window.slot(minute);
        slot.count += 1;
        slot.failed += u32::from(cause.is_some());
        slot.buckets[bucket(elapsed)] += 1;
    }

    pub fn summary(&self) -> CommandSummary {
        self.summary_at(now_minute())
    }

    fn summary_at(&self, now: u64) -> CommandSummary {
        let window = lock(&self.inner);
        let mut hour = [0u32; BUCKETS];
        let mut minutes = Vec::with_capacity(MINUTES);
        for ago in (0..MINUTES).rev() {
            let Some(wanted) = now.checked_sub(ago as u64) else { continue };
            let minute = window.minutes.get(wanted as usize % MINUTES).filter(|m| m.minute == wanted);
            let stats = match minute {
                Some(m) => {
                    for (total, n) in hour.iter_mut().zip(m.buckets.iter()) {
                        *total += n;
                    }
                    MinuteStats {
                        ago,
                        count: m.count,
                        failed: m.failed,
                        p50: quantile(&m.buckets, 0.5),
                        p99: quantile(&m.buckets, 0.99),
                    }
                }
                None => MinuteStats { ago, count: 0, failed: 0, p50: None, p99: None },
            };
            minutes.push(stats);
        }
        CommandSummary {
            invocations: window.invocations,
            causes: window.causes.clone(),
            hour_count: hour.iter().map(|&n| u64::from(n)).sum(),
            hour_p50: quantile(&hour, 0.5),
            hour_p99: quantile(&hour, 0.99),
            minutes,
        }
    }
}

impl Window {
    /// The slot for `minute`, emptied if it held an older one.
    fn slot(&mut self, minute: u64) -> &mut Minute {
        if self.minutes.is_empty() {
            self.minutes = vec![Minute { minute: 0, count: 0, failed: 0, buckets: [0; BUCKETS] }; MINUTES];
        }
        let slot = &mut self.minutes[minute as usize % MINUTES];
        if slot.minute != minute {
            *slot = Minute { minute, count: 0, failed: 0, buckets: [0; BUCKETS] };
        }
        slot
    }
}

fn now_minute() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs() / 60)
}

/// Four buckets per doubling: the leading bit and the two after it.
fn bucket(elapsed: Duration) -> usize {
    let micros = (elapsed.as_micros() as u64).max(1);
    let octave = micros.ilog2() as usize;
    let quarter = if octave >= 2 { (micros >> (octave - 2)) & 3 } else { (micros << (2 - octave)) & 3 } as usize;
    (4 * octave + quarter).min(BUCKETS - 1)
}

/// The middle of bucket `index`, in µs.
fn bucket_value(index: usize) -> f64 {
    let (octave, quarter) = (index / 4, index % 4);
    (1u64 << octave) as f64 * (1.0 + (quarter as f64 + 0.5) / 4.0)
}

/// The `q` quantile of what `buckets` counted (within a bucket's width,
/// about 19%).
fn quantile(buckets: &[u32; BUCKETS], q: f64) -> Option<Duration> {
    let total: u64 = buckets.iter().map(|&n| u64::from(n)).sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0u64;
    for (index, &n) in buckets.iter().enumerate() {
        seen += u64::from(n);
        if seen >= rank {
            return Some(Duration::from_nanos((bucket_value(index) * 1000.0) as u64));
        }
    }
    None
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_a_quarter_doubling_wide() {
        let mut last = 0;
        for micros in 1..200_000u64 {
            let b = bucket(Duration::from_micros(micros));
            assert!(b >= last, "{micros}");
            last = b;
            let middle = bucket_value(b);
            assert!((middle / micros as f64 - 1.0).abs() < 0.2, "{micros} µs read back as {middle}");
        }
        assert_eq!(bucket(Duration::from_secs(100_000)), BUCKETS - 1);
    }

    #[test]
    fn quantiles_of_a_minute_and_of_the_hour() {
        let window = CommandWindow::default();
        let now = 29_000_000;
        for _ in 0..98 {
            window.record(now, Duration::from_millis(2), None);
        }
        window.record(now, Duration::from_millis(900), Some("deadline"));
        window.record(now, Duration::from_millis(900), Some("deadline"));
        window.record(now - 5, Duration::from_millis(40), None);
        let summary = window.summary_at(now);
        assert_eq!(summary.invocations, 101);
        assert_eq!(summary.causes.get("deadline"), Some(&2));
        assert_eq!(summary.hour_count, 101);
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN);
        assert!((ms(summary.hour_p50) / 2.0 - 1.0).abs() < 0.2, "{:?}", summary.hour_p50);
        assert!((ms(summary.hour_p99) / 900.0 - 1.0).abs() < 0.2, "{:?}", summary.hour_p99);
        let last = summary.minutes.last().copied().unwrap();
        assert_eq!((last.ago, last.count, last.failed), (0, 100, 2));
        assert_eq!(summary.minutes[MINUTES - 6].count, 1);
        // An hour later the same slots hold nothing of then.
        let later = window.summary_at(now + MINUTES as u64);
        assert_eq!(later.hour_count, 0);
        assert_eq!(later.invocations, 101, "totals since start stay");
    }

    #[test]
    fn failures_keep_the_newest() {
        let recent = Recent::default();
        for n in 0..FAILURES_KEPT + 5 {
            recent.failed(Failure {
                at: SystemTime::now(),
                command: format!("c{n}"),
                user: "1".into(),
                cause: "panic",
                detail: String::new(),
            });
        }
        let (page, total) = recent.failures(0, 2);
        assert_eq!(total, FAILURES_KEPT);
        assert_eq!(page[0].command, format!("c{}", FAILURES_KEPT + 4));
        assert_eq!(page[1].command, format!("c{}", FAILURES_KEPT + 3));
        let (last, _) = recent.failures(FAILURES_KEPT - 1, 10);
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].command, "c5");
    }
}
