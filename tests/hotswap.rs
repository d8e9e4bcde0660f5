//! Hot swap as an operator does it: the real bot running in the console,
//! a command's `.wasm` replaced underneath it (written in pieces, as `cp`
//! does), the compile cache across restarts, and `!commands` / `!reload`.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{guests_dir, say, Bot, Setup, BIN};

/// The three versions the `swap` command takes, and what each answers.
const A: &str = "hi.wasm";
const B: &str = "leave.wasm";
const C: &str = "help.wasm";

fn answer_of(version: &str, text: &str) -> bool {
    match version {
        A => text.starts_with("HI, "),
        B => text == "I am not in a voice channel.",
        C => text.starts_with("Commands:"),
        _ => false,
    }
}

/// A bot whose `swap` command is `<dir>/swap.wasm`, first a copy of `hi`;
/// `sandbox` goes into its `[sandbox]` table.
fn setup_with(sandbox: &str) -> (Setup, PathBuf) {
    let setup = Setup::new(&format!(
        "[commands.swap]\nwasm = \"SWAP\"\ngrants = [\"chat.send-message\", \"voice.leave\", \"commands.list\"]\n\n\
         [sandbox]\ncache_dir = \"cache\"\n{sandbox}"
    ));
    let swap = setup.path("swap.wasm");
    let text = std::fs::read_to_string(&setup.config).unwrap().replace("SWAP", &swap.display().to_string());
    std::fs::write(&setup.config, text).unwrap();
    std::fs::copy(guests_dir().join(A), &swap).unwrap();
    (setup, swap)
}

fn setup() -> (Setup, PathBuf) {
    setup_with("")
}

