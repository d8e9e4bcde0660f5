//! The same command in Rust, Python and JavaScript (`!count`,
//! `!pycount`, `!jscount`: count the words of one message), in one run:
//! compiling each, loading it from the compile cache, what one message
//! costs, and the memory each adds to the process.
//!
//! `make build && cargo bench -p sandbot --bench languages`
//! (`LANGUAGE_MESSAGES=N` for another count; 300 by default). Figures go
//! in BENCHMARKS.md.

use std::path::Path;
use std::time::{Duration, Instant};

use sandbot::platform::console::{Console, InputLine, Mode};
use sandbot::sandbox::{EngineSettings, Sandbox};
use sandbot::{Config, Dispatcher, Outcome};

const TEXT: &str = "The cat and the hat, and THE bat sat on the mat with a hat.";

fn main() {
    let guests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/guest");
    let commands = [("Rust", "count"), ("Python", "pycount"), ("JavaScript", "jscount")];
    for (_, name) in commands {
        let wasm = guests.join(format!("{name}.wasm"));
        assert!(wasm.is_file(), "{} is missing: run `make build` first", wasm.display());
    }
    let messages: usize = std::env::var("LANGUAGE_MESSAGES").ok().and_then(|n| n.parse().ok()).unwrap_or(300);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    println!(
        "| language | component | compile | load from cache | message p50 | message p99 | resident memory added |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (language, name) in commands {
        let wasm = guests.join(format!("{name}.wasm"));
        let bytes = std::fs::read(&wasm).expect("read the component");
        let cache = tempfile::tempdir().expect("temp dir");
        let (compile, load) = rt.block_on(compile_then_load(&bytes, cache.path()));

        // A bot serving only this command, its cache warm.
        let data = tempfile::tempdir().expect("temp dir");
        let before = resident_kib();
        let toml = format!(
            "data_dir = {data:?}\nguests_dir = {guests:?}\n[sandbox]\ncache_dir = {cache:?}\n\
             [model]\nprovider = \"none\"\n[commands.{name}]\nwasm = \"{name}.wasm\"\ngrants = [\"chat.send-message\"]\n",
            data = data.path().display().to_string(),
            guests = guests.display().to_string(),
            cache = cache.path().display().to_string(),
        );
        let config = Config::from_toml(&data.path().join("sandbot.toml"), &toml).expect("bench config");
        let dispatcher = rt.block_on(Dispatcher::start(config)).expect("start");
        let console =
            Console::new(Box::new(std::io::sink()), Mode::JsonLines, &data.path().join("out")).expect("console");
        let mut times = Vec::with_capacity(messages);
        let text = format!("!{name} {TEXT}");
        // One at a time, as a quiet channel sends them; the first few
        // (spares not yet made, pages not yet touched) are not counted.
        for n in 0..messages + 10 {
            let event = console.event(n as u64, InputLine::text(text.clone())).expect("event");
            let started = Instant::now();
            assert_eq!(rt.block_on(dispatcher.dispatch(event)), Outcome::Handled);
            if n >= 10 {
                times.push(started.elapsed());
            }
        }
        let added = resident_kib().saturating_sub(before);
        drop(dispatcher);
        times.sort();
        println!(
            "| {language} | {:.1} MB | {} | {} | {} | {} | {:.0} MiB |",
            bytes.len() as f64 / 1e6,
            shown(compile),
            shown(load),
            shown(times[times.len() / 2]),
            shown(times[times.len() * 99 / 100]),
            added as f64 / 1024.0,
        );
    }
}

/// Compiles `bytes` into an empty cache (timed), then loads it from there
/// in a new sandbox, as a restart does (timed).
async fn compile_then_load(bytes: &[u8], cache: &Path) -> (Duration, Duration) {
    let settings = EngineSettings { max_concurrency: 2, max_memory_bytes: 64 << 20 };
    let mut timed = Vec::new();
    for _ in 0..2 {
        let mut sandbox = Sandbox::new(settings).expect("sandbox");
        sandbox.use_cache(cache).expect("cache");
        let started = Instant::now();
        let prepared = sandbox.prepare(bytes.to_vec()).await.expect("it fits");
        timed.push((started.elapsed(), prepared.cached));
    }
    assert!(!timed[0].1 && timed[1].1, "compiled, then loaded from the cache");
    (timed[0].0, timed[1].0)
}

fn shown(d: Duration) -> String {
    match d.as_micros() {
        us if us < 1_000 => format!("{us} µs"),
        us if us < 1_000_000 => format!("{:.1} ms", us as f64 / 1000.0),
        us => format!("{:.1} s", us as f64 / 1e6),
    }
}

/// This process's resident set (`VmRSS`), KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
