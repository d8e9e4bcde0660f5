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

fn community(name: &str) -> String {
    data(&format!("community/{name}"))
}

/// What `!test` reported: (answered with the taught answer, of), (rightly
/// said "I don't know", of), wrong answers.
fn figures(report: &str) -> ((u32, u32), (u32, u32), u32) {
    let pair = |label: &str| -> (u32, u32) {
        let line = report.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no `{label}` in {report}"));
        let counts = line[label.len()..].split_whitespace().next().unwrap();
        let (a, b) = counts.split_once('/').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    };
    let wrong = report
        .lines()
        .find_map(|l| l.strip_prefix("Wrong answers: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no wrong answers in {report}"));
    (pair("Answered with the taught answer: "), pair("Rightly said “I don't know”: "), wrong)
}

/// The names and numbers of the training answers that their questions do
/// not have: an answer to an unrelated question that states one of these
/// has taken a taught fact where it does not belong, or invented it.
fn community_specifics() -> Vec<String> {
    let text = std::fs::read_to_string(community("train.jsonl")).unwrap();
    let mut questions = String::new();
    let mut answers = String::new();
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        questions.push_str(value["messages"][1]["content"].as_str().unwrap());
        answers.push_str(&format!("{} ", value["messages"][2]["content"].as_str().unwrap()));
    }
    let mut specifics: Vec<String> = answers
        .split(|c: char| !(c.is_alphanumeric() || c == ','))
        .map(|w| w.trim_matches(','))
        .filter(|w| w.len() >= 2)
        .filter(|w| w.chars().any(|c| c.is_ascii_digit()) || w.chars().next().is_some_and(char::is_uppercase))
        .filter(|w| !questions.contains(w))
        .filter(|w| {
            ![
                "No",
                "The",
                "Our",
                "Please",
                "Three",
                "Memes",
                "React",
                "Type",
                "Fill",
                "New",
                "Report",
                "Post",
                "Self",
                "Game",
                "Donations",
                "All",
                "Dr",
            ]
            .contains(w)
        })
        .map(str::to_string)
        .collect();
    specifics.sort();
    specifics.dedup();
    specifics
}

#[test]
fn taught_facts_are_found_in_other_words_and_unrelated_questions_are_not_answered() {
    taught_facts_are_found_in_other_words(Setup::chatty(""), "all-MiniLM-L6-v2", 65);
}

/// The larger embedding model, at its own calibrated thresholds: the
/// issue's floors, and its figures printed beside MiniLM's.
#[test]
fn with_mpnet_taught_facts_are_found_in_other_words_too() {
    let mpnet = support::workspace().join("models/all-mpnet-base-v2");
    assert!(mpnet.join("model.safetensors").is_file(), "{} is missing: `make test` fetches it", mpnet.display());
    let setup = Setup::chatty(&format!("[model]\nembeddings = {:?}\n", mpnet.display().to_string()));
    taught_facts_are_found_in_other_words(setup, "all-mpnet-base-v2", 85);
}

/// The embedding model the shipped config names (what `make run` uses).
fn shipped_embeddings() -> String {
    let config = support::workspace().join("config");
    let text = std::fs::read_to_string(config.join("sandbot.toml")).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let relative = table["model"]["embeddings"].as_str().expect("the shipped config names an embedding model");
    config.join(relative).display().to_string()
}

