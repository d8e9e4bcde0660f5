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

/// `[speech]` on an OpenAI-compatible server: the voice message goes to
/// `audio/transcriptions` as a named file, the answer to `audio/speech`, and
/// what the server spoke is the clip the bot plays.
#[test]
fn voice_messages_are_heard_and_answered_by_the_speech_server() {
    let (fake, base) = FakeOpenAi::start();
    let setup = Setup::chatty(&format!(
        "[speech]\ntranscriber = \"openai\"\nsynthesizer = \"openai\"\nbase_url = \"{base}\"\napi_key = \"sk-test\"\n\
         transcription_model = \"whisper-test\"\nspeech_model = \"tts-test\"\nspeech_voice = \"nova\"\nlanguage = \"fr\"\n"
    ));
    // Real Ogg Opus, as Discord sends voice messages; the fake checks its name.
    let samples: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    let voice = setup.path("voice-message.ogg");
    std::fs::write(&voice, support::ogg_opus::encode(&samples)).unwrap();
    let short = setup.path("short.wav");
    std::fs::write(&short, b"RIFF\x24\0\0\0WAVEfmt tiny").unwrap();
    let out = setup.run(&[
        json!({"content": "!train What is the capital of France? | Paris is the capital of France."}),
        json!({"content": "", "attachments": [voice]}),
        json!({"content": "", "attachments": [voice], "voice_channel": "General"}),
        json!({"content": "", "attachments": [short]}),
    ]);
    assert_eq!(reply(&out, 1), "Paris is the capital of France.", "{out:#?}");
    let audio: Vec<_> = out.iter().filter(|v| v["type"] == "audio").collect();
    assert_eq!(audio.len(), 1, "{out:#?}");
    assert_eq!(audio[0]["input"], 2);
    assert!(replies(&out, 2).is_empty(), "spoken and also written: {out:#?}");
    let answer = reply(&out, 3);
    assert!(answer.starts_with("I cannot listen to `short.wav`: the speech server refused it"), "{answer}");
    assert!(answer.contains("too short"), "{answer}");

    let recorded = fake.recorded.lock().unwrap();
    let first = &recorded.transcriptions[0];
    assert_eq!(first["filename"], "audio.ogg");
    assert_eq!(first["model"], "whisper-test");
    assert_eq!(first["language"], "fr");
    assert_eq!(first["bytes"].as_u64(), Some(std::fs::metadata(&voice).unwrap().len()));
    assert_eq!(recorded.speeches.len(), 1);
    let speech = &recorded.speeches[0];
    assert_eq!(speech["input"], "Paris is the capital of France.");
    assert_eq!((speech["model"].as_str(), speech["voice"].as_str()), (Some("tts-test"), Some("nova")));
    let played = std::fs::read(audio[0]["path"].as_str().unwrap()).unwrap();
    assert_eq!(played, recorded.spoken[0], "the clip played is not what the server spoke");
}