/// Writes `bytes` over `path` the way `cp` does: truncate, then pieces.
fn write_in_pieces(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::File::create(path).unwrap();
    for piece in bytes.chunks(16 << 10) {
        file.write_all(piece).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Sends `!swap` and returns its one answer; fails on anything else.
fn ask(bot: &mut Bot, input: &mut u64) -> String {
    bot.send(&say("!swap"));
    let out = bot.read_until_done(*input);
    *input += 1;
    let answers: Vec<&Value> = out.iter().filter(|v| v["type"] == "message").collect();
    let errors: Vec<&Value> = out.iter().filter(|v| v["type"] == "error").collect();
    assert!(errors.is_empty() && answers.len() == 1, "a message failed during a swap: {out:#?}");
    answers[0]["content"].as_str().unwrap_or_default().to_string()
}

#[test]
fn swaps_under_load_without_losing_a_message() {
    let (setup, swap) = setup();
    let versions: Vec<(&str, Vec<u8>)> =
        [A, B, C].iter().map(|v| (*v, std::fs::read(guests_dir().join(v)).unwrap())).collect();
    let mut bot = setup.spawn();
    let mut input = 0;
    assert!(answer_of(A, &ask(&mut bot, &mut input)));

    // 20 replacements, B and A in turn, the last one C; messages stream
    // all the while.
    let writer = {
        let swap = swap.clone();
        let versions = versions.clone();
        std::thread::spawn(move || {
            for i in 0..20 {
                let (_, bytes) = if i == 19 { &versions[2] } else { &versions[(i + 1) % 2] };
                write_in_pieces(&swap, bytes);
                std::thread::sleep(Duration::from_millis(if i % 3 == 0 { 500 } else { 120 }));
            }
        })
    };
    let mut seen = std::collections::BTreeSet::new();
    while !writer.is_finished() {
        let answer = ask(&mut bot, &mut input);
        let version = [A, B, C].into_iter().find(|v| answer_of(v, &answer));
        assert!(version.is_some(), "an answer from no version: {answer:?}");
        seen.insert(version.unwrap_or_default());
    }
    writer.join().unwrap();
    assert!(seen.contains(B), "no swap took effect while messages streamed: {seen:?}");

    // After the last swap, the new version and only it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !answer_of(C, &ask(&mut bot, &mut input)) {
        assert!(Instant::now() < deadline, "the last version never answered");
    }
    for _ in 0..20 {
        let answer = ask(&mut bot, &mut input);
        assert!(answer_of(C, &answer), "an old version answered after the last swap: {answer:?}");
    }
    bot.finish();
}

#[test]
fn refuses_a_broken_wasm_and_another_world_and_keeps_the_old_version() {
    // No watcher: `!reload` alone does it. One slot for messages, which
    // `!reload` itself holds while the new versions are described.
    let (setup, swap) = setup_with("watch = false\nmax_concurrency = 1\n");
    let mut bot = setup.spawn();
    let mut input = 0;
    assert!(answer_of(A, &ask(&mut bot, &mut input)));

    let attempts: [(&str, Vec<u8>, &str); 2] = [
        ("broken", b"\0asm this is not a component".to_vec(), "is not a sandbot command"),
        ("another world", std::fs::read(guests_dir().join("otherworld.wasm")).unwrap(), "is not a sandbot command"),
    ];
    for (what, bytes, why) in attempts {
        write_in_pieces(&swap, &bytes);
        // `!reload` rather than waiting for the watcher: the same reload,
        // and it says what it did.
        bot.send(&say("!reload"));
        let out = bot.read_until_done(input);
        input += 1;
        let reply = out.iter().find(|v| v["type"] == "message").map(|v| v["content"].to_string()).unwrap_or_default();
        assert!(reply.contains("refused swap") && reply.contains(why), "{what}: {out:#?}");
        assert!(answer_of(A, &ask(&mut bot, &mut input)), "{what} replaced the working version");
    }

    // A grant taken away applies even while the new wasm is refused.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let fewer = text.replace("grants = [\"chat.send-message\", \"voice.leave\", \"commands.list\"]", "grants = []");
    std::fs::write(&setup.config, &fewer).unwrap();
    bot.send(&say("!reload"));
    let out = bot.read_until_done(input);
    input += 1;
    assert!(out.iter().any(|v| v["content"].as_str().is_some_and(|c| c.contains("refused swap"))), "{out:#?}");
    bot.send(&say("!swap"));
    let out = bot.read_until_done(input);
    input += 1;
    assert!(
        out.iter().any(|v| v["content"].as_str().is_some_and(|c| c.starts_with("This command is not allowed"))),
        "{out:#?}"
    );
    std::fs::write(&setup.config, &text).unwrap();

    // A good version goes live.
    write_in_pieces(&swap, &std::fs::read(guests_dir().join(B)).unwrap());
    bot.send(&say("!reload"));
    let out = bot.read_until_done(input);
    input += 1;
    let reply = out.iter().find(|v| v["type"] == "message").map(|v| v["content"].to_string()).unwrap_or_default();
    assert!(reply.contains("loaded swap"), "{out:#?}");
    assert!(answer_of(B, &ask(&mut bot, &mut input)));
    bot.finish();
}

#[test]
fn a_new_command_and_a_changed_grant_apply_to_the_next_message() {
    let (setup, _swap) = setup();
    let mut bot = setup.spawn();
    bot.send(&say("!echo hello"));
    let out = bot.read_until_done(0);
    assert!(
        out.iter().any(|v| v["content"].as_str().is_some_and(|c| c.starts_with("Unknown command `!echo`"))),
        "{out:#?}"
    );

    // The wasm and the config entry arrive; the watcher picks them up.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replace("[commands.help]", "[commands.echo]\nwasm = \"hi.wasm\"\ngrants = []\n\n[commands.help]");
    std::fs::write(&setup.config, &text).unwrap();
    let mut input = 1;
    // Loaded, but without the grant its send is denied.
    wait_for(&mut bot, &mut input, "!echo hello", |out| {
        out.iter().any(|v| v["content"].as_str().is_some_and(|c| c.starts_with("This command is not allowed")))
    });

    // The operator sees the mismatch in `!commands`.
    bot.send(&say("!commands"));
    let out = bot.read_until_done(input);
    input += 1;
    let listing = out.iter().find_map(|v| v["content"].as_str()).unwrap_or_default();
    let echo = listing.lines().find(|l| l.starts_with("`!echo`")).unwrap_or_default();
    assert!(echo.ends_with("needs chat.send-message, not granted"), "{listing}");

    std::fs::write(&setup.config, text.replace("grants = []", "grants = [\"chat.send-message\"]")).unwrap();
    wait_for(&mut bot, &mut input, "!echo hello", |out| {
        out.iter().any(|v| v["content"].as_str().is_some_and(|c| c.starts_with("HI, ")))
    });
    bot.finish();
}

/// A `.wasm` renamed into place is complete: it answers on the next
/// messages although writes in place must be quiet for a minute here.
#[test]
fn a_wasm_renamed_into_place_is_loaded_at_once() {
    let (setup, swap) = setup_with("quiet_ms = 60000");
    let mut bot = setup.spawn();
    let mut input = 0;
    assert!(answer_of(A, &ask(&mut bot, &mut input)));
    let staged = setup.path(".swap.wasm.part");
    std::fs::copy(guests_dir().join(B), &staged).unwrap();
    std::fs::rename(&staged, &swap).unwrap();
    // Given up after 30 s, half the quiet period.
    wait_for_within(&mut bot, &mut input, "!swap", Duration::from_secs(30), |out| {
        out.iter().any(|v| v["content"].as_str().is_some_and(|c| answer_of(B, c)))
    });
    bot.finish();
}

#[test]
fn a_guests_folder_made_again_is_watched_again() {
    // The bot's own guests folder, so it can be deleted.
    let setup = Setup::new("");
    let guests = setup.path("guests");
    let copy_guests = |hi_from: &str| {
        std::fs::create_dir_all(&guests).unwrap();
        for entry in std::fs::read_dir(guests_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wasm") {
                std::fs::copy(&path, guests.join(path.file_name().unwrap())).unwrap();
            }
        }
        std::fs::copy(guests_dir().join(hi_from), guests.join(A)).unwrap();
    };
    copy_guests(A);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replace(
        &format!("guests_dir = {:?}", guests_dir().display().to_string()),
        &format!("guests_dir = {:?}", guests.display().to_string()),
    );
    std::fs::write(&setup.config, text).unwrap();
    let mut bot = setup.spawn();
    let mut input = 0;
    wait_for(&mut bot, &mut input, "!hi", |out| {
        out.iter().any(|v| v["content"].as_str().is_some_and(|c| c.starts_with("HI, ")))
    });

    // Deleted and deployed again, with another `hi`: `leave`'s code,
    // which asks for `voice.leave`, a grant `hi` does not have.
    std::fs::remove_dir_all(&guests).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    copy_guests(B);
    wait_for(&mut bot, &mut input, "!hi", |out| {
        out.iter().any(|v| {
            v["content"]
                .as_str()
                .is_some_and(|c| c.starts_with("This command is not allowed") && c.contains("voice.leave"))
        })
    });
    // That much a reload for the files deleted would have done; a change
    // in the new folder shows it is watched.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::copy(guests_dir().join(A), guests.join(A)).unwrap();
    wait_for(&mut bot, &mut input, "!hi", |out| {
        out.iter().any(|v| v["content"].as_str().is_some_and(|c| c.starts_with("HI, ")))
    });
    bot.finish();
}

