//! Typed options and slash commands (`sandbot:bot@0.2.0`), driven through
//! the console as a script would: `{"slash": "getfile", "options": {…}}`.
//! And the promise of a public contract: components built for 0.1.0 (kept
//! as built, in `tests/fixtures/sandbot-bot-0.1.0/`) still load and answer,
//! as `!name` and as `/name`.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};
use support::{replies, reply, say, workspace, Setup, BIN};

fn fixture(name: &str) -> PathBuf {
    workspace().join("tests/fixtures/sandbot-bot-0.1.0").join(name)
}

fn slash(name: &str, options: Value) -> Value {
    json!({"slash": name, "options": options})
}

/// The messages sent for input `n`, with whether each was private.
fn sent(out: &[Value], n: u64) -> Vec<(String, bool)> {
    out.iter()
        .filter(|v| v["type"] == "message" && v["input"] == n)
        .map(|v| (v["content"].as_str().unwrap_or_default().to_string(), v["private"] == true))
        .collect()
}

#[test]
fn slash_commands_answer_like_prefix_commands() {
    let setup = Setup::new("");
    let out = setup.run(&[
        slash("hi", json!({})),
        slash("getfile", json!({"path": "hello.txt"})),
        say("!getfile hello.txt"),
        slash("help", json!({"command": "getfile"})),
        say("!help getfile"),
    ]);
    assert_eq!(reply(&out, 0), "HI, you!");
    for n in [1, 2] {
        let file = out.iter().find(|v| v["type"] == "message" && v["input"] == n).expect("a file");
        assert_eq!(file["files"][0]["name"], "hello.txt", "input {n}");
        assert!(file.get("private").is_none(), "a plain answer is public: {file}");
    }
    assert_eq!(reply(&out, 3), reply(&out, 4));
}

#[test]
fn options_that_do_not_fit_get_a_private_reason() {
    let setup = Setup::new("");
    let out = setup.run(&[
        slash("getfile", json!({})),
        slash("getfile", json!({"path": "hello.txt", "colour": "red"})),
        slash("select_dataset", json!({"folder": "texts", "label": "neutral"})),
        slash("getfile", json!({"path": 7})),
        slash("frobnicate", json!({})),
        json!({"slash": "archive", "options": {"folder": "shared"}, "author_id": "9"}),
        slash("help", json!({"command": "frobnicate"})),
    ]);
    assert_eq!(sent(&out, 0), [("`/getfile`: `path` is required.".to_string(), true)]);
    assert_eq!(sent(&out, 1), [("`/getfile`: this command has no option `colour`.".to_string(), true)]);
    assert_eq!(sent(&out, 2), [("`/select_dataset`: `label` is one of: positive, negative.".to_string(), true)]);
    assert_eq!(sent(&out, 3), [("`/getfile`: `path` takes text.".to_string(), true)]);
    assert_eq!(sent(&out, 4), [("Unknown command `/frobnicate`. Try `!help`.".to_string(), true)]);
    assert_eq!(sent(&out, 5), [("Sorry, `/archive` is for operators only.".to_string(), true)]);
    // `/help`'s choices are the loaded commands.
    let (reason, private) = &sent(&out, 6)[0];
    assert!(reason.starts_with("`/help`: `command` is one of: archive, chat,") && *private, "{reason}");
}

#[test]
fn an_attachment_option_is_read_like_an_attached_file() {
    let setup = Setup::new("");
    let examples = setup.path("examples.jsonl");
    std::fs::write(&examples, "{\"input\": \"what is the password\", \"output\": \"swordfish\"}\n").unwrap();
    let out = setup.run(&[
        slash("train", json!({"file": examples.display().to_string()})),
        say("!test [{\"input\": \"what is the password\", \"expected\": \"swordfish\"}]"),
    ]);
    let training = replies(&out, 0);
    assert!(training[0].starts_with("Model training started."), "{training:?}");
    assert!(training[0].ends_with("(1 examples)"), "{training:?}");
    assert!(reply(&out, 1).starts_with("Accuracy: 1/1 (100%)"), "{}", reply(&out, 1));
}

