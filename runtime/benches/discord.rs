//! End to end through the fake Discord: the real `sandbot run` binary, real
//! serenity, real guests. Measures the time from a MESSAGE_CREATE leaving
//! the fake's gateway to the bot's POST arriving at its REST side, one
//! message at a time, then the rate when many arrive at once. The same
//! for `/hi` as a slash command: INTERACTION_CREATE to the interaction's
//! callback, alternating with the messages in the same run.
//!
//! `cargo bench -p sandbot --bench discord` (after `make build`).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::fake_discord::{message, FakeDiscord};
use support::Setup;

const SEQUENTIAL: usize = 500;
const BURST: usize = 2000;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then there is nothing to check here.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let setup = Setup::new("");
    let fake = FakeDiscord::start();
    let mut bot = setup
        .discord_command(&fake.api_base(), "fake-token", &[])
        .stdout(Stdio::null())
        .spawn()
        .expect("start sandbot");
    fake.wait_identified(1);

    let mut posted = 0;
    let mut send_and_wait = |user: usize| {
        let id = fake.say(message(&(1000 + user).to_string(), "!hi"));
        posted += 1;
        let post = fake.wait_posts(posted).pop().expect("a post");
        post.at - fake.sent_at(&id).expect("sent")
    };
    for user in 0..50 {
        send_and_wait(user);
    }
    let interact_and_wait = |user: usize| {
        let token = fake.interact(&(5000 + user).to_string(), "hi", serde_json::json!([]), serde_json::json!({}));
        let answered = fake.wait_answered(&token, 1);
        answered[0].at - fake.interacted_at(&token).expect("sent")
    };
    let (mut latencies, mut slash): (Vec<Duration>, Vec<Duration>) =
        (0..SEQUENTIAL).map(|user| (send_and_wait(user), interact_and_wait(user))).unzip();
    for (what, latencies) in [("hi", &mut latencies), ("slash /hi", &mut slash)] {
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "discord/{what} one at a time ({SEQUENTIAL}): median {:.0} µs, p99 {:.0} µs, min {:.0} µs",
            at(0.5).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
            latencies[0].as_secs_f64() * 1e6,
        );
    }

    let before = fake.posts().len();
    let started = Instant::now();
    for user in 0..BURST {
        fake.say(message(&(100_000 + user).to_string(), "!hi"));
    }
    let posts = fake.wait_posts(before + BURST);
    let elapsed = posts.last().expect("posts").at - started;
    println!(
        "discord/hi burst of {BURST}: {:.0} messages/s ({:.2} s in all)",
        BURST as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", bot.id())) {
        for line in status.lines().filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS")) {
            println!("discord/bot memory: {line}");
        }
    }
    let _ = bot.kill();
    let _ = bot.wait();
}
