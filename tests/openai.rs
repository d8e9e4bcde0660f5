//! The OpenAI-compatible provider against a fake server on 127.0.0.1:
//! answers, context, fine-tuning jobs, corrections, tests and failures.

mod support;

use serde_json::json;
use support::fake_openai::FakeOpenAi;
use support::{replies, reply, say, Setup};

fn setup(base_url: &str) -> Setup {
    Setup::with_top(
        "default_handler = \"chat\"",
        &format!(
            "[model]\nprovider = \"openai\"\nbase_url = \"{base_url}\"\napi_key = \"sk-test\"\nmodel = \"gpt-test\"\n\
             context_turns = 2\ntimeout_secs = 5\n"
        ),
    )
}

#[test]
fn answers_come_from_the_server_with_the_channel_as_context() {
    let (fake, base) = FakeOpenAi::start();
    let setup = setup(&base);
    let out = setup.run(&[say("hello there"), say("and again")]);
    assert_eq!(reply(&out, 0), "fake(gpt-test): hello there");
    assert_eq!(reply(&out, 1), "fake(gpt-test): and again");
    let chats = fake.chats();
    let second = chats[1]["messages"].as_array().unwrap();
    let roles: Vec<&str> = second.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert_eq!(second[1]["content"], "hello there");
}

#[test]
fn fine_tuning_jobs_run_to_the_end_and_then_answer() {
    let (fake, base) = FakeOpenAi::start();
    let setup = setup(&base);
    let file = support::workspace().join("tests/data/qa.jsonl").display().to_string();
    let out = setup.run(&[
        json!({"content": "!train", "attachments": [file]}),
        say("!train status ftjob-1"),
        say("!train status ftjob-1"),
        say("something nobody taught"),
    ]);
    // The bot polls the job once right after starting it (queued), then
    // every status read moves the fake job one step.
    assert_eq!(replies(&out, 0), ["Model training started. Job ID: ftjob-1 (30 examples)"]);
    assert!(reply(&out, 1).starts_with("Training job `ftjob-1` is running"), "{}", reply(&out, 1));
    assert_eq!(
        reply(&out, 2),
        "Training job `ftjob-1` is succeeded (30 examples): answers now come from ft:base:sandbot:ftjob-1."
    );
    assert_eq!(reply(&out, 3), "fake(ft:base:sandbot:ftjob-1): something nobody taught");
    let recorded = fake.recorded.lock().unwrap();
    let (purpose, content) = &recorded.files["file-1"];
    assert_eq!(purpose, "fine-tune");
    assert_eq!(content.lines().count(), 30);
}

#[test]
fn a_failed_job_says_why() {
    let (_fake, base) = FakeOpenAi::start();
    let setup = setup(&base);
    let out = setup.run(&[say("!train please FAIL | now"), say("!train status ftjob-1"), say("!train status ftjob-1")]);
    assert!(replies(&out, 0)[0].starts_with("Model training started. Job ID: ftjob-1"));
    assert_eq!(reply(&out, 2), "Training job `ftjob-1` is failed (1 examples): the training file asked to fail.");
}

#[test]
fn corrections_and_tests_work_through_the_server() {
    let (fake, base) = FakeOpenAi::start();
    let setup = setup(&base);
    let mut bot = setup.spawn();
    bot.send(&say("what is the capital of Australia?"));
    let out = bot.read_until_done(0);
    assert_eq!(reply(&out, 0), "fake(gpt-test): what is the capital of Australia?");
    let id = out[0]["id"].as_str().unwrap().to_string();
    bot.send(&say(&format!("!correct {id} Canberra is the capital of Australia.")));
    bot.send(&say("What's the capital of Australia?"));
    bot.send(&say(r#"!test [{"input": "capital of Australia", "expected": "Canberra is the capital of Australia."}, {"input": "colour of the sky", "expected": "blue"}]"#));
    let out = bot.finish();
    assert_eq!(reply(&out, 1), "Thanks, I stored your correction.");
    assert_eq!(reply(&out, 2), "Canberra is the capital of Australia.");
    let score = reply(&out, 3);
    assert!(score.starts_with("Accuracy: 1/2 (50%)"), "{score}");
    assert!(score.contains("got “fake(gpt-test): colour of the sky”"), "{score}");
    // The correction joins the next training file.
    let out = setup.run(&[say("!train a | b")]);
    assert!(replies(&out, 0)[0].contains("(2 examples)"), "{:?}", replies(&out, 0));
    let recorded = fake.recorded.lock().unwrap();
    assert!(recorded.files["file-1"].1.contains("Canberra is the capital of Australia."));
}

#[test]
fn server_errors_are_retried_and_failures_get_a_short_reply() {
    let (fake, base) = FakeOpenAi::start();
    let setup = setup(&base);
    let out = setup.run(&[say("a flaky question")]);
    assert_eq!(reply(&out, 0), "fake(gpt-test): a flaky question");
    assert_eq!(fake.recorded.lock().unwrap().flaky_failures, 2);

    // Nothing listens on port 9 of loopback.
    let setup = self::setup("http://127.0.0.1:9/v1");
    let out = setup.run(&[say("anyone there?"), say("!hi")]);
    assert_eq!(reply(&out, 0), "Something went wrong: the model failed.");
    assert_eq!(reply(&out, 1), "HI, you!");
}
