//! The real `sandbot run` binary, the real guests and serenity, against the
//! fake Discord of `support/fake_discord.rs` on 127.0.0.1.

mod support;

use std::process::{Child, Stdio};

use serde_json::json;
use support::fake_discord::{
    self, message, FakeDiscord, Posted, ADMIN_ROLE, BOT_ID, FORBIDDEN_CHANNEL, RENAMED_ROLE, TEXT_CHANNEL,
};
use support::{free_port, Setup, EDIT_AND_WHISPER, SLOW};

/// GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT | GUILD_VOICE_STATES.
const EXPECTED_INTENTS: u64 = (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15) | (1 << 7);

/// The bot process; killed when dropped, its log printed if the test failed
/// (or `SANDBOT_TEST_LOG` is set).
struct Bot {
    child: Child,
    log: std::path::PathBuf,
}

impl Bot {
    fn start(setup: &Setup, fake: &FakeDiscord) -> Bot {
        Bot::start_with(setup, fake, &[])
    }

    fn start_with(setup: &Setup, fake: &FakeDiscord, args: &[&str]) -> Bot {
        let log = setup.path("bot.log");
        let child = setup
            .discord_command(&fake.api_base(), "fake-token", args)
            .env("RUST_LOG", "info,sandbot=debug,serenity=warn,wasmtime=warn,cranelift=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start sandbot");
        Bot { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a log line that holds every one of `parts`.
    fn wait_log(&self, parts: &[&str]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if self.log().lines().any(|line| parts.iter().all(|p| line.contains(p))) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "no log line with {parts:?}:\n{}", self.log());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn assert_running(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the bot exited:\n{}", self.log());
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || std::env::var_os("SANDBOT_TEST_LOG").is_some() {
            eprintln!("--- bot log ---\n{}", self.log());
        }
    }
}

fn connected() -> (Setup, FakeDiscord, Bot) {
    let setup = Setup::new("");
    let fake = FakeDiscord::start();
    let bot = Bot::start(&setup, &fake);
    fake.wait_identified(1);
    (setup, fake, bot)
}

#[test]
fn fake_payloads_are_what_serenity_reads() {
    serde_json::from_value::<serenity::all::Guild>(fake_discord::guild_create()).expect("GUILD_CREATE");
    let data = message("5", "hi").with_role(ADMIN_ROLE).attach("1", "a.txt", "http://x/a", 3).build("1");
    serde_json::from_value::<serenity::all::Message>(data).expect("MESSAGE_CREATE");
    let options = json!([{"name": "file", "type": 11, "value": "77"}, {"name": "examples", "type": 3, "value": "x"}]);
    let resolved = json!({"attachments": {"77": attachment_json("77", "a.jsonl", "http://x/a", 3)}});
    let interaction = fake_discord::interaction("1", "t", "5", "train", options, resolved);
    match serde_json::from_value::<serenity::all::Interaction>(interaction).expect("INTERACTION_CREATE") {
        serenity::all::Interaction::Command(command) => {
            assert_eq!(command.data.options.len(), 2);
            assert_eq!(command.user.id.get(), 5);
            assert_eq!(command.data.resolved.attachments.len(), 1);
        }
        other => panic!("not a command: {other:?}"),
    }
}

fn attachment_json(id: &str, filename: &str, url: &str, size: u64) -> serde_json::Value {
    json!({"id": id, "filename": filename, "size": size, "url": url, "proxy_url": url, "content_type": "text/plain"})
}

#[test]
fn identifies_and_answers_hi_without_pinging_anyone() {
    let (_setup, fake, mut bot) = connected();
    let identify = fake.wait_identified(1);
    // serenity sends the token as it sends it in REST headers.
    let token = identify["token"].as_str().unwrap_or_default();
    assert_eq!(token.trim_start_matches("Bot "), "fake-token");
    assert_eq!(identify["intents"], EXPECTED_INTENTS, "{identify}");

    fake.say(message("5", "!hi"));
    let posts = fake.wait_posts(1);
    let post = &posts[0];
    assert_eq!(post.channel, TEXT_CHANNEL);
    assert_eq!(post.content, "HI, user5!");
    assert_eq!(post.allowed_mentions["parse"], json!([]), "guest text must not ping: {post:?}");
    bot.assert_running();
}

#[test]
fn answers_direct_messages_and_ignores_bots_and_system_messages() {
    let (_setup, fake, bot) = connected();
    let own = fake.say(message(BOT_ID, "!hi").by_a_bot()); // its own echo
    let other = fake.say(message("66", "!hi").by_a_bot());
    let joined = fake.say(message("5", "!hi").kind(7)); // "user5 joined the server"
    bot.wait_log(&[&format!("id={own}"), "ignored: the bot's own message"]);
    bot.wait_log(&[&format!("id={other}"), "ignored: the author is a bot"]);
    bot.wait_log(&[&format!("id={joined}"), "ignored: a system message"]);
    fake.say(message("5", "!hi").direct("555"));
    let posts = fake.wait_posts(1);
    assert_eq!(posts[0].channel, "555", "{posts:?}");
    assert_eq!(fake.posts().len(), 1, "an ignored message was answered: {:?}", fake.posts());
}

#[test]
fn answers_other_bots_when_configured_but_never_itself() {
    let setup = Setup::with_top("ignore_bots = false", "");
    let fake = FakeDiscord::start();
    let bot = Bot::start(&setup, &fake);
    fake.wait_identified(1);
    let own = fake.say(message(BOT_ID, "!hi").by_a_bot());
    bot.wait_log(&[&format!("id={own}"), "ignored: the bot's own message"]);
    fake.say(message("66", "!hi").by_a_bot());
    let posts = fake.wait_posts(1);
    assert_eq!(posts[0].content, "HI, user66!");
    assert_eq!(fake.posts().len(), 1, "{:?}", fake.posts());
}

#[test]
fn downloads_attachments_within_the_limit_only() {
    let (_setup, fake, bot) = connected();
    let data = std::fs::read(support::workspace().join("tests/data/qa.jsonl")).unwrap();
    let size = data.len() as u64;
    let url = fake.serve_file("qa.jsonl", data);
    fake.say(message("42", "!train").attach("11", "qa.jsonl", &url, size));
    let posts = fake.wait_posts(1);
    assert!(posts[0].content.contains("30"), "trained on the 30 examples: {posts:?}");
    assert_eq!(fake.downloads("qa.jsonl"), 1);

    // Stated over the limit (8 MiB by default): refused before any download.
    let big = vec![b'x'; 9 << 20];
    let url = fake.serve_file("big.jsonl", big.clone());
    let before = fake.posts().len();
    fake.say(message("42", "!train").attach("12", "big.jsonl", &url, big.len() as u64));
    // The first job's report ("Training job … succeeded") may come between.
    let refused = |p: &Posted| p.content.contains("limit") || p.content.contains("large");
    fake.wait_post_after(before, "the big file refused", refused);
    assert_eq!(fake.downloads("big.jsonl"), 0, "a file over the limit was downloaded");

    // Stated small, served big with no length up front: cut off while reading.
    let url = fake.serve_streamed("liar.jsonl", big);
    let before = fake.posts().len();
    fake.say(message("42", "!train").attach("13", "liar.jsonl", &url, 100));
    fake.wait_post_after(before, "the lying file refused", refused);
    assert_eq!(fake.downloads("liar.jsonl"), 1);
    bot.wait_log(&["attachment=13", "could not download an attachment", "over the limit"]);
}

#[test]
fn splits_long_answers_and_uploads_files() {
    let (_setup, fake, _bot) = connected();
    fake.say(message("5", "!instruction"));
    let posts = fake.wait_posts(2);
    let guide = std::fs::read_to_string(support::workspace().join("bot_instruction.md")).unwrap();
    assert!(posts.iter().all(|p| p.content.chars().count() <= 2000), "{posts:?}");
    let joined: String = posts.iter().map(|p| p.content.as_str()).collect::<Vec<_>>().join("\n");
    assert_eq!(joined.split_whitespace().collect::<Vec<_>>(), guide.split_whitespace().collect::<Vec<_>>());

    // Operators by role id: user 77 is not one until it has the operators'
    // role; another role renamed `admin` does not make it one.
    fake.say(message("77", "!getfile hello.txt"));
    let posts = fake.wait_posts(3);
    assert!(posts[2].content.contains("operators only"), "{:?}", posts[2]);
    fake.say(message("77", "!getfile hello.txt").with_role(RENAMED_ROLE));
    let posts = fake.wait_posts(4);
    assert!(posts[3].content.contains("operators only"), "{:?}", posts[3]);
    fake.say(message("77", "!getfile hello.txt").with_role(ADMIN_ROLE));
    let posts = fake.wait_posts(5);
    let post = &posts[4];
    assert!(post.multipart, "{post:?}");
    assert_eq!(post.files, vec![("hello.txt".to_string(), b"hello from the shared folder\n".to_vec())]);
}

#[test]
fn corrects_an_answer_it_fetches_back() {
    let (setup, fake, _bot) = connected();
    fake.say(message("5", "!hi"));
    let answer = fake.wait_posts(1).remove(0);
    fake.say(message("5", &format!("!correct {} Hello there, friend.", answer.id)));
    let posts = fake.wait_posts(2);
    assert!(posts[1].content.to_lowercase().contains("thank"), "{posts:?}");
    let corrections = setup.export("corrections");
    assert_eq!(corrections.len(), 1, "{corrections:?}");
    assert_eq!(corrections[0]["correction"], "Hello there, friend.");

    fake.say(message("5", "!correct 123456 nothing there"));
    let posts = fake.wait_posts(3);
    assert_eq!(posts[2].content, "Message not found.");
}

#[test]
fn survives_bad_events_refusals_and_a_dropped_gateway() {
    let (_setup, fake, mut bot) = connected();
    // A MESSAGE_CREATE that is not one, then one Discord refuses to post in.
    fake.dispatch("MESSAGE_CREATE", json!({"id": "not a snowflake", "content": 7}));
    fake.say(message("5", "!hi").in_channel(FORBIDDEN_CHANNEL));
    fake.say(message("5", "!hi"));
    let posts = fake.wait_posts(1);
    assert_eq!(posts[0].channel, TEXT_CHANNEL);
    bot.assert_running();
    assert_eq!(fake.connections(), 1, "a bad event cost the connection");

    fake.drop_gateway();
    fake.wait_sessions(2);
    assert_eq!(fake.connections(), 2);
    fake.say(message("5", "!hi"));
    let posts = fake.wait_posts(2);
    assert_eq!(posts[1].channel, TEXT_CHANNEL);
    bot.assert_running();
    bot.wait_log(&["channel=703", "Discord did not take a message", "Missing Permissions"]);
    bot.wait_log(&["skipped an event this bot cannot read", "not a snowflake"]);
}

#[test]
fn runs_the_shards_it_is_given() {
    let setup = Setup::new("[discord]\nshards = \"1/4\"\n");
    let fake = FakeDiscord::start();
    let _bot = Bot::start(&setup, &fake);
    assert_eq!(fake.wait_identified(1)["shard"], json!([1, 4]));

    // The flag wins over the config; both shards identify in turn.
    let setup = Setup::new("[discord]\nshards = \"1/4\"\n");
    let fake = FakeDiscord::start();
    let _bot = Bot::start_with(&setup, &fake, &["--shards", "2-3/4"]);
    let shards: Vec<_> = (1..=2).map(|n| fake.wait_identified(n)["shard"].clone()).collect();
    assert_eq!(shards, vec![json!([2, 4]), json!([3, 4])]);
    fake.say(message("5", "!hi"));
    assert_eq!(fake.wait_posts(1)[0].content, "HI, user5!");

    // `auto`: as many as Discord recommends (the fake says one).
    let setup = Setup::new("");
    let fake = FakeDiscord::start();
    let _bot = Bot::start_with(&setup, &fake, &["--shards", "auto"]);
    assert_eq!(fake.wait_identified(1)["shard"], json!([0, 1]));
}

#[test]
fn a_bad_api_base_stops_the_bot_with_the_key() {
    let setup = Setup::new("");
    let out = setup.discord_command("127.0.0.1:8080", "fake-token", &[]).output().expect("run sandbot");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`discord.api_base`"), "{stderr}");
}

#[test]
fn a_refused_token_ends_the_bot_with_a_clear_reason() {
    let setup = Setup::new("");
    let fake = FakeDiscord::start();
    let out = setup.discord_command(&fake.api_base(), "bad-token", &[]).output().expect("run sandbot");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Discord refused the token"), "{stderr}");
    assert!(!stderr.contains("bad-token"), "the token reached the log: {stderr}");
}

/// `!join` as far as a loopback allows: the voice state update goes out on
/// the gateway, songbird takes Discord's VOICE_STATE_UPDATE and
/// VOICE_SERVER_UPDATE and dials the endpoint it was given. Discord's voice
/// websocket itself (wss with DAVE encryption) cannot be faked, so the
/// connection fails there; the bot says so and leaves the channel.
#[test]
fn joins_through_the_gateway_and_says_when_voice_cannot_connect() {
    let (_setup, fake, _bot) = connected();
    fake.say(message("42", "!join"));
    fake.say(message("42", "!leave"));
    let posts = fake.wait_posts(2);
    let mut texts: Vec<&str> = posts.iter().map(|p| p.content.as_str()).collect();
    texts.sort();
    assert_eq!(texts, ["I am not in a voice channel.", "You are not in a voice channel."]);
    assert!(fake.voice_updates().is_empty(), "nothing to join, yet: {:?}", fake.voice_updates());

    // User 51 is in the voice channel.
    fake.say(message("51", "!join"));
    let join = fake.wait_voice_updates(1).remove(0);
    assert_eq!(fake_discord::snowflake(&join["guild_id"]), fake_discord::GUILD_ID);
    assert_eq!(fake_discord::snowflake(&join["channel_id"]), fake_discord::VOICE_CHANNEL);
    fake.wait_voice_handshake();
    let posts = fake.wait_posts(3);
    let answer = &posts[2].content;
    assert!(answer.starts_with("I cannot join: cannot connect to the voice channel"), "{answer}");
    let updates = fake.wait_voice_updates(2);
    assert!(updates[1]["channel_id"].is_null(), "the bot stayed half-joined: {updates:?}");
}

/// The chat guest speaks to an author in voice; when the voice connection
/// fails, the answer is written instead of lost.
#[test]
fn a_spoken_answer_that_cannot_be_played_is_written() {
    let setup = Setup::chatty("");
    let fake = FakeDiscord::start();
    let _bot = Bot::start(&setup, &fake);
    fake.wait_identified(1);
    fake.say(message("42", "!train What is the capital of France? | Paris is the capital of France."));
    let trained = fake.wait_posts(2);
    assert!(trained[1].content.contains("succeeded"), "{trained:?}");
    fake.say(message("51", "What is the capital of France?"));
    let updates = fake.wait_voice_updates(2);
    assert_eq!(fake_discord::snowflake(&updates[0]["channel_id"]), fake_discord::VOICE_CHANNEL);
    assert!(updates[1]["channel_id"].is_null(), "the bot stayed half-joined: {updates:?}");
    let posts = fake.wait_posts(3);
    assert_eq!(posts[2].channel, TEXT_CHANNEL);
    assert_eq!(posts[2].content, "Paris is the capital of France.");
}

#[test]
fn edits_its_own_answers_and_answers_privately_in_direct_messages() {
    let setup = Setup::new(support::EDIT_AND_WHISPER);
    let fake = FakeDiscord::start();
    let _bot = Bot::start(&setup, &fake);
    fake.wait_identified(1);
    // Someone else's message: the guest may not rewrite it.
    let theirs = fake.say(message("5", "!hi"));
    fake.say(message("5", &format!("!edit {theirs}")));
    let edits = fake.wait_edits(1);
    let posts = fake.wait_posts(3);
    let working = posts.iter().find(|p| p.content == "working…").expect("working…");
    assert_eq!(edits, [(working.id.clone(), "done".to_string())]);
    // The two commands run side by side: their answers come in any order.
    assert!(posts.iter().any(|p| p.content == "not mine to edit"), "{posts:?}");

    fake.say(message("5", "!whisper"));
    let posts = fake.wait_posts(4);
    assert_eq!(posts[3].content, "only for you, user5");
    assert_eq!(posts[3].channel, fake_discord::direct_channel("5"), "a private answer goes to the author's DMs");
}

/// The names of a registered command set.
fn names(set: &serde_json::Value) -> Vec<String> {
    set.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn registers_the_slash_commands_the_guests_describe_and_again_only_when_they_change() {
    let setup = Setup::new("[discord]\ncommand_guilds = [\"800\"]\n");
    let fake = FakeDiscord::start();
    let bot = Bot::start(&setup, &fake);
    let first = fake.wait_registrations(1);
    assert_eq!(first[0].0, "800", "registered in the configured server");
    let set = &first[0].1;
    let mut expected: Vec<String> = [
        "archive",
        "chat",
        "commands",
        "correct",
        "feedback",
        "getfile",
        "help",
        "hi",
        "instruction",
        "join",
        "leave",
        "reload",
        "select_dataset",
        "test",
        "train",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expected.sort();
    assert_eq!(names(set), expected);
    let getfile = set.as_array().unwrap().iter().find(|c| c["name"] == "getfile").unwrap();
    assert_eq!(getfile["description"], "Sends a file from the shared folder.");
    assert_eq!(
        getfile["options"],
        json!([{"type": 3, "name": "path", "description": "The file, in the shared folder", "required": true}])
    );
    // `/help command` offers every command as a choice.
    assert_eq!(help_choices(set), expected);
    let select = set.as_array().unwrap().iter().find(|c| c["name"] == "select_dataset").unwrap();
    assert_eq!(
        select["options"][1]["choices"],
        json!([{"name": "positive", "value": "positive"}, {"name": "negative", "value": "negative"}])
    );

    // A reload that changes nothing registers nothing …
    fake.say(message("42", "!reload"));
    fake.wait_posts(1);
    // … and one that adds a command registers the new set.
    let mut config = std::fs::read_to_string(&setup.config).unwrap();
    config.push_str("\n[commands.hello]\nwasm = \"hi.wasm\"\ngrants = [\"chat.send-message\"]\n");
    std::fs::write(&setup.config, config).unwrap();
    let all = fake.wait_registrations(2);
    assert_eq!(all.len(), 2, "the unchanged reload registered again: {all:?}");
    assert!(names(&all[1].1).contains(&"hello".to_string()), "{:?}", names(&all[1].1));
    // `/help` was not swapped, yet its choices follow the commands.
    assert!(help_choices(&all[1].1).contains(&"hello".to_string()), "{:?}", help_choices(&all[1].1));
    assert_eq!(help_choices(&all[1].1), names(&all[1].1));
    bot.wait_log(&["registered the slash commands", "commands=16"]);
}

/// The choices of `/help`'s `command` option in a registered set.
fn help_choices(set: &serde_json::Value) -> Vec<String> {
    let help = set.as_array().unwrap().iter().find(|c| c["name"] == "help").expect("/help");
    let choices = help["options"][0]["choices"].as_array().cloned().unwrap_or_default();
    choices.iter().map(|c| c["value"].as_str().unwrap().to_string()).collect()
}

#[test]
fn answers_slash_commands_through_the_interaction() {
    let setup = Setup::new(SLOW);
    let fake = FakeDiscord::start();
    let _bot = Bot::start(&setup, &fake);
    fake.wait_identified(1);

    // A quick answer is the interaction's response itself.
    let hi = fake.interact("5", "hi", json!([]), json!({}));
    let answered = fake.wait_answered(&hi, 1);
    assert_eq!(answered[0].kind, "response");
    assert_eq!(answered[0].content, "HI, user5!");
    assert!(!answered[0].ephemeral);

    // Options that do not fit: a private reason.
    let bad = fake.interact("42", "getfile", json!([]), json!({}));
    let answered = fake.wait_answered(&bad, 1);
    assert_eq!((answered[0].kind.as_str(), answered[0].ephemeral), ("response", true));
    assert_eq!(answered[0].content, "`/getfile`: `path` is required.");

    // An operators-only command, from someone else: private too.
    let refused = fake.interact("5", "archive", json!([{"name": "folder", "type": 3, "value": "shared"}]), json!({}));
    let answered = fake.wait_answered(&refused, 1);
    assert!(answered[0].ephemeral && answered[0].content.contains("operators only"), "{answered:?}");

    // A file, as a typed option.
    let file = fake.interact("42", "getfile", json!([{"name": "path", "type": 3, "value": "hello.txt"}]), json!({}));
    let answered = fake.wait_answered(&file, 1);
    assert_eq!(answered[0].files[0].0, "hello.txt");

    // A command slower than Discord's 3 seconds is deferred, and its answer
    // replaces the "thinking…".
    let slow = fake.interact("5", "slow", json!([]), json!({}));
    let answered = fake.wait_answered(&slow, 2);
    assert_eq!(answered[0].kind, "defer");
    assert_eq!((answered[1].kind.as_str(), answered[1].content.as_str()), ("edit_original", "awake after 3 s"));

    // An attachment option trains like an attached file.
    let url =
        fake.serve_file("facts.jsonl", b"{\"input\": \"what is the password\", \"output\": \"swordfish\"}\n".to_vec());
    let options = json!([{"name": "file", "type": 11, "value": "77"}]);
    let resolved = json!({"attachments": {"77": attachment_json("77", "facts.jsonl", &url, 58)}});
    let train = fake.interact("42", "train", options, resolved);
    let answered = fake.wait_answered(&train, 1);
    assert!(answered[0].content.starts_with("Model training started."), "{answered:?}");
    assert_eq!(fake.downloads("facts.jsonl"), 1);
}

/// `[discord]` for an interactions endpoint on `port`, checked against
/// the fake Discord's key.
fn endpoint_config(port: u16, gateway: bool) -> String {
    format!(
        "\n[discord]\ninteractions_listen = \"127.0.0.1:{port}\"\npublic_key = \"{}\"\ngateway = {gateway}\n",
        fake_discord::public_key_hex()
    )
}

#[test]
fn answers_signed_interactions_over_http_and_refuses_the_rest() {
    let port = free_port();
    let setup = Setup::new(&format!("{EDIT_AND_WHISPER}{SLOW}{}", endpoint_config(port, true)));
    let fake = FakeDiscord::start();
    let bot = Bot::start(&setup, &fake);
    fake.wait_identified(1);
    bot.wait_log(&["answering slash commands by HTTP"]);
    let url = format!("http://127.0.0.1:{port}/interactions");
    let key = fake_discord::signing_key();
    let now = fake_discord::unix_now;

    // Discord checks the endpoint with a PING when it is saved.
    let ping = json!({"id": "1", "application_id": BOT_ID, "type": 1, "token": "ping", "version": 1});
    let (status, pong) = fake.post_signed(&url, &key, now(), &ping);
    assert_eq!((status, pong["type"].as_u64()), (200, Some(1)), "{pong}");

    // The answer is the HTTP response itself.
    let (_, status, body) = fake.interact_over_http(&url, &key, now(), "5", "hi", json!([]), json!({}));
    assert_eq!(status, 200);
    assert_eq!((body["type"].as_u64(), body["data"]["content"].as_str()), (Some(4), Some("HI, user5!")), "{body}");

    // "working…" in the response, then edited to "done"; a follow-up after.
    let (edit, _, body) = fake.interact_over_http(&url, &key, now(), "5", "edit", json!([]), json!({}));
    assert_eq!(body["data"]["content"], "working…");
    let answered = fake.wait_answered(&edit, 3);
    assert_eq!((answered[1].kind.as_str(), answered[1].content.as_str()), ("edit_original", "done"));
    assert_eq!((answered[2].kind.as_str(), answered[2].content.as_str()), ("followup", "not mine to edit"));

    // A private answer is ephemeral in the response.
    let (_, _, body) = fake.interact_over_http(&url, &key, now(), "5", "whisper", json!([]), json!({}));
    assert_eq!(body["data"]["flags"].as_u64().map(|f| f & 64), Some(64), "{body}");
    assert_eq!(body["data"]["content"], "only for you, user5");

    // Slower than Discord's 3 seconds: deferred, then the answer replaces it.
    let (slow, _, body) = fake.interact_over_http(&url, &key, now(), "5", "slow", json!([]), json!({}));
    assert_eq!(body["type"].as_u64(), Some(5));
    let answered = fake.wait_answered(&slow, 2);
    assert_eq!((answered[1].kind.as_str(), answered[1].content.as_str()), ("edit_original", "awake after 3 s"));

    // A file cannot ride in the body: deferred, then attached.
    let path = json!([{"name": "path", "type": 3, "value": "hello.txt"}]);
    let (file, _, body) = fake.interact_over_http(&url, &key, now(), "42", "getfile", path, json!({}));
    assert_eq!(body["type"].as_u64(), Some(5));
    let answered = fake.wait_answered(&file, 2);
    assert_eq!(answered[1].files[0].0, "hello.txt");

    // Signed by someone else, or long ago, or sent twice: 401, and nothing runs.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let (forged, status, _) = fake.interact_over_http(&url, &stranger, now(), "5", "hi", json!([]), json!({}));
    assert_eq!(status, 401);
    let (stale, status, _) = fake.interact_over_http(&url, &key, now() - 600, "5", "hi", json!([]), json!({}));
    assert_eq!(status, 401);
    let replayed = fake_discord::interaction("77", "token-replayed", "5", "hi", json!([]), json!({}));
    assert_eq!(fake.post_signed(&url, &key, now(), &replayed).0, 200);
    assert_eq!(fake.post_signed(&url, &key, now(), &replayed).0, 401);
    bot.wait_log(&["refused an interaction sent twice"]);
    // A command that is answered after them shows they were not queued.
    let (last, _, body) = fake.interact_over_http(&url, &key, now(), "5", "hi", json!([]), json!({}));
    assert_eq!(body["data"]["content"], "HI, user5!", "{last}");
    let ran = || bot.log().lines().filter(|l| l.contains("handled command=\"hi\"")).count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ran() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for token in [forged, stale] {
        assert!(fake.answered(&token).is_empty(), "{token} was answered");
    }
    assert_eq!(ran(), 3, "only the signed, fresh, first-time /hi ran:\n{}", bot.log());
}

#[test]
fn a_replica_without_the_gateway_registers_and_answers_by_http() {
    let port = free_port();
    let setup = Setup::new(&endpoint_config(port, false));
    let fake = FakeDiscord::start();
    let bot = Bot::start(&setup, &fake);
    bot.wait_log(&["answering slash commands by HTTP"]);
    // It registers the commands without a READY to learn its application.
    let registered = fake.wait_registrations(1);
    assert!(names(&registered[0].1).contains(&"hi".to_string()));
    let url = format!("http://127.0.0.1:{port}/");
    let key = fake_discord::signing_key();
    let (_, status, body) =
        fake.interact_over_http(&url, &key, fake_discord::unix_now(), "5", "hi", json!([]), json!({}));
    assert_eq!((status, body["data"]["content"].as_str()), (200, Some("HI, user5!")), "{body}");
    // Voice goes through the gateway: a clear answer, not a hang.
    let (join, _, body) =
        fake.interact_over_http(&url, &key, fake_discord::unix_now(), "5", "join", json!([]), json!({}));
    assert!(body["data"]["content"].as_str().unwrap_or_default().contains("gateway"), "{join}: {body}");
    assert_eq!(fake.connections(), 0, "a replica without the gateway connected to it");
}

#[test]
fn shows_typing_while_a_slow_command_has_not_answered_and_not_for_hi() {
    let setup = Setup::new(SLOW);
    let fake = FakeDiscord::start();
    let _bot = Bot::start(&setup, &fake);
    fake.wait_identified(1);
    fake.say(message("5", "!hi"));
    fake.wait_posts(1);
    let asked = std::time::Instant::now();
    fake.say(message("5", "!slow 1"));
    let posts = fake.wait_posts(2);
    assert_eq!(posts[1].content, "awake after 1 s");
    let typing = fake.typing();
    assert_eq!(typing.len(), 1, "one typing indicator, for the slow command only: {typing:?}");
    assert_eq!(typing[0].0, TEXT_CHANNEL);
    assert!(asked < typing[0].1 && typing[0].1 < posts[1].at, "typing came after the answer");
}

#[test]
fn help_offers_choices_once_it_is_granted_the_command_list() {
    let setup = Setup::new("[discord]\ncommand_guilds = [\"800\"]\n");
    let granted = std::fs::read_to_string(&setup.config).unwrap();
    let denied = granted.replace(
        "wasm = \"help.wasm\"\ngrants = [\"chat.send-message\", \"commands.list\"]",
        "wasm = \"help.wasm\"\ngrants = [\"chat.send-message\"]",
    );
    assert_ne!(granted, denied, "the test's config changed shape");
    std::fs::write(&setup.config, &denied).unwrap();
    let fake = FakeDiscord::start();
    let _bot = Bot::start(&setup, &fake);
    let first = fake.wait_registrations(1);
    assert!(help_choices(&first[0].1).is_empty(), "choices without the grant: {:?}", help_choices(&first[0].1));
    // Only the config changes: the same help.wasm describes itself again.
    std::fs::write(&setup.config, &granted).unwrap();
    let second = fake.wait_registrations(2);
    assert_eq!(help_choices(&second[1].1), names(&second[1].1));
}

/// A command that spins to its deadline, many users starting it at once.
const SPINNER: &str = r#"
[commands.loop]
wasm = "hostile.wasm"
grants = ["chat.send-message"]
limits = { deadline_ms = 1500, concurrency = 2 }
"#;

/// Noisy neighbours: ten users start a command that spins for 1.5 s. Two
/// run at a time (its share); the others wait for a place without holding
/// the pool, and those still waiting at their deadline are told it is
/// busy. Another user's `!hi` is answered first. How fast: the `fairness`
/// bench.
#[test]
fn a_spinning_command_holds_only_its_share_and_hi_still_answers() {
    let setup = Setup::new(SPINNER);
    let fake = FakeDiscord::start();
    let _bot = Bot::start(&setup, &fake);
    fake.wait_identified(1);
    for user in 10..20 {
        fake.say(message(&user.to_string(), "!loop"));
    }
    fake.say(message("99", "!hi"));
    let posts = fake.wait_posts(11);
    assert_eq!(posts[0].content, "HI, user99!", "{posts:?}");
    let stopped = posts.iter().filter(|p| p.content.contains("took too long")).count();
    let busy = posts.iter().filter(|p| p.content == "`loop` is busy right now; try again in a moment.").count();
    assert_eq!(stopped + busy, 10, "{posts:?}");
    // At most two ran in each deadline's time: the first two, and the two
    // that found a place as they ended (those waited, then ran 1.5 s).
    assert!((2..=4).contains(&stopped), "{stopped} ran: {posts:?}");
}
