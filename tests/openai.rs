//! The OpenAI-compatible provider against a fake server on 127.0.0.1:
//! answers, context, fine-tuning jobs, corrections, tests and failures.

mod support;

use serde_json::json;
use support::fake_openai::FakeOpenAi;
use support::{replies, reply, say, Setup};

fn setup(base_url: &str) -> Setup {
    setup_with(base_url, "")
}

/// The provider on `base_url`, with `more` `[model]` keys.
fn setup_with(base_url: &str, more: &str) -> Setup {
    Setup::with_top(
        "default_handler = \"chat\"",
        &format!(
            "[model]\nprovider = \"openai\"\nbase_url = \"{base_url}\"\napi_key = \"sk-test\"\nmodel = \"gpt-test\"\n\
             context_turns = 2\ntimeout_secs = 5\n{more}"
        ),
    )
}

const FACTS: &str = "!train Who founded Lanternmoor? | Lanternmoor was founded by Ysolde Varga.\n\
    When was Lanternmoor founded? | Lanternmoor was founded in March 2019.\n\
    How many members does Lanternmoor have? | Lanternmoor has about 4,200 members.";

/// A taught answer is the answer, without asking the server; taught facts
/// near a question are the server's context, with the taught turns of the
/// channel; greetings go to the server; nothing else does.
#[test]
fn the_server_answers_from_taught_facts_and_is_not_asked_what_nobody_taught() {
    let (fake, base) = FakeOpenAi::start();
    let setup = setup(&base);
    let out = setup.run(&[
        say(FACTS),
        say("who founded lanternmoor?"),
        say("hello there"),
        say("since when has this place existed"),
        say("what is the capital of Peru?"),
        say("since when has this place existed? (unanswerable)"),
    ]);
    assert_eq!(reply(&out, 1), "Lanternmoor was founded by Ysolde Varga.");
    assert_eq!(reply(&out, 2), "fake(gpt-test): hello there");
    assert_eq!(reply(&out, 3), "Lanternmoor was founded in March 2019.");
    assert!(reply(&out, 4).starts_with("I don't know that yet."), "{}", reply(&out, 4));
    // The server found no answer in the facts: the bot says it does not know.
    assert!(
        reply(&out, 5).starts_with("I don't know that yet. The nearest thing I was taught is"),
        "{}",
        reply(&out, 5)
    );
    let chats = fake.chats();
    assert_eq!(chats.len(), 3, "only small talk and near questions reach the server: {chats:#?}");
    let grounded = chats[1]["messages"].as_array().unwrap();
    let roles: Vec<&str> = grounded.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"], "the taught turn is the context");
    assert_eq!(grounded[2]["content"], "Lanternmoor was founded by Ysolde Varga.");
    let system = grounded[0]["content"].as_str().unwrap();
    assert!(
        system.contains("Facts:\n- Q: When was Lanternmoor founded? A: Lanternmoor was founded in March 2019."),
        "{system}"
    );
}

#[test]
fn fine_tuning_jobs_run_to_the_end_and_then_answer() {
    let (fake, base) = FakeOpenAi::start();
    let setup = setup_with(&base, "fine_tune = true\n");
    let file = support::workspace().join("tests/data/qa.jsonl").display().to_string();
    let out = setup.run(&[
        json!({"content": "!train", "attachments": [file]}),
        say("!train status ftjob-1"),
        say("!train status ftjob-1"),
        say("hello there"),
        say("What is the capital of France?"),
    ]);
    // The bot polls the job once right after starting it (queued), then
    // every status read moves the fake job one step.
    assert_eq!(replies(&out, 0), ["Model training started. Job ID: ftjob-1 (30 examples)"]);
    assert!(reply(&out, 1).starts_with("Training job `ftjob-1` is running"), "{}", reply(&out, 1));
    assert_eq!(
        reply(&out, 2),
        "Training job `ftjob-1` is succeeded (30 examples): answers now come from ft:base:sandbot:ftjob-1."
    );
    // Small talk now goes to the fine-tuned model (whose made-up name in
    // the fake's reply is the kind of thing the bot does not repeat).
    let chats = fake.chats();
    assert_eq!(chats.last().map(|c| c["model"].clone()), Some(json!("ft:base:sandbot:ftjob-1")), "{chats:#?}");
    assert!(!reply(&out, 3).is_empty());
    // The examples were learned for retrieval too, at once.
    assert_eq!(reply(&out, 4), "Paris is the capital of France.");
    let recorded = fake.recorded.lock().unwrap();
    let (purpose, content) = &recorded.files["file-1"];
    assert_eq!(purpose, "fine-tune");
    assert_eq!(content.lines().count(), 30);
}

#[test]
fn a_server_without_fine_tuning_says_so_and_the_examples_are_learned() {
    let (fake, base) = FakeOpenAi::without_fine_tuning();
    let setup = setup_with(&base, "fine_tune = true\n");
    let out = setup.run(&[
        say("!train What colour is the bar's lounge? | The lounge is painted deep green."),
        say("what colour is the lounge in the bar"),
    ]);
    let training = replies(&out, 0);
    assert!(training[0].starts_with("Model training started. Job ID: job-"), "{training:?}");
    assert!(
        training[1]
            .ends_with("succeeded: this server does not offer fine-tuning; the examples were learned for retrieval."),
        "{training:?}"
    );
    assert_eq!(reply(&out, 1), "The lounge is painted deep green.");
    assert!(fake.chats().is_empty(), "a taught answer needs no server");
}