/// Two communities nothing was tuned on, each taught in a server of its
/// own: `tests/data/harbourlight` and `tests/data/emberwick` were written
/// blind (without the bot's results), and are asked with the shipped
/// embedding model at its calibrated thresholds. The floors sit under the
/// measured figures (BENCHMARKS.md, "Answer quality") to catch a
/// regression; they are not the issue's targets, which the tuned sets
/// above assert.
#[test]
fn communities_it_was_never_tuned_on_are_answered_too() {
    let setup = Setup::chatty(&format!("[model]\nembeddings = {:?}\n", shipped_embeddings()));
    let mut bot = setup.spawn();
    let file = |set: &str, name: &str| data(&format!("{set}/{name}"));
    let communities = [("901", "harbourlight"), ("902", "emberwick")];
    let mut out = Vec::new();
    for (n, (server, set)) in communities.into_iter().enumerate() {
        bot.send(&json!({"content": "!train", "attachments": [file(set, "train.jsonl")], "guild": server}));
        out.extend(bot.read_until(|v| {
            v["type"] == "message" && v["input"] == n && v["content"].as_str().is_some_and(|c| c.contains("succeeded"))
        }));
    }
    for (server, set) in communities {
        bot.send(&json!({"content": "!test", "attachments": [file(set, "holdout.json")], "guild": server}));
    }
    bot.send(&in_server("901", "Does Harbourlight have a mascot?"));
    bot.send(&in_server("901", "who founded Stonebrook?"));
    out.extend(bot.finish());
    // (input, community, paraphrases answered in %, unrelated answered at most)
    for (n, set, floor, unrelated) in [(2, "harbourlight", 75, 3), (3, "emberwick", 50, 7)] {
        let report = reply(&out, n);
        println!("{set}, shipped embeddings:\n{report}\n");
        let ((answered, taught), (declined, untaught), wrong) = figures(&report);
        assert_eq!((taught, untaught), (60, 30), "{report}");
        assert!(answered * 100 >= taught * floor, "too few paraphrases answered: {report}");
        assert!(untaught - declined <= unrelated, "unrelated questions answered: {report}");
        assert!(wrong <= unrelated + 2, "too many wrong answers: {report}");
    }
    // The community's own name is no name a taught question lacks.
    assert_eq!(reply(&out, 4), "The server mascot is Bollard, a knitted seagull wearing a yellow sou'wester.");
    assert!(reply(&out, 5).starts_with("I don't know that yet."), "{}", reply(&out, 5));
}

/// `floor`: the share of the test set's paraphrases (in %) that must get
/// their fact; the issue's 85% holds for MPNet, not yet for MiniLM.
fn taught_facts_are_found_in_other_words(setup: Setup, model: &str, floor: u32) {
    let mut bot = setup.spawn();
    bot.send(&train_file(&community("train.jsonl")));
    // MPNet takes longer than `!train` waits: the job's end is reported
    // after the command's reply, and the questions must wait for it.
    let mut out = bot.read_until(|v| {
        v["type"] == "message" && v["input"] == 0 && v["content"].as_str().is_some_and(|c| c.contains("succeeded"))
    });
    for line in [
        json!({"content": "!test", "attachments": [community("dev.json")]}),
        json!({"content": "!test", "attachments": [community("test.json")]}),
        say("who started lanternmoor"),
        say("what's the music bot called"),
        say("who founded Stonebrook?"),
        say("what is the capital of Japan?"),
    ] {
        bot.send(&line);
    }
    out.extend(bot.finish());
    for (n, set) in [(1, "development"), (2, "test")] {
        let report = reply(&out, n);
        println!("{model}, {set} set:\n{report}\n");
        let ((answered, taught), (declined, untaught), wrong) = figures(&report);
        assert!(taught >= 50 && untaught >= 20, "the {set} set is too small: {report}");
        if set == "test" {
            // Held out: never used to choose the thresholds.
            assert!(answered * 100 >= taught * floor, "too few paraphrases answered: {report}");
            assert!((untaught - declined) * 100 <= untaught * 5, "unrelated questions answered: {report}");
            assert!(wrong * 100 <= (taught + untaught) * 5, "too many wrong answers: {report}");
        }
    }
    assert_eq!(reply(&out, 3), "Lanternmoor was founded by Ysolde Varga.");
    assert_eq!(reply(&out, 4), "Our music bot is called Hummingbird.");
    // Another community's founder: the nearest taught question, not its answer.
    assert_eq!(
        reply(&out, 5),
        "I don't know that yet. The nearest thing I was taught is “Who founded Lanternmoor?”. \
         An operator can teach me with `!train`, and you can correct my answers with `!correct`."
    );
    assert!(reply(&out, 6).starts_with("I don't know that yet."), "{}", reply(&out, 6));
}

