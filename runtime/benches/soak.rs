//! A soak: the real `sandbot run` on the fake Discord under mixed traffic
//! at a steady rate for `SOAK_SECS` (default 1 800, thirty minutes). Each
//! second: ten `!hi` from new users, one `!feedback`; every two seconds a
//! plain question (a paraphrase of a taught fact, one nothing taught, or
//! small talk, in turn, answered through retrieval and the local language
//! model); every five seconds a hostile command (spinning to its deadline,
//! or allocating past its memory limit, in turn); every thirty seconds a
//! `!train` of one new fact. Every kind talks in a channel of its own, so
//! that each reply is counted where it belongs.
//!
//! Prints, a line a minute: the bot's resident memory, `!hi`'s p50 and p99
//! over that minute, and the messages still unanswered; at the end, the
//! totals. A message fails when its reply has not come 30 s after it was
//! sent, or when a reply says something went wrong.
//!
//! `make build && SOAK_SECS=1800 cargo bench -p sandbot --bench soak`

#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::fake_discord::{message, FakeDiscord};
use support::Setup;

const HOSTILE: &str = r#"
[commands.loop]
wasm = "hostile.wasm"
grants = ["chat.send-message"]
limits = { deadline_ms = 2000 }

[commands.alloc]
wasm = "hostile.wasm"
grants = ["chat.send-message"]
limits = { memory_mib = 16 }
"#;

/// Questions in turn: a paraphrase of a taught fact, one nothing taught,
/// and small talk.
const QUESTIONS: [&str; 6] = [
    "who started this community?",
    "what is the capital of Peru?",
    "thanks a lot!",
    "whats the name of the music bot",
    "how do I bake sourdough bread?",
    "good morning everyone",
];

/// How long a reply may take before its message counts as failed: the
/// spinner's deadline and the language model's answers fit well within.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Hi,
    Feedback,
    Question,
    Hostile,
    Train,
}

