//! The console as a script drives it: the real binary, the real guests,
//! JSON lines in and out. One test per behaviour a user can see.

mod support;

use serde_json::json;
use support::{http_get, replies, reply, say, Setup};

#[test]
fn every_input_line_ends_with_done_in_order() {
    let setup = Setup::new("");
    let out = setup.run(&[say("!hi"), say("no default handler here: plain text is ignored"), say("!hi")]);
    let kinds: Vec<(String, u64)> =
        out.iter().map(|v| (v["type"].as_str().unwrap().to_string(), v["input"].as_u64().unwrap())).collect();
    assert_eq!(
        kinds,
        [("message".into(), 0), ("done".into(), 0), ("done".into(), 1), ("message".into(), 2), ("done".into(), 2)]
    );
    assert_eq!(out[0]["channel"], "console");
    assert!(out[0]["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(out[0]["files"], json!([]));
}

#[test]
fn hi_greets_the_author() {
    let setup = Setup::new("");
    let out = setup.run(&[say("!hi"), json!({"content": "!HI", "author": "Ann", "author_id": "7"})]);
    assert_eq!(reply(&out, 0), "HI, you!");
    assert_eq!(reply(&out, 1), "HI, Ann!");
}

#[test]
fn bad_json_gets_an_error_line_and_the_console_goes_on() {
    let setup = Setup::new("");
    let mut bot = setup.spawn();
    bot.send_raw("{not json");
    bot.send_raw(r#"{"author": "no content"}"#);
    bot.send(&say("!hi"));
    let out = bot.finish();
    assert_eq!(out[0]["type"], "error");
    assert_eq!(out[0]["input"], 0);
    assert!(out[0]["message"].as_str().unwrap().contains("not a valid input line"));
    assert_eq!(out[1], json!({"type": "done", "input": 0}));
    assert_eq!(out[2]["type"], "error");
    assert!(out[2]["message"].as_str().unwrap().contains("content"));
    assert_eq!(reply(&out, 2), "HI, you!");
}

#[test]
fn unknown_command_points_to_help() {
    let setup = Setup::new("");
    let out = setup.run(&[say("!frobnicate now")]);
    assert_eq!(reply(&out, 0), "Unknown command `!frobnicate`. Try `!help`.");
}

#[test]
fn help_lists_commands_and_explains_one() {
    let setup = Setup::new("");
    let out =
        setup.run(&[say("!help"), say("!help correct"), say("!help !getfile"), say("!help nope"), say("!help a b")]);
    let list = reply(&out, 0);
    for name in ["!correct", "!feedback", "!getfile", "!help", "!hi", "!instruction"] {
        assert!(list.contains(&format!("`{name}`")), "{name} missing from {list}");
    }
    assert!(list.contains("(operators only)"), "{list}");
    let correct = reply(&out, 1);
    assert!(correct.starts_with("`!correct <message id> <correction…>`"), "{correct}");
    assert!(reply(&out, 2).contains("Only operators may run it."));
    assert_eq!(reply(&out, 3), "There is no command `!nope`. Try `!help`.");
    assert_eq!(reply(&out, 4), "Usage: `!help [command]`");
}

#[test]
fn instruction_sends_the_whole_guide_in_pieces_under_2000_characters() {
    let setup = Setup::new("");
    let out = setup.run(&[say("!instruction")]);
    let pieces = replies(&out, 0);
    let guide = std::fs::read_to_string(support::workspace().join("bot_instruction.md")).unwrap();
    assert!(guide.chars().count() > 2000, "the guide should need splitting for this test to mean something");
    assert!(pieces.len() >= 2, "{pieces:?}");
    assert!(pieces.iter().all(|p| p.chars().count() <= 2000));
    let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(words(&pieces.join("\n")), words(&guide));
    // It covers every command of the spec.
    for command in [
        "!hi",
        "!join",
        "!leave",
        "!train",
        "!test",
        "!archive",
        "!select_dataset",
        "!instruction",
        "!correct",
        "!feedback",
        "!getfile",
        "!help",
    ] {
        assert!(guide.contains(command), "the guide does not mention {command}");
    }
}

#[test]
fn feedback_is_stored_with_who_where_and_when() {
    let setup = Setup::new("");
    let out = setup.run(&[
        json!({"content": "!feedback  the bot is great ", "author": "Ann", "author_id": "7", "channel": "general", "guild": "g1"}),
        say("!feedback"),
    ]);
    assert_eq!(reply(&out, 0), "Thank you for your feedback!");
    assert_eq!(reply(&out, 1), "Usage: `!feedback <text…>`");
    let rows = setup.export("feedback");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["text"], "the bot is great");
    assert_eq!(row["author_id"], "7");
    assert_eq!(row["author_name"], "Ann");
    assert_eq!(row["channel"], "general");
    assert_eq!(row["guild"], "g1");
    assert!(row["message_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(row["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
}

#[test]
fn correct_accepts_only_the_bots_own_messages_in_this_channel() {
    let setup = Setup::new("");
    let mut bot = setup.spawn();
    bot.send(&say("!hi"));
    let out = bot.read_until_done(0);
    let user_message_id = "1"; // the console numbers the first input 1
    let bot_message_id = out[0]["id"].as_str().unwrap().to_string();

    bot.send(&say(&format!("!correct {bot_message_id} Hello, human.")));
    bot.send(&say(&format!("!correct {user_message_id} not mine")));
    bot.send(&json!({"content": format!("!correct {bot_message_id} elsewhere"), "channel": "other"}));
    bot.send(&say("!correct 999999 nothing here"));
    bot.send(&say("!correct ../../etc x"));
    bot.send(&say(&format!("!correct {bot_message_id}")));
    let out = bot.finish();
    assert_eq!(reply(&out, 1), "Thanks, I stored your correction.");
    for n in 2..=5 {
        assert_eq!(reply(&out, n), "Message not found.", "input {n}");
    }
    assert_eq!(reply(&out, 6), "Usage: `!correct <message id> <correction…>`");

    let rows = setup.export("corrections");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["corrected_message_id"], bot_message_id.as_str());
    assert_eq!(rows[0]["original"], "HI, you!");
    assert_eq!(rows[0]["correction"], "Hello, human.");
    assert_eq!(rows[0]["author_id"], "1");
}

#[test]
fn getfile_sends_a_shared_file_and_refuses_everything_else() {
    let setup = Setup::new("");
    #[cfg(unix)]
    std::os::unix::fs::symlink(setup.path("data/secret.txt"), setup.path("data/shared/escape")).unwrap();
    std::fs::write(setup.path("data/shared/big.bin"), vec![0u8; 2 << 20]).unwrap();
    let secret = setup.path("data/secret.txt").display().to_string();
    let out = setup.run(&[
        say("!getfile hello.txt"),
        say("!getfile \"docs/notes.md\""),
        say("!getfile ../secret.txt"),
        say("!getfile ../../etc/passwd"),
        say(&format!("!getfile {secret}")),
        say("!getfile escape"),
        say("!getfile nope.txt"),
        say("!getfile docs"),
        say("!getfile big.bin"),
        say("!getfile"),
        json!({"content": "!getfile hello.txt", "author_id": "2"}),
        json!({"content": "!getfile hello.txt", "author_id": "42"}),
        json!({"content": "!getfile hello.txt", "author_id": "3", "roles": ["ops"]}),
    ]);
    let sent = out.iter().find(|v| v["type"] == "message" && v["input"] == 0).unwrap();
    assert_eq!(sent["files"][0]["name"], "hello.txt");
    assert_eq!(sent["files"][0]["bytes"], 29);
    let path = sent["files"][0]["path"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(path).unwrap(), "hello from the shared folder\n");
    let notes = out.iter().find(|v| v["type"] == "message" && v["input"] == 1).unwrap();
    assert_eq!(notes["files"][0]["name"], "notes.md");

    for n in 2..=5 {
        let text = reply(&out, n);
        assert!(text.contains("leaves the folder"), "input {n}: {text}");
    }
    assert_eq!(reply(&out, 6), "There is no file `nope.txt` in the shared folder.");
    assert!(reply(&out, 7).contains("is a folder"));
    assert!(reply(&out, 8).contains("too large"), "{}", reply(&out, 8));
    assert_eq!(reply(&out, 9), "Usage: `!getfile <path>`");
    assert_eq!(reply(&out, 10), "Sorry, `!getfile` is for operators only.");
    assert_eq!(replies(&out, 11).len(), 1);
    assert!(!reply(&out, 11).contains("Sorry"), "operator by id");
    assert!(!reply(&out, 12).contains("Sorry"), "operator by role");
    // Nothing anywhere carries the secret.
    assert!(!out.iter().any(|v| v.to_string().contains("do-not-leak")));
}

#[test]
fn bots_are_ignored() {
    let setup = Setup::new("");
    let out = setup.run(&[json!({"content": "!hi", "bot": true, "author_id": "99"}), say("!hi")]);
    assert!(replies(&out, 0).is_empty());
    assert_eq!(out[0], json!({"type": "done", "input": 0}));
    assert_eq!(reply(&out, 1), "HI, you!");
}

#[test]
fn rate_limit_answers_politely_and_spares_operators() {
    let setup = Setup::new("");
    let config =
        std::fs::read_to_string(&setup.config).unwrap().replace("messages = 0", "messages = 2\nper_seconds = 3600");
    std::fs::write(&setup.config, config).unwrap();
    let stranger = json!({"content": "!hi", "author_id": "5", "author": "Bo"});
    let unknown = json!({"content": "!zz", "author_id": "5", "author": "Bo"});
    let out = setup.run(&[stranger.clone(), stranger.clone(), stranger, unknown, say("!hi"), say("!hi"), say("!hi")]);
    assert_eq!(reply(&out, 0), "HI, Bo!");
    assert_eq!(reply(&out, 1), "HI, Bo!");
    assert_eq!(reply(&out, 2), "You are sending messages too fast; please wait a few seconds.");
    // Told once per window; even an unknown command gets no reply now.
    assert!(replies(&out, 3).is_empty());
    for n in 4..7 {
        assert_eq!(reply(&out, n), "HI, you!");
    }
}

#[test]
fn attachments_are_listed_and_missing_ones_refused() {
    let setup = Setup::new("");
    let missing = setup.path("nope.txt").display().to_string();
    let out = setup.run(&[json!({"content": "!hi", "attachments": [missing]}), say("!hi")]);
    assert_eq!(out[0]["type"], "error");
    assert!(out[0]["message"].as_str().unwrap().contains("nope.txt"));
    assert_eq!(reply(&out, 1), "HI, you!");
}

#[test]
fn a_bad_config_names_the_key_and_the_bot_does_not_start() {
    let setup = Setup::new("[commands.oops]\nwasm = \"hi.wasm\"\ngrants = [\"chat.send-mesage\"]\n");
    let out = std::process::Command::new(support::BIN)
        .args(["console", "--jsonl", "--config"])
        .arg(&setup.config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sandbot.toml: `commands.oops.grants`: unknown grant `chat.send-mesage`"), "{stderr}");
    assert!(out.stdout.is_empty());

    let setup = Setup::new("[commands.ghost]\nwasm = \"ghost.wasm\"\n");
    let out = std::process::Command::new(support::BIN)
        .args(["console", "--jsonl", "--config"])
        .arg(&setup.config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`commands.ghost.wasm`") && stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn a_component_for_another_world_is_refused_at_load() {
    // A plain WASI command, not a sandbot command: copy any non-component file.
    let setup = Setup::new("[commands.fake]\nwasm = \"fake.wasm\"\n");
    let guests = support::guests_dir();
    let config = std::fs::read_to_string(&setup.config).unwrap();
    let dir = setup.path("guests");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&guests).unwrap() {
        let entry = entry.unwrap();
        if entry.path().extension().is_some_and(|e| e == "wasm") {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(dir.join("fake.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let config = config.replace(&format!("{:?}", guests.display().to_string()), "\"guests\"");
    std::fs::write(&setup.config, config).unwrap();
    let out = std::process::Command::new(support::BIN)
        .args(["console", "--jsonl", "--config"])
        .arg(&setup.config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`commands.fake.wasm`") && stderr.contains("is not a sandbot command"), "{stderr}");
}

/// The reply is sent only after the row is committed: killing the bot the
/// moment the reply appears loses nothing.
#[test]
fn corrections_and_feedback_survive_kill_9_right_after_the_reply() {
    let setup = Setup::new("");
    let mut bot = setup.spawn();
    bot.send(&say("!hi"));
    let out = bot.read_until_done(0);
    let bot_message_id = out[0]["id"].as_str().unwrap().to_string();
    bot.send(&say("!feedback remember me"));
    let out = bot.read_until_done(1);
    assert_eq!(reply(&out, 1), "Thank you for your feedback!");
    bot.send(&say(&format!("!correct {bot_message_id} Hello!")));
    // Read only up to the reply itself, then kill at once.
    let mut line = String::new();
    loop {
        line.clear();
        std::io::BufRead::read_line(bot.stdout_mut(), &mut line).unwrap();
        if line.contains("\"type\":\"message\"") {
            break;
        }
    }
    assert!(line.contains("Thanks, I stored your correction."), "{line}");
    bot.child.kill().unwrap(); // SIGKILL
    bot.child.wait().unwrap();

    let feedback = setup.export("feedback");
    assert_eq!(feedback.len(), 1);
    assert_eq!(feedback[0]["text"], "remember me");
    let corrections = setup.export("corrections");
    assert_eq!(corrections.len(), 1);
    assert_eq!(corrections[0]["correction"], "Hello!");
}

#[test]
fn join_and_leave_follow_the_author() {
    let setup = Setup::new("");
    let out = setup.run(&[
        json!({"content": "!join"}),
        json!({"content": "!join", "voice_channel": "General"}),
        json!({"content": "!join", "voice_channel": "General"}),
        json!({"content": "!leave"}),
        json!({"content": "!leave"}),
        json!({"content": "!join", "voice_channel": "General", "guild": null}),
    ]);
    assert_eq!(reply(&out, 0), "You are not in a voice channel.");
    assert_eq!(reply(&out, 1), "Joined General.");
    assert!(out.iter().any(|v| v["type"] == "voice_join" && v["input"] == 1 && v["channel"] == "General"));
    assert_eq!(reply(&out, 2), "I am already in General.");
    assert_eq!(out.iter().filter(|v| v["type"] == "voice_join").count(), 1, "{out:#?}");
    assert_eq!(reply(&out, 3), "Left the voice channel.");
    assert!(out.iter().any(|v| v["type"] == "voice_leave" && v["input"] == 3));
    assert_eq!(reply(&out, 4), "I am not in a voice channel.");
    assert_eq!(reply(&out, 5), "I cannot join: voice channels exist only in servers.");
}

/// Issue 17: `/metrics` is Prometheus's text format, and its counts move
/// with what the bot was sent.
#[test]
fn metrics_count_invocations_failures_and_refusals() {
    use prometheus_parse::{Scrape, Value};
    let port = support::free_port();
    let setup = Setup::new(&format!("[health]\nlisten = \"127.0.0.1:{port}\"\n"));
    let mut bot = setup.spawn();
    let inputs = ["!hi", "!HI", "!frobnicate", "!correct 999999 nothing here"];
    for (n, text) in inputs.iter().enumerate() {
        bot.send(&say(text));
        bot.read_until_done(n as u64);
    }
    let (status, text) = http_get(port, "/metrics");
    assert_eq!(status, 200);
    let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).expect("Prometheus text");
    let value = |metric: &str, labels: &[(&str, &str)]| -> Option<f64> {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))?;
        match &sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).reduce(f64::max),
            Value::Summary(_) => None,
        }
    };
    let handled = [("command", "hi"), ("outcome", "handled")];
    assert_eq!(value("sandbot_invocations_total", &handled), Some(2.0), "{text}");
    assert_eq!(value("sandbot_invocation_seconds", &[("command", "hi")]), Some(2.0), "{text}");
    assert_eq!(value("sandbot_refusals_total", &[("reason", "unknown")]), Some(1.0), "{text}");
    let failed = [("command", "correct"), ("cause", "error_reply")];
    assert_eq!(value("sandbot_failures_total", &failed), Some(1.0), "{text}");
    assert_eq!(value("sandbot_pool_slots_in_use", &[]), Some(0.0), "{text}");
    // Seconds, not milliseconds: two `!hi` take well under one.
    let sum: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix(r#"sandbot_invocation_seconds_sum{command="hi"} "#))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no sum for hi: {text}"));
    assert!(sum > 0.0 && sum < 1.0, "{sum}");
    // A name a user typed never becomes a label.
    assert!(!text.contains("frobnicate"), "{text}");

    bot.send(&say("!hi"));
    bot.read_until_done(4);
    let (_, text) = http_get(port, "/metrics");
    assert!(text.contains(r#"sandbot_invocations_total{command="hi",outcome="handled"} 3"#), "{text}");
    bot.finish();
}

/// A user's bad input, a deliberate error reply, a command that gave up
/// and one stopped by the host are told apart (`sandbot:bot@0.2.2`'s
/// `failure`), and `!commands` counts each. A component built for 0.2.1
/// (kept as built in `tests/fixtures/sandbot-bot-0.2.1/`) still loads; its
/// errors count as replies, since it cannot say more.
#[test]
fn outcomes_are_counted_apart() {
    let old = support::workspace().join("tests/fixtures/sandbot-bot-0.2.1/correct.wasm");
    let setup = Setup::new(&format!(
        "[commands.oldcorrect]\nwasm = {:?}\ngrants = [\"chat.send-message\", \"chat.fetch-message\", \"store.log-correction\"]\n\n\
         [commands.sneak]\nwasm = \"hostile.wasm\"\ngrants = [\"chat.send-message\"]\n\n\
         [commands.loop]\nwasm = \"hostile.wasm\"\ngrants = [\"chat.send-message\"]\nlimits = {{ deadline_ms = 200 }}\n",
        old.display().to_string()
    ));
    let out = setup.run(&[
        say("!correct"),
        say("!correct 999 better words"),
        say("!oldcorrect"),
        say("!sneak"),
        say("!loop"),
        say("!hi"),
        json!({"content": "!commands", "author_id": "42"}),
    ]);
    assert!(reply(&out, 0).starts_with("Usage: `!correct"), "{}", reply(&out, 0));
    assert_eq!(reply(&out, 1), "Message not found.");
    assert!(reply(&out, 2).starts_with("Usage: `!correct"), "{}", reply(&out, 2));
    assert!(reply(&out, 3).starts_with("This command is not allowed to do that"), "{}", reply(&out, 3));
    let listing = replies(&out, 6).join("\n");
    let line = |name: &str| {
        let start = format!("`!{name}` ");
        listing.lines().find(|l| l.starts_with(&start)).unwrap_or_else(|| panic!("no {name}: {listing}")).to_string()
    };
    let counted = |name: &str, counts: &str| {
        let line = line(name);
        assert!(line.contains(counts), "{name}: {line}");
    };
    counted("correct", "answered 0, usage errors 1, error replies 1, failed 0, stopped 0");
    counted("oldcorrect", "answered 0, usage errors 0, error replies 1, failed 0, stopped 0");
    counted("sneak", "answered 0, usage errors 0, error replies 0, failed 1, stopped 0");
    counted("loop", "answered 0, usage errors 0, error replies 0, failed 0, stopped 1");
    counted("hi", "answered 1, usage errors 0, error replies 0, failed 0, stopped 0");
    assert!(!line("train").contains("answered"), "an unused command shows no counts: {listing}");
}