/// Sends `line` until its output satisfies `done` (the watcher's reload
/// lands between two messages); at most a minute.
fn wait_for(bot: &mut Bot, input: &mut u64, line: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    wait_for_within(bot, input, line, Duration::from_secs(60), done)
}

fn wait_for_within(
    bot: &mut Bot,
    input: &mut u64,
    line: &str,
    within: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        bot.send(&say(line));
        let out = bot.read_until_done(*input);
        *input += 1;
        if done(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "the change never applied; last output: {out:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One console session with logs at info; (stdout, stderr).
fn session(setup: &Setup, lines: &[Value]) -> (String, String) {
    let mut child = Command::new(BIN)
        .args(["console", "--jsonl", "--config"])
        .arg(&setup.config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sandbot");
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_second_start_loads_from_the_cache() {
    let (setup, _swap) = setup();
    let (_, first) = session(&setup, &[say("!hi")]);
    let loaded = |log: &str, source: &str| {
        log.lines().filter(|l| l.contains(" loaded ") && l.contains(&format!("source=\"{source}\""))).count()
    };
    assert!(loaded(&first, "compiled") > 10, "{first}");
    // `swap` has `hi`'s bytes: compiled once, for `hi`.
    assert_eq!(loaded(&first, "cache"), 1, "{first}");
    assert!(
        first.contains("command=swap")
            && first.lines().any(|l| l.contains("command=swap") && l.contains("source=\"cache\"")),
        "{first}"
    );

    let (out, second) = session(&setup, &[say("!hi"), say("!commands")]);
    assert_eq!(loaded(&second, "compiled"), 0, "{second}");
    assert!(loaded(&second, "cache") > 10, "{second}");
    assert!(out.contains("HI, "), "{out}");
    assert!(out.contains("(from the cache)") && !out.contains("(compiled)"), "{out}");

    // A cached file someone else wrote (or that was damaged) is not run:
    // compiled again instead.
    let cache = setup.path("cache");
    for entry in std::fs::read_dir(&cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let (out, third) = session(&setup, &[say("!hi")]);
    assert!(third.contains("did not write"), "{third}");
    // Only `swap` comes from the cache: `hi`, compiled afresh, replaced
    // the damaged file just before.
    assert_eq!(loaded(&third, "cache"), 1, "{third}");
    assert!(out.contains("HI, "), "{out}");
}