#[test]
fn a_failed_job_says_why() {
    let (_fake, base) = FakeOpenAi::start();
    let setup = setup_with(&base, "fine_tune = true\n");
    let out = setup.run(&[say("!train please FAIL | now"), say("!train status ftjob-1"), say("!train status ftjob-1")]);
    assert!(replies(&out, 0)[0].starts_with("Model training started. Job ID: ftjob-1"));
    assert_eq!(reply(&out, 2), "Training job `ftjob-1` is failed (1 examples): the training file asked to fail.");
}

#[test]
fn corrections_and_tests_work_through_the_server() {
    let (fake, base) = FakeOpenAi::start();
    let setup = setup_with(&base, "fine_tune = true\n");
    let mut bot = setup.spawn();
    bot.send(&say("what is the capital of Australia?"));
    let out = bot.read_until_done(0);
    assert!(reply(&out, 0).starts_with("I don't know that yet."), "{}", reply(&out, 0));
    let id = out[0]["id"].as_str().unwrap().to_string();
    bot.send(&say(&format!("!correct {id} Canberra is the capital of Australia.")));
    bot.send(&say("What's the capital of Australia?"));
    bot.send(&say(r#"!test [{"input": "capital of Australia", "expected": "Canberra is the capital of Australia."}, {"input": "colour of the sky", "expected": "blue"}]"#));
    let out = bot.finish();
    assert_eq!(reply(&out, 1), "Thanks, I stored your correction.");
    assert_eq!(reply(&out, 2), "Canberra is the capital of Australia.");
    let score = reply(&out, 3);
    assert!(score.starts_with("Accuracy: 1/2 (50%)"), "{score}");
    assert!(score.contains("“colour of the sky” → got “I don't know”, expected “blue”"), "{score}");
    // The correction survives a restart, and joins the next training file.
    let out = setup.run(&[say("capital of Australia?"), say("!train a | b")]);
    assert_eq!(reply(&out, 0), "Canberra is the capital of Australia.");
    assert!(replies(&out, 1)[0].contains("(2 examples)"), "{:?}", replies(&out, 1));
    let recorded = fake.recorded.lock().unwrap();
    assert!(recorded.files["file-1"].1.contains("Canberra is the capital of Australia."));
    assert!(recorded.chats.is_empty(), "nothing here needed the server's model");
}

#[test]
fn server_errors_are_retried_and_failures_get_a_short_reply() {
    let (fake, base) = FakeOpenAi::start();
    let setup = setup_with(&base, "unknown = \"generate\"\n");
    let out = setup.run(&[say("a flaky question")]);
    assert_eq!(reply(&out, 0), "fake(gpt-test): a flaky question");
    assert_eq!(fake.recorded.lock().unwrap().flaky_failures, 2);

    // Nothing listens on port 9 of loopback.
    let setup = setup_with("http://127.0.0.1:9/v1", "unknown = \"generate\"\n");
    let out = setup.run(&[say("what is the tallest tree on earth?"), say("!hi")]);
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

/// llama.cpp's own OpenAI-compatible server (llama-cpp-python's, serving
/// the same SmolLM2 GGUF on loopback), where `scripts/peers/install.sh`
/// has built it: taught answers, corrections and `!train` behave as with
/// the embedded model. Building llama.cpp takes minutes, so `make test`
/// does not install it; without it this test says so and checks nothing.
#[test]
fn against_llama_cpp_s_own_server_when_installed() {
    let python = support::workspace().join("target/peers/bin/python");
    let importable = std::process::Command::new(&python)
        .args(["-c", "import llama_cpp.server"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !importable {
        println!("skipped: llama.cpp's server is not installed (scripts/peers/install.sh builds it)");
        return;
    }
    let port = support::free_port();
    let weights = support::workspace().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    /// Stops the server however the test ends.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Server(
        std::process::Command::new(&python)
            .args(["-m", "llama_cpp.server", "--host", "127.0.0.1", "--n_threads", "1", "--model"])
            .arg(&weights)
            .args(["--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start llama.cpp's server"),
    );
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed().as_secs() < 120, "llama.cpp's server did not start");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(support::http_get(port, "/v1/models").0, 200, "llama.cpp's server does not answer");
    let setup = setup_with(&format!("http://127.0.0.1:{port}/v1"), "fine_tune = true\n");
    let mut bot = setup.spawn();
    bot.send(&say(FACTS));
    let mut out = bot.read_until(|v| {
        v["type"] == "message" && v["input"] == 0 && v["content"].as_str().is_some_and(|c| c.contains("succeeded"))
    });
    for line in ["who started lanternmoor", "hello there", "what is the capital of Peru?"] {
        bot.send(&say(line));
    }
    out.extend(bot.read_until_done(3));
    let training = replies(&out, 0);
    assert!(
        training.iter().any(|r| r
            .ends_with("succeeded: this server does not offer fine-tuning; the examples were learned for retrieval.")),
        "{training:?}"
    );
    assert_eq!(reply(&out, 1), "Lanternmoor was founded by Ysolde Varga.");
    let greeting = reply(&out, 2);
    assert!(!greeting.is_empty() && !greeting.starts_with("Something went wrong"), "{greeting}");
    assert!(reply(&out, 3).starts_with("I don't know that yet."), "{}", reply(&out, 3));
    // A correction of the server's answer is the next answer.
    let answer_id = out.iter().find(|v| v["input"] == 1).unwrap()["id"].as_str().unwrap().to_string();
    bot.send(&say(&format!("!correct {answer_id} Lanternmoor was founded by Ysolde Varga and Ilse Brandt.")));
    bot.send(&say("who started lanternmoor"));
    let out = bot.finish();
    assert_eq!(reply(&out, 4), "Thanks, I stored your correction.");
    assert_eq!(reply(&out, 5), "Lanternmoor was founded by Ysolde Varga and Ilse Brandt.");
    println!("llama.cpp's server: greeting {greeting:?}; taught, corrected and declined as with the embedded model");
}
