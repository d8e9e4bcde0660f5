//! What a fleet on PostgreSQL costs (issue 16), on a throwaway server that
//! flushes every commit (`fsync = on`, as durable as SQLite's
//! `synchronous = FULL`), in one run:
//!
//! 1. a durable write: `!feedback` through the real console, answered only
//!    once its row is committed, on SQLite and on PostgreSQL in turn; and
//!    the store call alone (`log_feedback`) beside it;
//! 2. propagation: a correction made in one process, until the other
//!    process answers with it;
//! 3. deploy: `sandbot deploy` (and `rollback`) returning, until both
//!    processes answer with the new version.
//!
//! `make build && cargo bench -p sandbot --bench fleet` (FLEET_ROUNDS,
//! default 300, for part 1).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use sandbot::services::store::throwaway::Throwaway;
use sandbot::services::store::{Feedback, PgStore, Provenance, SqliteStore, Store};
use serde_json::json;
use support::{reply, Bot, Setup};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn line(name: &str, samples: &mut [Duration]) {
    let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
    println!("{name:<44} p50 {:>8.0} µs   p99 {:>8.0} µs   ({} runs)", micros(p50), micros(p99), samples.len());
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One input line, answered: how long until its `done`.
fn round_trip(bot: &mut Bot, n: &mut u64, text: &str) -> (Duration, String) {
    let started = Instant::now();
    bot.send(&json!({ "content": text, "guild": "111", "channel": "general" }));
    let out = bot.read_until_done(*n);
    let took = started.elapsed();
    let answer = reply(&out, *n);
    *n += 1;
    (took, answer)
}

/// Asks until the answer is `expected` (every 2 ms, 20 s at most): when.
fn until(bot: &mut Bot, n: &mut u64, text: &str, expected: &str) -> Instant {
    let started = Instant::now();
    loop {
        let (_, answer) = round_trip(bot, n, text);
        if answer == expected {
            return Instant::now();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "still {answer:?}; expected {expected:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rounds: usize = std::env::var("FLEET_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pg = Throwaway::start_durable().expect("a PostgreSQL server (scripts/setup-tests.sh installs one)");
    let url = runtime.block_on(pg.create_database("bench")).unwrap();

    println!("1. a durable write, SQLite and PostgreSQL in turn");
    let sqlite_bot = Setup::new("");
    let pg_bot = Setup::new(&format!("[store]\nurl = {url:?}\n"));
    let (mut on_sqlite, mut on_pg) = (sqlite_bot.spawn(), pg_bot.spawn());
    let (mut n_sqlite, mut n_pg) = (0, 0);
    let (mut sqlite_times, mut pg_times) = (Vec::new(), Vec::new());
    for i in 0..rounds + 20 {
        let text = format!("!feedback round {i}");
        let (a, _) = round_trip(&mut on_sqlite, &mut n_sqlite, &text);
        let (b, _) = round_trip(&mut on_pg, &mut n_pg, &text);
        // The first rounds warm both up.
        if i >= 20 {
            sqlite_times.push(a);
            pg_times.push(b);
        }
    }
    line("!feedback through the console, SQLite", &mut sqlite_times);
    line("!feedback through the console, PostgreSQL", &mut pg_times);
    let ratio = micros(percentile(&mut pg_times, 0.5)) / micros(percentile(&mut sqlite_times, 0.5));
    println!("{:<44} {ratio:.2}×", "PostgreSQL / SQLite (p50)");
    on_sqlite.finish();
    on_pg.finish();

    let feedback = Feedback {
        from: Provenance {
            author_id: "7".into(),
            author_name: "ann".into(),
            channel: "c".into(),
            guild: None,
            message_id: "1".into(),
        },
        text: "store call".into(),
    };
    let dir = tempfile::tempdir().unwrap();
    let (sqlite_times, pg_times) = runtime.block_on(async {
        let sqlite = SqliteStore::open(&dir.path().join("bench.db")).unwrap();
        let postgres = PgStore::connect(&url).await.unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let started = Instant::now();
            sqlite.log_feedback(feedback.clone()).await.unwrap();
            a.push(started.elapsed());
            let started = Instant::now();
            postgres.log_feedback(feedback.clone()).await.unwrap();
            b.push(started.elapsed());
        }
        (a, b)
    });
    let (mut sqlite_times, mut pg_times) = (sqlite_times, pg_times);
    line("log_feedback alone, SQLite", &mut sqlite_times);
    line("log_feedback alone, PostgreSQL", &mut pg_times);

    println!("\n2. propagation: corrected in one process, answered so by the other");
    let (a, b) =
        (Setup::chatty(&format!("[store]\nurl = {url:?}\n")), Setup::chatty(&format!("[store]\nurl = {url:?}\n")));
    let (mut one, mut two) = (a.spawn(), b.spawn());
    let (mut n_one, mut n_two) = (0, 0);
    let question = "who keeps the lighthouse";
    // Training answers twice (started, then done).
    one.send(&json!({ "content": "!train Who keeps the lighthouse? | Oren keeps the lighthouse.", "guild": "111" }));
    one.read_until_done(n_one);
    n_one += 1;
    until(&mut two, &mut n_two, question, "Oren keeps the lighthouse.");
    let mut times = Vec::new();
    for i in 0..20 {
        // Ask in the first process, correct its answer there.
        one.send(&json!({ "content": question, "guild": "111", "channel": "general" }));
        let out = one.read_until_done(n_one);
        n_one += 1;
        let id = out.iter().find(|v| v["type"] == "message").unwrap()["id"].as_str().unwrap().to_string();
        let corrected = format!("Keeper number {i} keeps the lighthouse.");
        let (_, thanks) = round_trip(&mut one, &mut n_one, &format!("!correct {id} {corrected}"));
        assert_eq!(thanks, "Thanks, I stored your correction.");
        let committed = Instant::now();
        times.push(until(&mut two, &mut n_two, question, &corrected) - committed);
    }
    line("correction → the other process answers it", &mut times);

    println!("\n3. deploy: `sandbot deploy` returns → both processes answer with it");
    let leave = support::guests_dir().join("leave.wasm");
    let (_, left) = round_trip(&mut one, &mut n_one, "!leave");
    let mut deploys = Vec::new();
    let mut rollbacks = Vec::new();
    for _ in 0..5 {
        let cli = |args: &[&str]| {
            let out = std::process::Command::new(support::BIN)
                .args(args)
                .arg("--config")
                .arg(&a.config)
                .env("RUST_LOG", "warn")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            Instant::now()
        };
        let returned =
            cli(&["deploy", "hi", leave.to_str().unwrap(), "--grant", "chat.send-message", "--grant", "voice.leave"]);
        let both = until(&mut one, &mut n_one, "!hi", &left).max(until(&mut two, &mut n_two, "!hi", &left));
        deploys.push(both - returned);
        let returned = cli(&["rollback", "hi"]);
        let both = until(&mut one, &mut n_one, "!hi", "HI, you!").max(until(&mut two, &mut n_two, "!hi", "HI, you!"));
        rollbacks.push(both - returned);
    }
    line("deploy → both answer with the new version", &mut deploys);
    line("rollback → both answer with the old version", &mut rollbacks);
    one.finish();
    two.finish();
}
