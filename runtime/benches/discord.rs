//! End to end through the fake Discord: the real `sandbot run` binary, real
//! serenity, real guests. Measures the time from a MESSAGE_CREATE leaving
//! the fake's gateway to the bot's POST arriving at its REST side, one
//! message at a time, then the rate when many arrive at once. The same
//! for `/hi` as a slash command: INTERACTION_CREATE to the interaction's
//! callback, and a signed POST to the HTTP interactions endpoint to its
//! response, alternating with the messages in the same run.
//!
//! Then the Discord path against its peer: sandbot (with its default
//! log, a line per message) and a plain serenity bot that answers `!hi` itself
//! (`examples/plain_serenity_bot.rs`), three rounds, each one message at
//! a time and then in a burst; the ratio of the medians is the cost of
//! everything sandbot adds. With both bots up, each on a fake of its own
//! and the messages alternating between them: once with a pause before
//! each message (the bots idle as it comes), once with none. Then back
//! to back, each bot alone in turn.
//!
//! `make build && cargo build --release -p sandbot --example plain_serenity_bot
//!  && cargo bench -p sandbot --bench discord`

#[path = "../../tests/support/mod.rs"]
mod support;

use std::process::Stdio;
use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey};
use serde_json::json;
use support::fake_discord::{self, message, FakeDiscord};
use support::Setup;

const SEQUENTIAL: usize = 500;
/// Rounds of sandbot against the plain bot, and messages in each.
const ROUNDS: usize = 3;
/// Messages one at a time in each round; `PEER_SEQUENTIAL=20000` gives a
/// profiler (`perf record -p`) a few seconds of each bot.
const PEER_SEQUENTIAL: usize = 400;
const PEER_BURST: usize = 1000;
/// The pause before each message when the bots are to be idle as it comes.
const IDLE_GAP_US: u64 = 2000;
const BURST: usize = 2000;
/// Requests in flight at once in the HTTP burst.
const CONCURRENT: usize = 64;

/// Discord's side of the HTTP interactions endpoint: signed POSTs over one
/// kept-alive client.
struct Endpoint {
    url: String,
    key: SigningKey,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Endpoint {
    fn new(url: String) -> Endpoint {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Endpoint { url, key: fake_discord::signing_key(), runtime, client: reqwest::Client::new() }
    }

    /// An interaction `/hi` by `user`, serialised: its token and body.
    fn request(&self, id: u64, user: &str) -> (String, Vec<u8>) {
        let (id, token) = ((50_000_000 + id).to_string(), format!("token-http-{id}"));
        let body = fake_discord::interaction(&id, &token, user, "hi", json!([]), json!({}));
        (token, serde_json::to_vec(&body).expect("json"))
    }

    fn signed(&self, body: Vec<u8>) -> reqwest::RequestBuilder {
        let timestamp = fake_discord::unix_now().to_string();
        let signature = self.key.sign(&[timestamp.as_bytes(), &body].concat());
        self.client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-signature-ed25519", hex::encode(signature.to_bytes()))
            .header("x-signature-timestamp", timestamp)
            .body(body)
    }

    fn post(&self, body: &[u8]) -> (u16, serde_json::Value) {
        let request = self.signed(body.to_vec());
        self.runtime.block_on(answer(request))
    }

    /// Every request, `CONCURRENT` in flight at a time, each answer
    /// handed to the fake Discord as it arrives (as Discord takes it);
    /// the statuses in order.
    fn post_all(&self, fake: &FakeDiscord, requests: Vec<(String, Vec<u8>)>) -> Vec<u16> {
        let requests: Vec<_> = requests.into_iter().map(|(token, body)| (token, self.signed(body))).collect();
        self.runtime.block_on(async {
            use futures_util::StreamExt;
            let answers = requests.into_iter().map(|(token, request)| async move {
                let (status, body) = answer(request).await;
                fake.took_response(&token, &body);
                status
            });
            futures_util::stream::iter(answers).buffered(CONCURRENT).collect().await
        })
    }
}

async fn answer(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let response = request.send().await.expect("POST to the interactions endpoint");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then there is nothing to check here.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let setup = Setup::new(&format!(
        "[discord]\ninteractions_listen = \"127.0.0.1:{port}\"\npublic_key = \"{}\"\n",
        fake_discord::public_key_hex()
    ));
    let endpoint = Endpoint::new(format!("http://127.0.0.1:{port}/interactions"));
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
        let post = fake.wait_post(posted);
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
    let mut serial = 0;
    let mut post_and_wait = |user: usize| {
        serial += 1;
        let (token, request) = endpoint.request(serial, &(9000 + user).to_string());
        let started = Instant::now();
        let (status, body) = endpoint.post(&request);
        let took = started.elapsed();
        assert_eq!(status, 200, "{body}");
        fake.took_response(&token, &body);
        took
    };
    let (mut latencies, mut slash, mut by_http) = (Vec::new(), Vec::new(), Vec::new());
    for user in 0..SEQUENTIAL {
        latencies.push(send_and_wait(user));
        slash.push(interact_and_wait(user));
        by_http.push(post_and_wait(user));
    }
    for (what, latencies) in
        [("hi", &mut latencies), ("slash /hi", &mut slash), ("slash /hi by HTTP, request → response", &mut by_http)]
    {
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "discord/{what} one at a time ({SEQUENTIAL}): median {:.0} µs, p99 {:.0} µs, min {:.0} µs",
            at(0.5).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
            latencies[0].as_secs_f64() * 1e6,
        );
    }