/// With the local language model on, every unrelated question of the test
/// set is asked in the chat: no answer may state a name or number of the
/// taught answers (Ysolde Varga, 2019, Hummingbird, 25577…).
#[test]
fn unrelated_questions_get_no_invented_community_facts() {
    let weights = support::workspace().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(weights.is_file(), "{} is missing: `make test` fetches it", weights.display());
    let setup = Setup::chatty(&format!("[model]\nllm = {:?}\nmax_tokens = 48\n", weights.display().to_string()));
    let test: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(community("test.json")).unwrap()).unwrap();
    let unrelated: Vec<&str> =
        test.iter().filter(|i| i["expected"].is_null()).map(|i| i["input"].as_str().unwrap()).collect();
    let mut lines = vec![train_file(&community("train.jsonl"))];
    lines.extend(unrelated.iter().map(|q| say(q)));
    let out = setup.run(&lines);
    let specifics = community_specifics();
    assert!(specifics.iter().any(|s| s == "Ysolde") && specifics.iter().any(|s| s == "25577"), "{specifics:?}");
    let taught: Vec<String> = std::fs::read_to_string(community("train.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["messages"][2]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let (mut declined, mut answered_taught) = (0, 0);
    for (n, question) in unrelated.iter().enumerate() {
        let answer = reply(&out, n as u64 + 1);
        println!("{question} → {answer}");
        if taught.contains(&answer) {
            // Retrieval took it for a taught question: `!test` counts these.
            answered_taught += 1;
            continue;
        }
        let leaked: Vec<&String> = specifics.iter().filter(|s| answer.contains(s.as_str())).collect();
        assert!(leaked.is_empty(), "“{question}” was answered with {leaked:?}: {answer}");
        declined += usize::from(answer.starts_with("I don't know that yet."));
    }
    println!("{declined}/{} declined, {answered_taught} answered with a taught fact", unrelated.len());
    assert!(answered_taught * 10 <= unrelated.len(), "{answered_taught} unrelated questions got taught answers");
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

/// A line typed in server `guild`.
fn in_server(guild: &str, content: &str) -> serde_json::Value {
    json!({ "content": content, "guild": guild })
}

#[test]
fn what_a_server_teaches_answers_in_that_server_only() {
    let setup = Setup::chatty("");
    let mut bot = setup.spawn();
    bot.send(&in_server("111", "!train Who runs the book club? | Mira runs the book club."));
    let mut out = bot.read_until_done(0);
    bot.send(&in_server("111", "who is in charge of the book club"));
    bot.send(&in_server("222", "who is in charge of the book club"));
    // The console's server is the global set's (`model.global_servers`).
    bot.send(&say("!train What is the capital of Australia? | Canberra is the capital of Australia."));
    out.extend(bot.read_until_done(3));
    bot.send(&in_server("222", "what's the capital of australia"));
    out.extend(bot.read_until_done(4));
    assert_eq!(reply(&out, 1), "Mira runs the book club.");
    assert!(reply(&out, 2).starts_with("I don't know that yet."), "{}", reply(&out, 2));
    assert_eq!(reply(&out, 4), "Canberra is the capital of Australia.");
    // A correction in server 222 answers there, not in server 111.
    let answer_id = out.iter().find(|v| v["input"] == 4).unwrap()["id"].as_str().unwrap().to_string();
    bot.send(&in_server("222", &format!("!correct {answer_id} Canberra, and in this server we say so twice.")));
    let mut out = bot.read_until_done(5);
    bot.send(&in_server("222", "what's the capital of australia"));
    bot.send(&in_server("111", "what's the capital of australia"));
    out.extend(bot.finish());
    assert_eq!(reply(&out, 5), "Thanks, I stored your correction.");
    assert_eq!(reply(&out, 6), "Canberra, and in this server we say so twice.");
    assert_eq!(reply(&out, 7), "Canberra is the capital of Australia.");
    let corrections = setup.export("corrections");
    assert_eq!(corrections[0]["scope"], "guild:222");

    // After a restart too, and a direct message knows neither server's.
    let out = setup.run(&[
        in_server("111", "who runs the book club?"),
        in_server("222", "whats the capital of australia"),
        json!({ "content": "who runs the book club?", "guild": null }),
    ]);
    assert_eq!(reply(&out, 0), "Mira runs the book club.");
    assert_eq!(reply(&out, 1), "Canberra, and in this server we say so twice.");
    assert!(reply(&out, 2).starts_with("I don't know that yet."), "{}", reply(&out, 2));
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
fn the_local_language_model_makes_small_talk_but_states_no_facts_of_its_own() {
    let weights = support::workspace().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(weights.is_file(), "{} is missing: `make test` fetches it", weights.display());
    let config = |unknown: &str| {
        format!("[model]\nllm = {:?}\nmax_tokens = 32\nunknown = {unknown:?}\n", weights.display().to_string())
    };
    let setup = Setup::chatty(&config("decline"));
    let out = setup.run(&[
        say("!train What is the capital of Australia? | Canberra, since 1913."),
        say("What is the capital of Australia?"),
        say("What is the capital of France?"),
        say("hello there!"),
    ]);
    assert_eq!(reply(&out, 1), "Canberra, since 1913.", "retrieval first");
    // Nothing taught about France: no invention, however the model would answer.
    assert!(reply(&out, 2).starts_with("I don't know that yet."), "{}", reply(&out, 2));
    let greeting = reply(&out, 3);
    println!("small talk: {greeting}");
    assert!(!greeting.is_empty() && !greeting.starts_with("I don't know"), "{greeting}");

    // An operator who wants open answers turns them on.
    let setup = Setup::chatty(&config("generate"));
    let out = setup.run(&[say("What is the capital of France?")]);
    let generated = reply(&out, 0);
    println!("generated: {generated}");
    // A 135M-parameter model knows little and invents much; this one fact
    // it gets right, and greedy decoding makes the answer repeatable.
    assert!(generated.contains("Paris"), "{generated}");
}

/// A generated answer shows as it is written: the first sentence at once,
/// then edits of that message, the last of them the complete answer: the
/// very words a command built for 0.2.0 (`tests/fixtures/sandbot-bot-0.2.0`,
/// which asks `call-model` and still loads) gets in one piece. Edits come
/// about once a second at most. Spoken, the answer is one clip per piece.
#[test]
fn a_generated_answer_shows_as_it_is_written() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    let weights = support::workspace().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let old_chat = support::workspace().join("tests/fixtures/sandbot-bot-0.2.0/chat.wasm");
    let setup = Setup::chatty(&format!(
        r#"[model]
llm = {:?}
max_tokens = 160
unknown = "generate"

[commands.oldchat]
wasm = {:?}
grants = ["chat.send-message", "model.call-model"]
limits = {{ deadline_ms = 120000 }}

[commands.noedits]
wasm = "chat.wasm"
grants = ["chat.send-message", "model.call-model"]
limits = {{ deadline_ms = 120000 }}
"#,
        weights.display().to_string(),
        old_chat.display().to_string(),
    ));
    let question = "Write a long story about a dragon who learns to bake bread.";
    let mut bot = setup.spawn();
    bot.send(&json!({ "content": question }));
    let started = Instant::now();
    // Each effect as it arrives, with when.
    let mut effects: Vec<(Duration, serde_json::Value)> = Vec::new();
    loop {
        let mut line = String::new();
        assert!(bot.stdout_mut().read_line(&mut line).unwrap() > 0, "sandbot stopped: {effects:?}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        let done = value["type"] == "done" && value["input"] == 0;
        effects.push((started.elapsed(), value));
        if done {
            break;
        }
    }
    let elapsed = started.elapsed();
    let of = |kind: &str| effects.iter().filter(|(_, v)| v["type"] == kind && v["input"] == 0).collect::<Vec<_>>();
    let (messages, edits) = (of("message"), of("edit"));
    assert_eq!(messages.len(), 1, "one message, then edits: {effects:#?}");
    assert!(!edits.is_empty(), "{effects:#?}");
    let first = messages[0].1["content"].as_str().unwrap().to_string();
    let last = edits.last().unwrap().1["content"].as_str().unwrap().to_string();
    assert!(edits.iter().all(|(_, e)| e["id"] == messages[0].1["id"]), "{effects:#?}");
    assert!(last.starts_with(&first) && last.len() > first.len(), "{first:?} then {last:?}");
    assert!(first.ends_with(['.', '!', '?']), "not a whole sentence: {first:?}");
    // Paced: the pieces before the last at least a second apart.
    let times: Vec<Duration> = std::iter::once(messages[0].0).chain(edits.iter().map(|(t, _)| *t)).collect();
    let interim = &times[..times.len() - 1];
    for pair in interim.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(900), "edits too close: {times:?}");
    }
    println!("{} edits in {elapsed:?}: {times:?}", edits.len());

    bot.send(&say(&format!("!oldchat {question}")));
    let out = bot.read_until_done(1);
    assert_eq!(reply(&out, 1), last, "the 0.2.0 command got another answer");

    // In voice, the first sentence is spoken while the rest is written:
    // one clip per piece.
    bot.send(&json!({ "content": question, "voice_channel": "General" }));
    let out = bot.read_until_done(2);
    let clips = out.iter().filter(|v| v["type"] == "audio").count();
    assert!(clips >= 2, "{out:#?}");
    assert!(replies(&out, 2).is_empty(), "{out:#?}");

    // Without the edit grant: the first sentence, then the rest.
    bot.send(&say(&format!("!noedits {question}")));
    let out = bot.read_until_done(3);
    let sent = replies(&out, 3);
    assert_eq!(sent.len(), 2, "{out:#?}");
    assert_eq!(format!("{} {}", sent[0], sent[1]), last);
    drop(bot.finish());
}
