//! Commands written in Python (componentize-py) and JavaScript
//! (componentize-js), built by `scripts/build-other-guests.sh` against the
//! same WIT: they answer through the console, and get exactly the sandbox
//! a Rust command gets (grants, deadline, memory limit, hot swap).

mod support;

use std::time::{Duration, Instant};

use support::{guests_dir, replies, reply, say, Setup};

const POLYGLOT: &str = r#"
[commands.pycount]
wasm = "pycount.wasm"
grants = ["chat.send-message"]

[commands.jscount]
wasm = "jscount.wasm"
grants = ["chat.send-message"]

[commands.py]
wasm = "pyhostile.wasm"
grants = ["chat.send-message"]
limits = { deadline_ms = 2000 }

[commands.js]
wasm = "jshostile.wasm"
grants = ["chat.send-message"]
limits = { deadline_ms = 2000 }
"#;

#[test]
fn python_and_javascript_commands_answer_like_rust_ones() {
    let setup = Setup::new(POLYGLOT);
    let out = setup.run(&[
        say("!pycount The cat and the hat, and THE bat."),
        say("!jscount The cat and the hat, and THE bat."),
        say("!pycount"),
        say("!jscount"),
        say("!py hi"),
        say("!js hi"),
        say("!hi"),
    ]);
    let counted = "8 words; the most common is “the” (3×).";
    assert_eq!(reply(&out, 0), counted);
    assert_eq!(reply(&out, 1), counted);
    assert_eq!(reply(&out, 2), "Give me some text to count.\nUsage: `!pycount <text…>`");
    assert_eq!(reply(&out, 3), "Give me some text to count.\nUsage: `!jscount <text…>`");
    assert_eq!(reply(&out, 4), "hi from Python, you");
    assert_eq!(reply(&out, 5), "hi from JavaScript, you");
    assert_eq!(reply(&out, 6), "HI, you!");
}

#[test]
fn python_and_javascript_commands_are_denied_what_they_are_not_granted() {
    let setup = Setup::new(POLYGLOT);
    let out = setup.run(&[say("!py sneak"), say("!js sneak")]);
    let python = reply(&out, 0);
    assert!(python.starts_with("refused: ") && python.contains("Denied"), "{python}");
    assert_eq!(reply(&out, 1), "refused: denied");
}

#[test]
fn python_and_javascript_commands_are_stopped_at_their_deadline() {
    let setup = Setup::new(POLYGLOT);
    let out = setup.run(&[say("!py loop"), say("!js loop"), say("!py hi")]);
    assert_eq!(replies(&out, 0), ["`!py` took too long and was stopped."]);
    assert_eq!(replies(&out, 1), ["`!js` took too long and was stopped."]);
    assert_eq!(reply(&out, 2), "hi from Python, you", "the bot keeps serving");
}

#[test]
fn python_and_javascript_commands_are_stopped_at_their_memory_limit() {
    let setup = Setup::new(POLYGLOT);
    let out = setup.run(&[say("!py alloc"), say("!js alloc"), say("!js hi")]);
    assert_eq!(replies(&out, 0), ["`!py` ran out of memory and was stopped."]);
    // SpiderMonkey handles the refused `memory.grow` (−1, as WebAssembly
    // says) and throws "out of memory", which `handle` returns as its error.
    assert_eq!(replies(&out, 1), ["out of memory"]);
    assert_eq!(reply(&out, 2), "hi from JavaScript, you");
}

/// A Python command replaced by a JavaScript one and back, under the same
/// name, while the bot runs: each message gets one or the other.
#[test]
fn python_and_javascript_commands_hot_swap() {
    let setup =
        Setup::new("[commands.swap]\nwasm = \"SWAP\"\ngrants = [\"chat.send-message\"]\n\n[sandbox]\nquiet_ms = 50\n");
    let swap = setup.path("swap.wasm");
    let text = std::fs::read_to_string(&setup.config).unwrap().replace("SWAP", &swap.display().to_string());
    std::fs::write(&setup.config, text).unwrap();
    std::fs::copy(guests_dir().join("pyhostile.wasm"), &swap).unwrap();
    let mut bot = setup.spawn();
    let mut input = 0;
    let mut ask = |bot: &mut support::Bot| {
        bot.send(&say("!swap hi"));
        let out = bot.read_until_done(input);
        input += 1;
        replies(&out, input - 1).join("\n")
    };
    assert_eq!(ask(&mut bot), "hi from Python, you");
    for (file, answer) in [("jshostile.wasm", "hi from JavaScript, you"), ("pyhostile.wasm", "hi from Python, you")] {
        // Renamed into place, as a deploy does: loaded at once.
        let staged = setup.path("staged.wasm");
        std::fs::copy(guests_dir().join(file), &staged).unwrap();
        std::fs::rename(&staged, &swap).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let said = ask(&mut bot);
            if said == answer {
                break;
            }
            assert!(said.starts_with("hi from "), "a message failed during the swap: {said}");
            assert!(Instant::now() < deadline, "{file} never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    bot.finish();
}
