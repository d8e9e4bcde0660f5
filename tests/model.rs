//! The embedded model through the console: train, test, correct, datasets
//! and archives, as a user runs them.

mod support;

use std::io::Read;

use serde_json::json;
use support::{replies, reply, say, Setup};

fn data(name: &str) -> String {
    support::workspace().join("tests/data").join(name).display().to_string()
}

fn train_file(path: &str) -> serde_json::Value {
    json!({"content": "!train", "attachments": [path]})
}

#[test]
fn trained_on_a_dataset_it_answers_paraphrases_it_never_saw() {
    let setup = Setup::chatty("");
    let out = setup.run(&[
        train_file(&data("qa.jsonl")),
        json!({"content": "!test", "attachments": [data("paraphrases.json")]}),
        say("Tell me the capital city of France"),
        say("what colour are bananas"),
    ]);
    let training = replies(&out, 0);
    assert!(training[0].starts_with("Model training started. Job ID: job-"), "{training:?}");
    assert!(training[0].ends_with("(30 examples)"), "{training:?}");
    assert!(training[1].contains("succeeded"), "{training:?}");

    let score = reply(&out, 1);
    println!("paraphrase test:\n{score}");
    let accuracy: u32 = score
        .strip_prefix("Accuracy: ")
        .and_then(|s| s.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in {score}"));
    // 20 paraphrases with different wording; retrieval should get at
    // least 16 (80%) of them right.
    assert!(accuracy >= 16, "accuracy {accuracy}/20 is below the floor:\n{score}");

    assert_eq!(reply(&out, 2), "Paris is the capital of France.");
    assert!(reply(&out, 3).starts_with("I don't know that yet."), "{}", reply(&out, 3));
}

#[test]
fn a_correction_changes_the_next_answer() {
    let setup = Setup::chatty("");
    let mut bot = setup.spawn();
    bot.send(&say("!train What is the capital of Australia? | Sydney is the capital of Australia."));
    bot.read_until_done(0);
    bot.send(&say("what is the capital of Australia?"));
    let out = bot.read_until_done(1);
    assert_eq!(reply(&out, 1), "Sydney is the capital of Australia.");
    let answer_id = out[0]["id"].as_str().unwrap().to_string();
    bot.send(&say(&format!("!correct {answer_id} Canberra is the capital of Australia.")));
    bot.send(&say("What's the capital of Australia"));
    let out = bot.finish();
    assert_eq!(reply(&out, 2), "Thanks, I stored your correction.");
    assert_eq!(reply(&out, 3), "Canberra is the capital of Australia.");

    let corrections = setup.export("corrections");
    assert_eq!(corrections[0]["question"], "what is the capital of Australia?");

    // It still holds after a restart: corrections live in the database.
    let out = setup.run(&[say("capital of Australia?")]);
    assert_eq!(reply(&out, 0), "Canberra is the capital of Australia.");
}

#[test]
fn labelled_datasets_train_a_classifier() {
    let setup = Setup::new("");
    let reviews = setup.path("data/datasets/reviews");
    for (label, texts) in [
        (
            "positive",
            ["I love this phone, it is wonderful", "great battery and a wonderful screen", "excellent value, love it"],
        ),
        (
            "negative",
            ["terrible phone, the battery died", "awful screen and a terrible price", "broken after a day, awful"],
        ),
    ] {
        std::fs::create_dir_all(reviews.join(label)).unwrap();
        for (n, text) in texts.iter().enumerate() {
            std::fs::write(reviews.join(label).join(format!("{n}.txt")), text).unwrap();
        }
    }
    std::fs::write(reviews.join("notes.md"), "not a .txt file").unwrap();
    let out = setup.run(&[
        say("!select_dataset reviews"),
        say("!train reviews"),
        say(r#"!test [{"text": "what a wonderful phone, I love it", "label": "positive"}, {"text": "the battery is terrible and awful", "label": "negative"}]"#),
        say("!select_dataset nothing-here"),
        say("!select_dataset ../../etc"),
        say("!train no_such_dataset"),
    ]);
    let summary = out.iter().find(|v| v["type"] == "message" && v["input"] == 0).unwrap();
    let text = summary["content"].as_str().unwrap();
    assert!(text.starts_with("Dataset `reviews`: 6 texts"), "{text}");
    assert!(text.contains("3 positive") && text.contains("3 negative"), "{text}");
    assert_eq!(summary["files"][0]["name"], "reviews.zip");
    let zip =
        zip::ZipArchive::new(std::fs::File::open(summary["files"][0]["path"].as_str().unwrap()).unwrap()).unwrap();
    let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
    names.sort();
    assert!(names.contains(&"positive/0.txt".to_string()) && names.contains(&"notes.md".to_string()), "{names:?}");

    assert!(replies(&out, 1)[0].contains("(6 examples)"), "{:?}", replies(&out, 1));
    let score = reply(&out, 2);
    assert!(score.starts_with("Accuracy: 2/2 (100%)"), "{score}");
    assert!(score.contains("positive: 1/1 right") && score.contains("negative: 1/1 right"), "{score}");
    assert_eq!(reply(&out, 3), "There is no folder `nothing-here` in the datasets area.");
    assert!(reply(&out, 4).contains("leaves the folder"), "{}", reply(&out, 4));
    assert!(reply(&out, 5).starts_with("There is no dataset `no_such_dataset`."), "{}", reply(&out, 5));
}

#[test]
fn bad_input_gets_clear_replies() {
    let setup = Setup::new("");
    let empty = setup.path("empty.jsonl");
    std::fs::write(&empty, "\n\n").unwrap();
    let broken = setup.path("broken.jsonl");
    std::fs::write(&broken, "{\"input\": \"a\", \"expected\": \"b\"}\n{\"input\": oops}\n").unwrap();
    let out = setup.run(&[
        say("!test [{\"input\": \"a\", \"expected\": \"b\"}"),
        say("!test {\"input\": \"a\"}"),
        say("!test []"),
        say("!train"),
        json!({"content": "!train", "attachments": [empty.display().to_string()]}),
        json!({"content": "!train", "attachments": [broken.display().to_string()]}),
        say("!train just some words"),
        say("!train status"),
        say("!archive ../.."),
        say("!archive /etc"),
        say("!archive"),
    ]);
    assert!(reply(&out, 0).starts_with("That is not valid JSON:"), "{}", reply(&out, 0));
    assert_eq!(reply(&out, 1), "The JSON should be a list of examples.");
    assert_eq!(reply(&out, 2), "The list of examples is empty.");
    assert!(reply(&out, 3).starts_with("There is nothing to train on."), "{}", reply(&out, 3));
    assert!(reply(&out, 4).starts_with("There is nothing to train on."), "{}", reply(&out, 4));
    assert_eq!(reply(&out, 5), "`broken.jsonl`: Line 2 is not valid JSON: expected value at line 1 column 11.");
    assert!(reply(&out, 6).starts_with("Line 1 has no answer"), "{}", reply(&out, 6));
    assert_eq!(reply(&out, 7), "Usage: `!train status <job id>`");
    for n in [8, 9] {
        assert!(reply(&out, n).contains("leaves the folder"), "input {n}: {}", reply(&out, n));
    }
    assert_eq!(reply(&out, 10), "Usage: `!archive <folder>`");
}

#[test]
fn archive_sends_a_zip_that_reads_back_to_the_same_files() {
    let setup = Setup::new("");
    let out = setup.run(&[say("!archive shared"), json!({"content": "!archive shared", "author_id": "9"})]);
    let sent = out.iter().find(|v| v["type"] == "message" && v["input"] == 0).unwrap();
    assert_eq!(sent["files"][0]["name"], "shared.zip");
    let mut zip =
        zip::ZipArchive::new(std::fs::File::open(sent["files"][0]["path"].as_str().unwrap()).unwrap()).unwrap();
    for name in ["hello.txt", "docs/notes.md"] {
        let mut text = String::new();
        zip.by_name(name).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, std::fs::read_to_string(setup.path("data/shared").join(name)).unwrap(), "{name}");
    }
    assert_eq!(reply(&out, 1), "Sorry, `!archive` is for operators only.");
}

#[test]
fn training_jobs_survive_a_restart() {
    let setup = Setup::new("");
    let out = setup.run(&[say("!train hello there | general kenobi")]);
    let started = &replies(&out, 0)[0];
    let id = started.split("Job ID: ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let out = setup.run(&[say(&format!("!train status {id}"))]);
    assert_eq!(
        reply(&out, 0),
        format!("Training job `{id}` is succeeded (1 examples): learned 1 examples; the model now knows 1 answers.")
    );
}

#[test]
fn the_local_language_model_answers_what_retrieval_cannot() {
    let weights = support::workspace().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(weights.is_file(), "{} is missing: `make test` fetches it", weights.display());
    let setup = Setup::chatty(&format!("[model]\nllm = {:?}\nmax_tokens = 32\n", weights.display().to_string()));
    let out = setup.run(&[
        say("!train What is the capital of Australia? | Canberra, since 1913."),
        say("What is the capital of Australia?"),
        say("What is the capital of France?"),
    ]);
    assert_eq!(reply(&out, 1), "Canberra, since 1913.", "retrieval first");
    // A 135M-parameter model knows little and invents much; this one fact
    // it gets right, and greedy decoding makes the answer repeatable.
    let generated = reply(&out, 2);
    println!("generated: {generated}");
    assert!(!generated.starts_with("I don't know that yet"), "{generated}");
    assert!(generated.contains("Paris"), "{generated}");
}