    let before = fake.post_count();
    let started = Instant::now();
    for user in 0..BURST {
        fake.say(message(&(100_000 + user).to_string(), "!hi"));
    }
    let elapsed = fake.wait_post(before + BURST).at - started;
    println!(
        "discord/hi burst of {BURST}: {:.0} messages/s ({:.2} s in all)",
        BURST as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );

    // The same burst as slash commands, through the gateway.
    let started = Instant::now();
    let tokens: Vec<String> =
        (0..BURST).map(|user| fake.interact(&(200_000 + user).to_string(), "hi", json!([]), json!({}))).collect();
    let last = tokens.iter().map(|token| fake.wait_answered(token, 1)[0].at).max().expect("answers");
    let elapsed = last - started;
    println!(
        "discord/slash /hi burst of {BURST}: {:.0} interactions/s ({:.2} s in all)",
        BURST as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );

    // And by HTTP: signed requests, CONCURRENT at a time, as many as the
    // burst.
    let requests: Vec<(String, Vec<u8>)> =
        (0..BURST).map(|user| endpoint.request(1_000_000 + user as u64, &(300_000 + user).to_string())).collect();
    let started = Instant::now();
    let statuses = endpoint.post_all(&fake, requests);
    let elapsed = started.elapsed();
    assert!(statuses.iter().all(|status| *status == 200), "a request was refused");
    println!(
        "discord/slash /hi by HTTP, {BURST} requests {CONCURRENT} at a time: {:.0} requests/s ({:.2} s in all)",
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

    against_the_plain_bot(&setup, &fake);
}

/// The CPU time all of `pid`'s threads have used (`/proc/<pid>/task/*/schedstat`).
fn cpu_time(pid: u32) -> std::time::Duration {
    let mut nanos = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            nanos += stat.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    std::time::Duration::from_nanos(nanos)
}

/// The plain serenity bot, built next to `sandbot`.
fn plain_bot() -> std::path::PathBuf {
    let path = std::path::Path::new(support::BIN).with_file_name("examples").join("plain_serenity_bot");
    assert!(
        path.exists(),
        "{} is missing: cargo build --release -p sandbot --example plain_serenity_bot",
        path.display()
    );
    path
}

/// Sandbot against the plain bot in three ways messages come, each a
/// run of [`ROUNDS`]: to an idle bot (a pause of [`IDLE_GAP_US`] before
/// each, as a real bot mostly gets them), alternating between the bots
/// with no pause (each bot idle only while the other answers), and back
/// to back to one bot at a time (both bots and the fake then compete for
/// the machine's cores, so the ratio follows CPU time per message).
/// `PEER_GAP_US` runs one pause only: 0 is back to back, in turn, unless
/// `PEER_ALTERNATE=1` asks for the bots alternating with no pause.
fn against_the_plain_bot(setup: &Setup, fake: &FakeDiscord) {
    let alternate = std::env::var("PEER_ALTERNATE").is_ok_and(|v| v == "1");
    let ways = match std::env::var("PEER_GAP_US").ok().and_then(|n| n.parse().ok()) {
        Some(0) => vec![(0, alternate)],
        Some(gap) => vec![(gap, true)],
        None => vec![(IDLE_GAP_US, true), (0, true), (0, false)],
    };
    let mut user = 400_000;
    for (gap, alternating) in ways {
        let gap = std::time::Duration::from_micros(gap);
        if !alternating {
            println!("discord/peer, messages back to back, each bot alone in turn:");
            in_turn(setup, fake, &mut user);
            continue;
        }
        let pause = match gap.as_micros() {
            0 => "no pause".to_string(),
            us => format!("idle, {us} µs apart"),
        };
        println!("discord/peer, messages alternating between the bots, {pause}:");
        interleaved(setup, fake, gap, &mut user);
    }
}

/// The two bots of the comparison.
const BOTS: [&str; 2] = ["sandbot", "plain serenity"];

/// Starts bot `slot` of [`BOTS`] against `fake` and waits for its IDENTIFY.
fn start_bot(setup: &Setup, fake: &FakeDiscord, slot: usize) -> std::process::Child {
    let mut command = if slot == 0 {
        let mut command = setup.discord_command(&fake.api_base(), "fake-token", &[]);
        // What an operator runs: the default log, a line per message.
        command.env_remove("RUST_LOG");
        if let Ok(log) = std::env::var("SANDBOT_LOG") {
            command.env("RUST_LOG", log);
        }
        command
    } else {
        let mut command = std::process::Command::new(plain_bot());
        command.env("DISCORD_TOKEN", "fake-token").env("SANDBOT_DISCORD_API_BASE", fake.api_base());
        command
    };
    let identified = fake.identifies();
    let bot = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start a bot");
    fake.wait_identified(identified + 1);
    bot
}

/// One `!hi` from a new user, after `gap`: MESSAGE_CREATE out to POST in.
fn one_hi(fake: &FakeDiscord, user: &mut usize, gap: std::time::Duration) -> std::time::Duration {
    if !gap.is_zero() {
        std::thread::sleep(gap);
    }
    *user += 1;
    let posted = fake.post_count();
    let id = fake.say(message(&user.to_string(), "!hi"));
    let post = fake.wait_post(posted + 1);
    post.at - fake.sent_at(&id).expect("sent")
}

/// [`PEER_BURST`] `!hi` at once: messages a second.
fn burst(fake: &FakeDiscord, user: &mut usize) -> f64 {
    let before = fake.post_count();
    let started = Instant::now();
    for _ in 0..PEER_BURST {
        *user += 1;
        fake.say(message(&user.to_string(), "!hi"));
    }
    let last = fake.wait_post(before + PEER_BURST).at;
    PEER_BURST as f64 / (last - started).as_secs_f64()
}

fn peer_sequential() -> usize {
    std::env::var("PEER_SEQUENTIAL").ok().and_then(|n| n.parse().ok()).unwrap_or(PEER_SEQUENTIAL)
}

/// What one bot did in a round: its latencies (sorted), CPU per message
/// and burst rate.
struct RoundOf {
    latencies: Vec<std::time::Duration>,
    cpu_us: f64,
    rate: f64,
}

impl RoundOf {
    fn at(&self, q: f64) -> f64 {
        let n = self.latencies.len();
        self.latencies[((n as f64 * q) as usize).min(n - 1)].as_secs_f64() * 1e6
    }
}

/// Prints each bot's round and the ratio of the medians; returns the medians.
fn report_round(round: usize, of: &[RoundOf; 2]) -> (f64, f64) {
    for (who, of) in BOTS.iter().zip(of) {
        println!(
            "discord/peer round {round}, {who}: !hi median {:.0} µs, p99 {:.0} µs, CPU {:.0} µs a message; burst of {PEER_BURST}: {:.0} messages/s",
            of.at(0.5),
            of.at(0.99),
            of.cpu_us,
            of.rate,
        );
    }
    let medians = (of[0].at(0.5), of[1].at(0.5));
    println!("discord/peer round {round}: sandbot / plain serenity = {:.2}×", medians.0 / medians.1);
    medians
}

/// Both bots run at once, each on a fake of its own, and the messages
/// alternate between them: whatever the machine does meanwhile (another
/// VM, a frequency change) falls on both alike, where rounds in turn
/// showed it as a different ratio each round. Between two of its own
/// messages a bot has `gap` twice and the other's answer.
fn interleaved(setup: &Setup, fake: &FakeDiscord, gap: std::time::Duration, user: &mut usize) {
    let fakes = [fake, &FakeDiscord::start()];
    let sequential = peer_sequential();
    let mut medians = Vec::new();
    for round in 1..=ROUNDS {
        let mut bots: Vec<_> = (0..2).map(|slot| start_bot(setup, fakes[slot], slot)).collect();
        for _ in 0..50 {
            for fake in fakes {
                one_hi(fake, user, gap);
            }
        }
        let cpu_before: Vec<_> = bots.iter().map(|bot| cpu_time(bot.id())).collect();
        let mut latencies = [Vec::with_capacity(sequential), Vec::with_capacity(sequential)];
        for _ in 0..sequential {
            for (slot, fake) in fakes.iter().enumerate() {
                latencies[slot].push(one_hi(fake, user, gap));
            }
        }
        let of = std::array::from_fn(|slot| {
            let cpu = (cpu_time(bots[slot].id()) - cpu_before[slot]).as_secs_f64() * 1e6 / sequential as f64;
            let mut latencies = std::mem::take(&mut latencies[slot]);
            latencies.sort();
            // The burst with the other bot idle.
            let rate = burst(fakes[slot], user);
            RoundOf { latencies, cpu_us: cpu, rate }
        });
        medians.push(report_round(round, &of));
        for bot in &mut bots {
            let _ = bot.kill();
            let _ = bot.wait();
        }
    }
    report_mean(&medians);
}

/// Back to back: each bot alone on the fake in turn, [`ROUNDS`] times.
/// (Both at once would put one bot's work after an answer beside the
/// other's next message.)
fn in_turn(setup: &Setup, fake: &FakeDiscord, user: &mut usize) {
    let sequential = peer_sequential();
    let mut medians = Vec::new();
    for round in 1..=ROUNDS {
        let of = std::array::from_fn(|slot| {
            let mut bot = start_bot(setup, fake, slot);
            for _ in 0..50 {
                one_hi(fake, user, std::time::Duration::ZERO);
            }
            let cpu_before = cpu_time(bot.id());
            let mut latencies: Vec<_> =
                (0..sequential).map(|_| one_hi(fake, user, std::time::Duration::ZERO)).collect();
            let cpu_us = (cpu_time(bot.id()) - cpu_before).as_secs_f64() * 1e6 / sequential as f64;
            latencies.sort();
            let rate = burst(fake, user);
            let _ = bot.kill();
            let _ = bot.wait();
            RoundOf { latencies, cpu_us, rate }
        });
        medians.push(report_round(round, &of));
    }
    report_mean(&medians);
}

/// The mean of each bot's medians over the rounds, and their ratio.
fn report_mean(medians: &[(f64, f64)]) {
    let mean = |pick: fn(&(f64, f64)) -> f64| medians.iter().map(pick).sum::<f64>() / medians.len() as f64;
    println!(
        "discord/peer: mean of the medians, sandbot {:.0} µs, plain serenity {:.0} µs: {:.2}×",
        mean(|m| m.0),
        mean(|m| m.1),
        mean(|m| m.0) / mean(|m| m.1)
    );
}