impl Kind {
    fn channel(self) -> &'static str {
        match self {
            Kind::Hi => "7001",
            Kind::Feedback => "7002",
            Kind::Question => "7003",
            Kind::Hostile => "7004",
            Kind::Train => "7005",
        }
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let seconds: u64 = std::env::var("SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(1800);
    let llm = support::workspace().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(llm.is_file(), "{} is missing: run `make build`", llm.display());
    let setup = Setup::chatty(&format!("{HOSTILE}\n[model]\nllm = {:?}\n", llm.display().to_string()));
    let fake = FakeDiscord::start();
    let mut bot = setup
        .discord_command(&fake.api_base(), "fake-token", &[])
        // The log an operator gets: a line per message.
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sandbot");
    fake.wait_identified(1);
    let pid = bot.id();

    // What the questions are about.
    let facts = [
        "!train Who founded Lanternmoor? | Lanternmoor was founded by Ysolde Varga in 2019.",
        "!train What is the music bot called? | The music bot is called Wick.",
    ];
    for fact in facts {
        fake.say(message("42", fact).in_channel("7000"));
    }
    let trained = |fake: &FakeDiscord| {
        fake.posts().iter().filter(|p| p.channel == "7000" && p.content.contains("training started")).count()
    };
    let waited = Instant::now();
    while trained(&fake) < facts.len() {
        assert!(waited.elapsed() < PATIENCE, "the facts were not trained: {:?}", fake.posts());
        std::thread::sleep(Duration::from_millis(50));
    }

    // Sent messages of each kind, and when; a reply answers the oldest
    // unanswered message of its channel.
    let mut sent: HashMap<Kind, Vec<Instant>> = HashMap::new();
    let mut user = 1_000_000u64;
    let started = Instant::now();
    let rss_at_start = resident_kib(pid);
    println!("soak: {seconds} s; bot resident memory at the start {} MiB", rss_at_start / 1024);
    let mut minute_hi: Vec<Duration> = Vec::new();
    let mut all_hi: Vec<Duration> = Vec::new();
    let mut tick: u64 = 0;
    let mut next_minute = started + Duration::from_secs(60);
    // After the first minute everything is loaded (the language model is
    // read at its first answer): the figure the end is compared with.
    let mut rss_after_first_minute = None;
    let mut question = 0;
    let mut hostile = 0;
    // `!hi` waiting for its answer: the answer expected, and when the
    // message was sent.
    let mut waiting_hi: HashMap<String, Instant> = HashMap::new();
    let mut seen_posts = 0;
    let mut wrong: Vec<String> = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        let second = started + Duration::from_secs(tick);
        // Ten `!hi` spread over the second.
        for n in 0..10u32 {
            let at = second + Duration::from_millis(100 * u64::from(n));
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            user += 1;
            let id = fake.say(message(&user.to_string(), "!hi").in_channel(Kind::Hi.channel()));
            sent.entry(Kind::Hi).or_default().push(Instant::now());
            waiting_hi.insert(format!("HI, user{user}!"), fake.sent_at(&id).expect("sent"));
            if n == 5 {
                user += 1;
                fake.say(
                    message(&user.to_string(), "!feedback the soak says hello").in_channel(Kind::Feedback.channel()),
                );
                sent.entry(Kind::Feedback).or_default().push(Instant::now());
            }
        }
        if tick.is_multiple_of(2) {
            user += 1;
            let text = QUESTIONS[question % QUESTIONS.len()];
            question += 1;
            fake.say(message(&user.to_string(), text).in_channel(Kind::Question.channel()));
            sent.entry(Kind::Question).or_default().push(Instant::now());
        }
        if tick.is_multiple_of(5) {
            user += 1;
            let command = if hostile % 2 == 0 { "!loop" } else { "!alloc" };
            hostile += 1;
            fake.say(message(&user.to_string(), command).in_channel(Kind::Hostile.channel()));
            sent.entry(Kind::Hostile).or_default().push(Instant::now());
        }
        if tick % 30 == 15 {
            let text = format!("!train What is soak fact {tick}? | Soak fact {tick} is {}.", tick * 7);
            fake.say(message("42", &text).in_channel(Kind::Train.channel()));
            sent.entry(Kind::Train).or_default().push(Instant::now());
        }
        tick += 1;

        // What came back.
        let posts = fake.posts_since(seen_posts);
        for post in &posts {
            if post.content.contains("went wrong") {
                wrong.push(post.content.clone());
            }
            if post.channel == Kind::Hi.channel() {
                if let Some(sent_at) = waiting_hi.remove(&post.content) {
                    minute_hi.push(post.at - sent_at);
                    all_hi.push(post.at - sent_at);
                }
            }
        }
        seen_posts += posts.len();
        if Instant::now() >= next_minute {
            next_minute += Duration::from_secs(60);
            let (p50, p99) = quantiles(&mut minute_hi);
            let late = waiting_hi.values().filter(|at| at.elapsed() > PATIENCE).count();
            rss_after_first_minute.get_or_insert_with(|| resident_kib(pid));
            println!(
                "soak: minute {:>2}: resident {} MiB, !hi p50 {:.2} ms, p99 {:.2} ms ({} answered), {} !hi unanswered past {PATIENCE:?}",
                started.elapsed().as_secs() / 60,
                resident_kib(pid) / 1024,
                p50 * 1e3,
                p99 * 1e3,
                minute_hi.len(),
                late,
            );
            minute_hi.clear();
        }
    }

    // The last replies.
    std::thread::sleep(PATIENCE);
    let posts = fake.posts();
    let rss_at_end = resident_kib(pid);
    let (p50, p99) = quantiles(&mut all_hi);
    let replied = |kind: Kind| posts.iter().filter(|p| p.channel == kind.channel()).count();
    println!(
        "soak: {seconds} s: bot resident memory {} MiB at the start, {} MiB after the first minute, {} MiB at the end; !hi p50 {:.2} ms, p99 {:.2} ms",
        rss_at_start / 1024,
        rss_after_first_minute.unwrap_or(0) / 1024,
        rss_at_end / 1024,
        p50 * 1e3,
        p99 * 1e3
    );
    let mut failed = 0;
    for kind in [Kind::Hi, Kind::Feedback, Kind::Question, Kind::Hostile, Kind::Train] {
        let asked = sent.get(&kind).map_or(0, Vec::len);
        // Every kind answers once (a command may answer more).
        let answered = replied(kind);
        let missing = asked.saturating_sub(answered);
        failed += missing;
        println!("soak: {kind:?}: {asked} sent, {answered} replies, {missing} unanswered");
    }
    println!("soak: {} replies said something went wrong", wrong.len());
    for text in wrong.iter().take(5) {
        println!("soak:   {text}");
    }
    println!("soak: failed messages: {}", failed + wrong.len());
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        for line in status.lines().filter(|l| l.starts_with("VmHWM")) {
            println!("soak: bot {line}");
        }
    }
    let _ = bot.kill();
    let _ = bot.wait();
}

/// The p50 and p99 of `latencies`, in seconds (zeros when empty).
fn quantiles(latencies: &mut [Duration]) -> (f64, f64) {
    if latencies.is_empty() {
        return (0.0, 0.0);
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64();
    (at(0.5), at(0.99))
}

/// The process's resident set, in KiB.
fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}
