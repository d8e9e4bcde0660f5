//! Noisy neighbours through the fake Discord: `!hi` from one user at a
//! time, first with the bot quiet, then beside 40 invocations (from 40
//! users) of a command that spins until its 5 s deadline, as an outside
//! author's command might. Prints the median and p99 of MESSAGE_CREATE →
//! POST for both, in the same run; then the same with the spinning
//! command's share lifted (`concurrency = 1000`, `per_server = 1000`), so
//! that only the slow lane keeps `!hi` apart from the spinners.
//!
//! `cargo bench -p sandbot --bench fairness` (after `make build`); add
//! `-- shares` or `-- "no shares"` for one case.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::fake_discord::{message, FakeDiscord};
use support::Setup;

const SPINNING: usize = 40;
const SAMPLES: usize = 100;

/// The hostile guest's `loop`: spins until its deadline.
const SPINNER: &str = r#"
[commands.loop]
wasm = "hostile.wasm"
grants = ["chat.send-message"]
limits = { deadline_ms = 5000 }
"#;

/// The same, with no share to hold it back.
const UNSHARED: &str = r#"
[commands.loop]
wasm = "hostile.wasm"
grants = ["chat.send-message"]
limits = { deadline_ms = 5000, concurrency = 1000 }

[sandbox]
per_server = 1000
"#;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    // `-- shares` or `-- "no shares"` runs that case alone.
    let only: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    for (what, config) in [("shares", SPINNER), ("no shares", UNSHARED)] {
        if only.is_empty() || only.iter().any(|o| *o == what) {
            measure(what, config);
        }
    }
}

fn measure(label: &str, config: &str) {
    let setup = Setup::new(config);
    let fake = FakeDiscord::start();
    let mut bot = setup
        .discord_command(&fake.api_base(), "fake-token", &[])
        .stdout(Stdio::null())
        .spawn()
        .expect("start sandbot");
    fake.wait_identified(1);

    let mut next_user = 1000;
    let mut hi = |fake: &FakeDiscord| {
        next_user += 1;
        let from = fake.post_count();
        let id = fake.say(message(&next_user.to_string(), "!hi"));
        let wanted = format!("HI, user{next_user}!");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(post) = fake.posts_since(from).into_iter().find(|p| p.content == wanted) {
                return post.at - fake.sent_at(&id).expect("sent");
            }
            assert!(Instant::now() < deadline, "no answer to !hi");
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    for _ in 0..20 {
        hi(&fake);
    }
    let quiet: Vec<Duration> = (0..SAMPLES).map(|_| hi(&fake)).collect();

    // Rounds: 40 spinners start, then `!hi`s while they spin (the first
    // seconds of their deadline), until there are enough samples.
    let mut beside = Vec::new();
    let mut round = 0;
    while beside.len() < SAMPLES {
        round += 1;
        let started = Instant::now();
        for user in 0..SPINNING {
            fake.say(message(&(100_000 * round + user).to_string(), "!loop"));
        }
        while started.elapsed() < Duration::from_secs(4) && beside.len() < SAMPLES {
            beside.push(hi(&fake));
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the round's spinners end (and their waiters give up).
        std::thread::sleep(Duration::from_secs(7));
    }
    let posts = fake.posts();
    let busy = posts.iter().filter(|p| p.content.contains("is busy right now")).count();
    let stopped = posts.iter().filter(|p| p.content.contains("took too long")).count();

    for (what, mut latencies) in [("quiet", quiet), ("beside 40 spinning", beside)] {
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "fairness/{label}: hi {what} ({} samples): median {:.2} ms, p99 {:.2} ms",
            latencies.len(),
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
        );
    }
    println!(
        "fairness/{label}: spinners: {round} rounds of {SPINNING}: {stopped} ran to the deadline, {busy} told busy"
    );
    let _ = bot.kill();
    let _ = bot.wait();
}
