//! One `!hi` through the whole runtime: console event → dispatch → fresh
//! instance → `handle` → `send-message` → the console's JSON-lines sink.
//!
//! `cargo bench -p sandbot --bench invoke` (after `make build`, which
//! builds the guests). Figures go in BENCHMARKS.md. Each is run without,
//! then with, the Prometheus recorder (`_with_metrics`); `window_record`
//! is the dashboard's per-invocation record on its own.

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sandbot::platform::console::{Console, InputLine, Mode};
use sandbot::{Config, Dispatcher, Outcome};

fn setup(rt: &tokio::runtime::Runtime, data: &Path) -> (Arc<Dispatcher>, Arc<Console>) {
    let guests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/guest");
    assert!(guests.join("hi.wasm").is_file(), "build the guests first: make build");
    let toml = format!(
        "data_dir = {data:?}\nguests_dir = {guests:?}\n[commands.hi]\nwasm = \"hi.wasm\"\ngrants = [\"chat.send-message\"]\n",
        data = data.display().to_string(),
        guests = guests.display().to_string(),
    );
    let config = Config::from_toml(&data.join("sandbot.toml"), &toml).expect("bench config");
    let dispatcher = rt.block_on(Dispatcher::start(config)).expect("start");
    let console = Console::new(Box::new(std::io::sink()), Mode::JsonLines, &data.join("out")).expect("console");
    (Arc::new(dispatcher), console)
}

fn hi(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    let mut group = c.benchmark_group("invoke");
    // Without metrics first: the recorder, once installed, stays.
    for metrics in ["", "_with_metrics"] {
        if !metrics.is_empty() {
            // Before the commands load, as the bot does: each registers
            // its series then.
            let _runtime = rt.enter();
            sandbot::telemetry::install();
        }
        let data = tempfile::tempdir().expect("temp dir");
        let (dispatcher, console) = setup(&rt, data.path());
        // One message at a time, on one thread: the cost of an invocation
        // itself, without cross-thread wake-ups.
        let single = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("hi{metrics}"), |b| {
            b.to_async(&single).iter(|| async {
                let event = console.event(0, InputLine::text("!hi")).expect("event");
                assert_eq!(dispatcher.dispatch(event).await, Outcome::Handled);
            })
        });

        // Many at once on the multi-threaded runtime the bot runs on.
        const CONCURRENT: u64 = 64;
        group.throughput(Throughput::Elements(CONCURRENT));
        group.bench_function(format!("hi_x64_concurrent{metrics}"), |b| {
            b.to_async(&rt).iter(|| async {
                let tasks: Vec<_> = (0..CONCURRENT)
                    .map(|n| {
                        let dispatcher = dispatcher.clone();
                        let event = console.event(n, InputLine::text("!hi")).expect("event");
                        tokio::spawn(async move { dispatcher.dispatch(event).await })
                    })
                    .collect();
                for task in tasks {
                    assert_eq!(task.await.expect("task"), Outcome::Handled);
                }
            })
        });
    }
    group.finish();
}

/// What the dashboard's window adds to every invocation (it is always
/// on, so `hi` above includes it): one record, on one thread.
fn window(c: &mut Criterion) {
    let mut group = c.benchmark_group("invoke");
    let window = sandbot::telemetry::recent::recent().command("bench");
    let elapsed = std::time::Duration::from_micros(50);
    group.throughput(Throughput::Elements(1));
    group.bench_function("window_record", |b| b.iter(|| window.invocation(elapsed, None)));
    group.finish();
}

criterion_group!(benches, hi, window);
criterion_main!(benches);
