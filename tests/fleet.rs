//! Several bot processes on one PostgreSQL store (issue 16): what one
//! process is taught, the others answer with; a dead process loses
//! nothing it committed; the database going away and coming back. Each
//! test starts its own throwaway PostgreSQL server.

mod support;

use std::time::{Duration, Instant};

use sandbot::services::store::throwaway::Throwaway;
use serde_json::{json, Value};
use support::{http_get, reply, say, Bot, Setup};

/// A bot whose records are in `url`, answering plain messages.
fn on(url: &str) -> Setup {
    Setup::chatty(&format!("[store]\nurl = {url:?}\n"))
}

fn database(name: &str) -> (Throwaway, String) {
    let pg = Throwaway::start().expect("a throwaway PostgreSQL server (scripts/setup-tests.sh installs one)");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let url = runtime.block_on(pg.create_database(name)).unwrap();
    (pg, url)
}

fn in_server(content: &str) -> Value {
    json!({ "content": content, "guild": "111", "channel": "general" })
}

/// Asks `question` (input `n` onwards) until the answer is `expected`,
/// for up to 20 s; returns the last input used and its output.
fn ask_until(bot: &mut Bot, n: &mut u64, question: &str, expected: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        bot.send(&in_server(question));
        let out = bot.read_until_done(*n);
        let answer = reply(&out, *n);
        *n += 1;
        if answer == expected {
            return out;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "still {answer:?} after 20 s; expected {expected:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn what_one_process_is_taught_the_other_answers_with() {
    let (_pg, url) = database("teach");
    let (a, b) = (on(&url), on(&url));
    let (mut one, mut two) = (a.spawn(), b.spawn());
    let (mut n_one, mut n_two) = (0, 0);

    // Before: neither knows.
    two.send(&in_server("who is in charge of the book club"));
    let out = two.read_until_done(n_two);
    assert!(reply(&out, n_two).starts_with("I don't know that yet."), "{}", reply(&out, n_two));
    n_two += 1;

    one.send(&in_server("!train Who runs the book club? | Mira runs the book club."));
    let out = one.read_until_done(n_one);
    n_one += 1;
    assert!(out.iter().any(|v| v["content"].as_str().is_some_and(|c| c.contains("succeeded"))), "{out:?}");
    // Trained on one, answered by the other, without a restart.
    let out = ask_until(&mut two, &mut n_two, "who is in charge of the book club", "Mira runs the book club.");

    // Corrected on the other, answered corrected by the first.
    let answer_id = out.iter().find(|v| v["type"] == "message").unwrap()["id"].as_str().unwrap().to_string();
    two.send(&in_server(&format!("!correct {answer_id} Mira and Joss run the book club together.")));
    let out = two.read_until_done(n_two);
    assert_eq!(reply(&out, n_two), "Thanks, I stored your correction.");
    ask_until(&mut one, &mut n_one, "who is in charge of the book club", "Mira and Joss run the book club together.");

    // Both see the same records.
    one.finish();
    two.finish();
    let (from_a, from_b) = (a.export("corrections"), b.export("corrections"));
    assert_eq!(from_a.len(), 1);
    assert_eq!(from_a, from_b);
}

/// A process killed mid-burst: the other keeps answering, and every
/// feedback the killed one confirmed is in the database.
#[test]
fn a_killed_process_loses_nothing_it_confirmed() {
    let (_pg, url) = database("kill");
    let (a, b) = (on(&url), on(&url));
    let (mut doomed, mut survivor) = (a.spawn(), b.spawn());
    let mut confirmed = Vec::new();
    for i in 0..30u64 {
        survivor.send(&say(&format!("!feedback other {i}")));
        doomed.send(&say(&format!("!feedback burst {i}")));
        // The last ten are in flight when the process dies.
        if i < 20 {
            let out = doomed.read_until_done(i);
            assert_eq!(reply(&out, i), "Thank you for your feedback!");
            confirmed.push(format!("burst {i}"));
        }
    }
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    let out = survivor.finish();
    assert_eq!(out.iter().filter(|v| v["content"] == "Thank you for your feedback!").count(), 30);
    let stored: Vec<String> =
        b.export("feedback").iter().map(|row| row["text"].as_str().unwrap().to_string()).collect();
    for text in &confirmed {
        assert!(stored.contains(text), "{text} was confirmed but is not stored");
    }
    assert_eq!(stored.iter().filter(|t| t.starts_with("other ")).count(), 30);
}

/// PostgreSQL stopped while the bot runs: a clear reply meanwhile, and
/// the bot answers again when it is back, without a restart.
#[test]
fn the_database_going_away_gets_a_clear_reply_and_the_bot_comes_back() {
    let (pg, url) = database("outage");
    let port = support::free_port();
    let setup = Setup::chatty(&format!("[store]\nurl = {url:?}\n\n[health]\nlisten = \"127.0.0.1:{port}\"\n"));
    let mut bot = setup.spawn();
    bot.send(&say("!feedback before"));
    assert_eq!(reply(&bot.read_until_done(0), 0), "Thank you for your feedback!");
    assert_eq!(http_get(port, "/healthz"), (200, "ok\n".into()));
    assert_eq!(http_get(port, "/readyz"), (200, "ready\n".into()));
    pg.stop().unwrap();
    let (status, why) = http_get(port, "/readyz");
    assert_eq!(status, 503, "{why}");
    assert!(why.starts_with("store: "), "{why}");
    assert_eq!(http_get(port, "/healthz").0, 200);
    bot.send(&say("!feedback during"));
    let during = reply(&bot.read_until_done(1), 1);
    assert!(during.contains("try again in a moment"), "{during}");
    // What needs no database still works.
    bot.send(&say("!hi"));
    assert_eq!(reply(&bot.read_until_done(2), 2), "HI, you!");
    pg.resume().unwrap();
    assert_eq!(http_get(port, "/readyz"), (200, "ready\n".into()));
    bot.send(&say("!feedback after"));
    assert_eq!(reply(&bot.read_until_done(3), 3), "Thank you for your feedback!");
    bot.finish();
    let stored: Vec<String> =
        setup.export("feedback").iter().map(|row| row["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(stored, ["before", "after"]);
}

/// `sandbot <args> --config <setup's>`: its stdout, or its stderr as Err.
fn sandbot(setup: &Setup, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(support::BIN)
        .args(args)
        .arg("--config")
        .arg(&setup.config)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run sandbot");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Says `!hi` until the answer is `expected` (20 s at most).
fn hi_until(bot: &mut Bot, n: &mut u64, expected: &str) {
    let started = Instant::now();
    loop {
        bot.send(&say("!hi"));
        let answer = reply(&bot.read_until_done(*n), *n);
        *n += 1;
        if answer == expected {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "still {answer:?} after 20 s; expected {expected:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_deploy_reaches_every_process_and_a_rollback_undoes_it() {
    let (_pg, url) = database("deploy");
    let (a, b) = (on(&url), on(&url));
    let (mut one, mut two) = (a.spawn(), b.spawn());
    let (mut n_one, mut n_two) = (0, 0);
    hi_until(&mut one, &mut n_one, "HI, you!");
    hi_until(&mut two, &mut n_two, "HI, you!");
    assert!(sandbot(&a, &["versions"]).unwrap().contains("nothing deployed"));

    // A component that does not fit is refused before it is stored.
    let other_world = support::guests_dir().join("otherworld.wasm");
    let refused = sandbot(&a, &["deploy", "hi", other_world.to_str().unwrap()]).unwrap_err();
    assert!(refused.contains("does not fit"), "{refused}");
    // An entry naming a root the config lacks, too.
    let leave = support::guests_dir().join("leave.wasm");
    let refused = sandbot(&a, &["deploy", "hi", leave.to_str().unwrap(), "--read", "nowhere"]).unwrap_err();
    assert!(refused.contains("no root `nowhere`"), "{refused}");

    // `hi` becomes the `leave` component, for both processes at once.
    let deployed = sandbot(
        &a,
        &["deploy", "hi", leave.to_str().unwrap(), "--grant", "chat.send-message", "--grant", "voice.leave"],
    )
    .unwrap();
    assert!(deployed.contains("deployed hi as #"), "{deployed}");
    one.send(&say("!leave"));
    let left = reply(&one.read_until_done(n_one), n_one);
    n_one += 1;
    hi_until(&mut one, &mut n_one, &left);
    hi_until(&mut two, &mut n_two, &left);
    let versions = sandbot(&b, &["versions"]).unwrap();
    assert!(versions.contains("current"), "{versions}");
    assert_eq!(versions.lines().count(), 1, "{versions}");

    // Rolled back: the config's `hi` answers again, everywhere.
    let rolled = sandbot(&b, &["rollback", "hi"]).unwrap();
    assert!(rolled.contains("the config's entry"), "{rolled}");
    hi_until(&mut one, &mut n_one, "HI, you!");
    hi_until(&mut two, &mut n_two, "HI, you!");
    assert!(sandbot(&a, &["versions"]).unwrap().contains("rolled back"));
    assert!(sandbot(&a, &["rollback", "hi"]).unwrap_err().contains("no deployment to roll back"));
    one.finish();
    two.finish();
}

/// Issue 16: two `sandbot run` processes, shards 0/2 and 1/2, on the fake
/// Discord (which routes each server's events to `(id >> 22) % 2`) and one
/// PostgreSQL. Started together, they identify in turns; what one shard is
/// taught and corrected, the other answers with (the correction sent the
/// moment the answer is seen); killed, one shard leaves the other answering.
#[test]
fn two_shards_in_two_processes_share_what_they_are_taught() {
    use support::fake_discord::{message, FakeDiscord};
    // Server ids on shard 0 and shard 1 of 2; both are the operators'
    // global servers, so what is taught in one answers in the other.
    const ON_0: &str = "8388608";
    const ON_1: &str = "4194304";
    let (_pg, url) = database("shards");
    let fake = FakeDiscord::start();
    let extra = format!("[store]\nurl = {url:?}\n\n[model]\nglobal_servers = [\"{ON_0}\", \"{ON_1}\"]\n");
    let (a, b) = (Setup::chatty(&extra), Setup::chatty(&extra));
    let start = |setup: &Setup, shard: &str| {
        Killed(
            setup
                .discord_command(&fake.api_base(), "fake-token", &["--shards", shard])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start sandbot"),
        )
    };
    let mut shard_0 = start(&a, "0/2");
    let shard_1 = start(&b, "1/2");
    fake.wait_identified(2);
    let mut shards: Vec<Value> = (1..=2).map(|n| fake.wait_identified(n)["shard"].clone()).collect();
    shards.sort_by_key(|s| s[0].as_u64());
    assert_eq!(shards, [json!([0, 2]), json!([1, 2])]);
    // Started together, they took turns through PostgreSQL: Discord allows
    // one IDENTIFY per 5 s here (max_concurrency 1).
    let identified = fake.identified_shards();
    let gap = identified[1].1.duration_since(identified[0].1);
    assert!(gap >= Duration::from_secs(5), "shards identified {gap:?} apart: {identified:?}");

    // Says `text` in `guild` until the bot's answer there is `expected`.
    let ask_until = |guild: &str, channel: &str, text: &str, expected: &str| -> String {
        let started = Instant::now();
        loop {
            let after = fake.post_count();
            fake.say(message("7", text).in_guild(guild).in_channel(channel));
            let posted = fake.wait_post_after(after, "an answer", |p| p.channel == channel);
            if posted.content == expected {
                return posted.id;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "still {:?}; expected {expected:?}", posted.content);
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Taught on shard 0, answered on shard 1.
    let after = fake.post_count();
    fake.say(
        message("42", "!train Who runs the book club? | Mira runs the book club.").in_guild(ON_0).in_channel("9000"),
    );
    fake.wait_post_after(after, "the training's result", |p| p.channel == "9000" && p.content.contains("succeeded"));
    let answer = ask_until(ON_1, "9001", "who is in charge of the book club", "Mira runs the book club.");
    // Corrected on shard 1, answered corrected on shard 0.
    let after = fake.post_count();
    fake.say(
        message("7", &format!("!correct {answer} Mira and Joss run the book club together."))
            .in_guild(ON_1)
            .in_channel("9001"),
    );
    let thanks = fake.wait_post_after(after, "the correction's reply", |p| p.channel == "9001");
    assert_eq!(thanks.content, "Thanks, I stored your correction.");
    ask_until(ON_0, "9002", "who is in charge of the book club", "Mira and Joss run the book club together.");

    // Shard 0's process killed: shard 1's servers are still answered, and
    // shard 0's are not (so each process did serve its own shard).
    shard_0.0.kill().unwrap();
    shard_0.0.wait().unwrap();
    fake.say(message("7", "!hi").in_guild(ON_0).in_channel("9004"));
    ask_until(ON_1, "9003", "!hi", "HI, user7!");
    std::thread::sleep(Duration::from_millis(500));
    assert!(fake.posts().iter().all(|p| p.channel != "9004"), "a message to shard 0 was answered after it died");
    drop(shard_1);
}

/// A bot process, killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
