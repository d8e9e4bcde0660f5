//! Hot swap and the compile cache, through the real `sandbot console`:
//!
//! - start-up to ready (every guest of the standard config loaded), with
//!   the compile cache empty and warm;
//! - from a command's `.wasm` written to the new version answering, by
//!   the watcher (its 300 ms quiet period included), by a rename into
//!   place (an atomic deploy, loaded at once) and by `!reload` (sent right
//!   after the write),
//!   for a version never seen (compiled) and one seen before (cache hit).
//!
//! `cargo bench -p sandbot --bench hotswap` (after `make build`).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{guests_dir, say, Bot, Setup, BIN};

const RUNS: usize = 5;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let setup = Setup::new("[commands.swap]\nwasm = \"SWAP\"\ngrants = [\"chat.send-message\", \"voice.leave\"]\n\n[sandbox]\ncache_dir = \"cache\"\n");
    let swap = setup.path("swap.wasm");
    let text = std::fs::read_to_string(&setup.config).expect("config").replace("SWAP", &swap.display().to_string());
    std::fs::write(&setup.config, text).expect("config");
    let hi = std::fs::read(guests_dir().join("hi.wasm")).expect("hi.wasm");
    let leave = std::fs::read(guests_dir().join("leave.wasm")).expect("leave.wasm");
    std::fs::write(&swap, &hi).expect("swap.wasm");
    let cache = setup.path("cache");

    let cold = median((0..RUNS).map(|_| {
        let _ = std::fs::remove_dir_all(&cache);
        time_to_ready(&setup)
    }));
    let warm = median((0..RUNS).map(|_| time_to_ready(&setup)));
    let guests = std::fs::read_to_string(&setup.config).expect("config").matches("[commands.").count();
    println!("hotswap/start-up to ready, {guests} commands, empty cache: median {:.0} ms", cold * 1e3);
    println!("hotswap/start-up to ready, {guests} commands, warm cache: median {:.0} ms", warm * 1e3);

    let mut bot = setup.spawn();
    let mut input = 0;
    assert!(ask(&mut bot, &mut input).starts_with("HI, "));
    for trigger in [Trigger::Watcher, Trigger::Rename, Trigger::Reload] {
        for cached in [false, true] {
            let times = (0..RUNS).map(|_| {
                if !cached {
                    forget_compiled(&cache);
                }
                let a = swap_and_wait(&mut bot, &mut input, &swap, &leave, trigger, |answer| {
                    answer == "I am not in a voice channel."
                });
                if !cached {
                    forget_compiled(&cache);
                }
                let b = swap_and_wait(&mut bot, &mut input, &swap, &hi, trigger, |answer| answer.starts_with("HI, "));
                [a, b]
            });
            let times: Vec<f64> = times.flatten().collect();
            println!(
                "hotswap/.wasm written to new version answering, {}, {}: median {:.1} ms (min {:.1}, max {:.1})",
                match trigger {
                    Trigger::Watcher => "watcher, written in place",
                    Trigger::Rename => "watcher, renamed into place",
                    Trigger::Reload => "!reload",
                },
                if cached { "cache hit" } else { "compiled" },
                median(times.iter().copied()) * 1e3,
                times.iter().copied().fold(f64::INFINITY, f64::min) * 1e3,
                times.iter().copied().fold(0.0, f64::max) * 1e3,
            );
        }
    }
    bot.finish();
}

#[derive(Clone, Copy)]
enum Trigger {
    /// Write in place and wait for the folder watcher.
    Watcher,
    /// Write beside it, rename into place, and wait for the watcher.
    Rename,
    /// Send `!reload` right after the write (the watcher is switched off
    /// by nothing, but its quiet period has not passed yet).
    Reload,
}

/// Seconds from process start to the `ready` log line.
fn time_to_ready(setup: &Setup) -> f64 {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["console", "--jsonl", "--config"])
        .arg(&setup.config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sandbot");
    let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut ready = None;
    for line in stderr.lines() {
        let line = line.expect("log line");
        if line.contains(" ready ") || line.ends_with(" ready") {
            ready = Some(started.elapsed().as_secs_f64());
            break;
        }
    }
    drop(child.stdin.take());
    let _ = child.wait();
    ready.expect("the bot never logged `ready`")
}

/// Removes the compiled files (the key stays), so the next swap compiles.
fn forget_compiled(cache: &Path) {
    for entry in std::fs::read_dir(cache).expect("cache dir").flatten() {
        if entry.path().extension().is_some_and(|e| e == "cwasm") {
            std::fs::remove_file(entry.path()).expect("remove a cached file");
        }
    }
}

/// Writes `bytes` over `swap`, then asks `!swap` until `answered` holds;
/// seconds from the end of the write to that answer.
fn swap_and_wait(
    bot: &mut Bot,
    input: &mut u64,
    swap: &Path,
    bytes: &[u8],
    trigger: Trigger,
    answered: impl Fn(&str) -> bool,
) -> f64 {
    // Let an earlier swap's events settle, so each swap is one reload.
    std::thread::sleep(Duration::from_millis(600));
    let written = if let Trigger::Rename = trigger {
        let staged = swap.with_extension("part");
        std::fs::write(&staged, bytes).expect("write swap.part");
        std::fs::rename(&staged, swap).expect("rename into place");
        Instant::now()
    } else {
        std::fs::write(swap, bytes).expect("write swap.wasm");
        Instant::now()
    };
    if let Trigger::Reload = trigger {
        bot.send(&say("!reload"));
        bot.read_until_done(*input);
        *input += 1;
    }
    loop {
        if answered(&ask(bot, input)) {
            return written.elapsed().as_secs_f64();
        }
        assert!(written.elapsed() < Duration::from_secs(30), "the new version never answered");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn ask(bot: &mut Bot, input: &mut u64) -> String {
    bot.send(&say("!swap"));
    let out = bot.read_until_done(*input);
    *input += 1;
    out.iter().find(|v| v["type"] == "message").and_then(|v| v["content"].as_str()).unwrap_or_default().to_string()
}

fn median(times: impl Iterator<Item = f64>) -> f64 {
    let mut times: Vec<f64> = times.collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
