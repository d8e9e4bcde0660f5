//! Prometheus metrics: what the bot counts and times as it works, served
//! as text at `/metrics` on `[health] listen` (docs/config.md#metrics).
//!
//! Every count goes through the `metrics` facade, which does nothing until
//! [`install`] sets the recorder: a bot without `[health] listen` pays
//! nothing. Labels are bounded sets (command names come from the config or
//! deployments, never from what a user typed).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::error::InvokeError;

pub mod recent;

use recent::{recent, CommandWindow, Failure};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Histogram buckets, in seconds: a command answers in about a
/// millisecond, the model and speech in seconds.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Starts recording, once per process (later calls change nothing). Call
/// it before the commands load: each registers its series then, and one
/// made before records nothing.
pub fn install() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new().set_buckets(BUCKETS).expect("BUCKETS is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Histograms keep what they record in buffers until a scrape or
        // this upkeep drains them; without scrapes they would grow.
        let upkeep = handle.clone();
        let keep_up = move || upkeep.run_upkeep();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let mut every = tokio::time::interval(UPKEEP);
                    loop {
                        every.tick().await;
                        keep_up();
                    }
                });
            }
            Err(_) => {
                std::thread::spawn(move || loop {
                    std::thread::sleep(UPKEEP);
                    keep_up();
                });
            }
        }
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder was installed first: /metrics stays empty");
        }
        describe();
        handle
    });
}

/// How often histogram buffers are drained between scrapes.
const UPKEEP: Duration = Duration::from_secs(5);

/// The metrics in Prometheus's text format; `None` before [`install`].
pub fn render() -> Option<String> {
    HANDLE.get().map(PrometheusHandle::render)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("sandbot_invocations_total", "Command invocations, by command and outcome (handled, failed)");
    describe_counter!("sandbot_failures_total", "Failed invocations, by command and cause");
    describe_histogram!(
        "sandbot_invocation_seconds",
        Unit::Seconds,
        "Time per invocation, from asking for a sandbox slot to the end"
    );
    describe_counter!("sandbot_refusals_total", "Messages refused before a command ran, by reason");
    describe_gauge!("sandbot_pool_slots_in_use", "Sandbox slots running a command now");
    describe_gauge!("sandbot_pool_waiting", "Invocations waiting for a sandbox slot");
    describe_counter!("sandbot_gateway_events_total", "Gateway events received, by kind");
    describe_counter!(
        "sandbot_gateway_connections_total",
        "Gateway connections made (reconnects: beyond one per shard)"
    );
    describe_counter!("sandbot_discord_rest_errors_total", "Discord REST calls refused, by HTTP status");
    describe_histogram!("sandbot_model_seconds", Unit::Seconds, "Model calls, by operation");
    describe_histogram!("sandbot_speech_seconds", Unit::Seconds, "Speech calls, by operation");
    describe_counter!(
        "sandbot_training_jobs_total",
        "Training jobs this process started, each time one is seen in a new state"
    );
    describe_counter!("sandbot_component_swaps_total", "Components loaded or refused by a reload");
}

/// One command's series, registered when it loads: an invocation then
/// costs a histogram record and a counter add, and no lookup. Made before
/// [`install`], they record nothing.
pub struct CommandMetrics {
    command: String,
    handled: Counter,
    failed: Counter,
    seconds: Histogram,
    /// The dashboard's view of the same invocations.
    pub window: std::sync::Arc<CommandWindow>,
}

impl CommandMetrics {
    pub fn new(command: &str) -> Self {
        let name = command.to_string();
        CommandMetrics {
            handled: counter!("sandbot_invocations_total", "command" => name.clone(), "outcome" => "handled"),
            failed: counter!("sandbot_invocations_total", "command" => name.clone(), "outcome" => "failed"),
            seconds: histogram!("sandbot_invocation_seconds", "command" => name.clone()),
            window: recent().command(&name),
            command: name,
        }
    }

    /// One invocation by `user` ended, after `elapsed` in the sandbox.
    pub fn invocation(&self, elapsed: Duration, failure: Option<&InvokeError>, user: &str) {
        self.seconds.record(elapsed);
        self.window.invocation(elapsed, failure.map(InvokeError::kind));
        match failure {
            None => self.handled.increment(1),
            Some(failure) => {
                self.failed.increment(1);
                let command = self.command.clone();
                counter!("sandbot_failures_total", "command" => command, "cause" => failure.kind()).increment(1);
                recent().failed(Failure {
                    at: std::time::SystemTime::now(),
                    command: self.command.clone(),
                    user: user.to_string(),
                    cause: failure.kind(),
                    detail: failure.cause(),
                });
            }
        }
    }
}

/// `command` called a host function it was not granted, for `user`.
pub fn denied_call(command: &str, function: &str, user: &str) {
    counter!("sandbot_failures_total", "command" => command.to_string(), "cause" => "denied_call").increment(1);
    recent().command(command).cause("denied_call");
    recent().failed(Failure {
        at: std::time::SystemTime::now(),
        command: command.to_string(),
        user: user.to_string(),
        cause: "denied_call",
        detail: format!("called `{function}`, which it is not granted"),
    });
}

/// A message refused before any command ran (`rate_limited`, `unknown`,
/// `operators_only`, `bad_options`, `busy`).
pub fn refused(reason: &'static str) {
    counter!("sandbot_refusals_total", "reason" => reason).increment(1);
}

/// Held while an invocation waits for a sandbox slot (only when none was
/// free at once: the usual path counts nothing).
pub struct Waiting(Gauge);

impl Waiting {
    pub fn start() -> Self {
        let waiting = gauge!("sandbot_pool_waiting");
        waiting.increment(1.0);
        Waiting(waiting)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The slots running a command now, read when `/metrics` is asked for.
pub fn pool_in_use(slots: usize) {
    gauge!("sandbot_pool_slots_in_use").set(slots as f64);
}

/// A gateway event was received (`message`, `interaction`).
pub fn gateway_event(kind: &'static str) {
    counter!("sandbot_gateway_events_total", "kind" => kind).increment(1);
}

/// A shard's gateway connection came up.
pub fn gateway_connected(shard: u32) {
    counter!("sandbot_gateway_connections_total", "shard" => shard.to_string()).increment(1);
}

/// Discord refused a REST call with `status`.
pub fn rest_error(status: u16) {
    counter!("sandbot_discord_rest_errors_total", "status" => status.to_string()).increment(1);
}

/// Runs a model call (`answer`, `predict`), timing it.
pub async fn model_call<T>(operation: &'static str, call: impl Future<Output = T>) -> T {
    timed("sandbot_model_seconds", operation, call).await
}

/// Runs a speech call (`transcribe`, `synthesize`), timing it.
pub async fn speech_call<T>(operation: &'static str, call: impl Future<Output = T>) -> T {
    timed("sandbot_speech_seconds", operation, call).await
}

async fn timed<T>(metric: &'static str, operation: &'static str, call: impl Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = call.await;
    histogram!(metric, "operation" => operation).record(started.elapsed());
    out
}

/// A training job reached `state`.
pub fn training_job(state: &str) {
    let state = match state {
        "queued" | "running" | "succeeded" | "failed" | "cancelled" => state.to_string(),
        _ => "other".to_string(),
    };
    counter!("sandbot_training_jobs_total", "state" => state).increment(1);
}

/// A reload loaded a component, new or changed (`loaded`), or refused
/// one (`refused`, the old version serving on).
pub fn component_swap(result: &'static str) {
    counter!("sandbot_component_swaps_total", "result" => result).increment(1);
}