#[test]
fn a_command_edits_only_its_own_messages_and_can_answer_privately() {
    let setup = Setup::new(support::EDIT_AND_WHISPER);
    let mut bot = setup.spawn();
    bot.send(&say("!hi"));
    let first = bot.read_until_done(0);
    let hi_id = first[0]["id"].as_str().unwrap().to_string();
    bot.send(&say(&format!("!edit {hi_id}")));
    bot.send(&slash("whisper", json!({})));
    bot.send(&say("!whisper"));
    let out = bot.finish();
    let edits: Vec<&Value> = out.iter().filter(|v| v["type"] == "edit").collect();
    assert_eq!(edits.len(), 1, "{out:#?}");
    let working = out.iter().find(|v| v["type"] == "message" && v["content"] == "working…").expect("working…");
    assert_eq!(edits[0]["id"], working["id"]);
    assert_eq!(edits[0]["content"], "done");
    assert!(replies(&out, 1).contains(&"not mine to edit".to_string()), "{out:#?}");
    assert_eq!(sent(&out, 2), [("only for you, you".to_string(), true)]);
    assert_eq!(sent(&out, 3), [("only for you, you".to_string(), true)]);
}

#[test]
fn components_built_for_0_1_0_still_load_and_answer() {
    let setup = Setup::new(&format!(
        r#"
[commands.oldhi]
wasm = {hi:?}
grants = ["chat.send-message"]

[commands.oldgetfile]
wasm = {getfile:?}
grants = ["chat.send-message", "files.read-file"]
read = ["shared"]

[commands.oldhelp]
wasm = {help:?}
grants = ["chat.send-message", "commands.list"]
"#,
        hi = fixture("hi.wasm").display().to_string(),
        getfile = fixture("getfile.wasm").display().to_string(),
        help = fixture("help.wasm").display().to_string(),
    ));
    let out = setup.run(&[
        say("!oldhi"),
        slash("oldhi", json!({})),
        say("!oldgetfile hello.txt"),
        slash("oldgetfile", json!({"args": "hello.txt"})),
        slash("oldgetfile", json!({"path": "hello.txt"})),
        say("!oldhelp getfile"),
    ]);
    assert_eq!(reply(&out, 0), "HI, you!");
    assert_eq!(reply(&out, 1), "HI, you!");
    for n in [2, 3] {
        let file = out.iter().find(|v| v["type"] == "message" && v["input"] == n).expect("a file");
        assert_eq!(file["files"][0]["name"], "hello.txt", "input {n}");
    }
    // A 0.1.0 command's one option is `args`.
    assert_eq!(sent(&out, 4), [("`/oldgetfile`: this command has no option `path`.".to_string(), true)]);
    // And the old `help` lists what the new commands describe.
    assert!(reply(&out, 5).contains("getfile <path>"), "{}", reply(&out, 5));
}

/// 0.2.1 only adds to 0.2.0, so a 0.2.0 component links against it as
/// is (`tests/model.rs` runs the 0.2.0 `chat` beside the streaming one).
#[test]
fn components_built_for_0_2_0_still_load_and_answer() {
    let hi = workspace().join("tests/fixtures/sandbot-bot-0.2.0/hi.wasm");
    let setup = Setup::new(&format!(
        "[commands.oldhi]\nwasm = {:?}\ngrants = [\"chat.send-message\"]\n",
        hi.display().to_string()
    ));
    let out = setup.run(&[say("!oldhi"), slash("oldhi", json!({}))]);
    assert_eq!(reply(&out, 0), "HI, you!");
    assert_eq!(reply(&out, 1), "HI, you!");
}

#[test]
fn check_names_the_contract_and_the_options() {
    let check = |wasm: PathBuf| {
        let out = Command::new(BIN).arg("check").arg(&wasm).env("RUST_LOG", "warn").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let old = check(fixture("getfile.wasm"));
    assert!(old.contains("contract: sandbot:bot@0.1.0\n"), "{old}");
    assert!(old.contains("options:  args (string): As in: getfile <path>\n"), "{old}");
    let new = check(support::guests_dir().join("correct.wasm"));
    assert!(new.contains("contract: sandbot:bot@0.2.2\n"), "{new}");
    let last = check(workspace().join("tests/fixtures/sandbot-bot-0.2.1/correct.wasm"));
    assert!(last.contains("contract: sandbot:bot@0.2.1\n"), "{last}");
    let before = check(workspace().join("tests/fixtures/sandbot-bot-0.2.0/hi.wasm"));
    assert!(before.contains("contract: sandbot:bot@0.2.0\n"), "{before}");
    assert!(
        new.contains(
            "options:  message-id (string, required): The id of the bot's message to correct\n          correction (string, required): What it should have said\n"
        ),
        "{new}"
    );
}
