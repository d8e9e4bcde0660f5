//! The dashboard's pages with 10 000 failures recorded: a GET over
//! loopback (keep-alive), rendered by the real router against a running
//! dispatcher, login cookie and all.
//!
//! `cargo bench -p sandbot --bench dashboard` (after `make build`).
//! Figures go in BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use sandbot::telemetry::recent::{recent, Failure, FAILURES_KEPT};
use sandbot::{Config, Dispatcher};

const TOKEN: &str = "a-token-for-the-dashboard-bench";

fn pages(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let data = tempfile::tempdir().expect("temp dir");
    let guests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/guest");
    assert!(guests.join("hi.wasm").is_file(), "build the guests first: make build");
    let mut toml = format!(
        "data_dir = {data:?}\nguests_dir = {guests:?}\n[dashboard]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n",
        data = data.path().display().to_string(),
        guests = guests.display().to_string(),
    );
    // Twelve commands, as the shipped config has.
    for name in
        ["hi", "help", "feedback", "correct", "getfile", "archive", "train", "test", "join", "leave", "commands"]
    {
        toml.push_str(&format!("[commands.{name}]\nwasm = \"{name}.wasm\"\ngrants = [\"chat\", \"commands\"]\n"));
    }
    toml.push_str("[commands.loop]\nwasm = \"hostile.wasm\"\ngrants = [\"chat\"]\n");
    let config = Config::from_toml(&data.path().join("sandbot.toml"), &toml).expect("bench config");
    let settings = config.dashboard.clone().expect("[dashboard]");
    let dispatcher = Arc::new(rt.block_on(Dispatcher::start(config)).expect("start"));
    let started = rt.block_on(sandbot::dashboard::serve(&settings, dispatcher)).expect("dashboard");
    let base = format!("http://{}", started.address);

    // 10 000 failures, and an hour of invocations in every command's chart.
    let now = SystemTime::now();
    for n in 0..FAILURES_KEPT {
        recent().failed(Failure {
            at: now,
            command: "loop".into(),
            user: format!("{}", 100_000 + n),
            cause: "deadline",
            detail: "the command ran past its deadline of 300 ms".into(),
        });
    }
    for name in ["hi", "help", "feedback", "correct", "getfile", "archive", "train", "test", "join", "leave", "loop"] {
        let window = recent().command(name);
        for n in 0..10_000u64 {
            window.invocation(Duration::from_micros(40 + n % 500), (n % 97 == 0).then_some("panic"));
        }
    }

    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let cookie = rt.block_on(async {
        let response = client.post(format!("{base}/login")).form(&[("token", TOKEN)]).send().await.expect("login");
        let cookie = response.headers().get("set-cookie").expect("a session cookie").to_str().expect("text");
        cookie.split(';').next().expect("name=value").to_string()
    });

    let mut group = c.benchmark_group("dashboard");
    for (name, path) in
        [("commands", "/"), ("failures_newest", "/failures"), ("failures_oldest", "/failures?skip=9950")]
    {
        let url = format!("{base}{path}");
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let response = client.get(&url).header("cookie", &cookie).send().await.expect("GET");
                assert_eq!(response.status(), 200);
                response.bytes().await.expect("body")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pages);
criterion_main!(benches);
