//! `!test` — runs the model on examples and reports the score.
//!
//! ```text
//! !test [{"input": "…", "expected": "…"}, …]
//! !test [{"input": "…", "expected": null}, …]   the bot should say it does not know
//! !test [{"text": "…", "label": "positive"}, …]
//! !test                                        with the same JSON attached
//! ```
//!
//! The model scores each input as it answers a user (the same retrieval);
//! an empty prediction is "I don't know". Beside accuracy, the reply says
//! how often the bot rightly did not know and how often it answered wrong,
//! which for a bot people trust matters more than a missed answer.

use std::collections::BTreeMap;

use sandbot_examples::{from_value, Score};
use sandbot_sdk::host::{chat, model};
use sandbot_sdk::{command, reply, Command, CommandInfo, CommandOption, Error, Invocation};

struct Test;

const USAGE: &str =
    "test <JSON list of {\"input\", \"expected\"} (null: should not know) or {\"text\", \"label\"}> (or attach it)";
/// Misses shown in the reply; the rest are counted.
const SHOWN_MISSES: usize = 5;

impl Command for Test {
    fn describe() -> CommandInfo {
        CommandInfo::new("test", "Scores the model on examples.", USAGE)
            .needs(&["chat.send-message", "chat.read-attachment", "model.predict"])
            .option(CommandOption::string("examples", "A JSON list of {input, expected} or {text, label}"))
            .option(CommandOption::attachment("file", "The examples as a JSON file"))
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let text = match invocation.message.attachments.first() {
            Some(attachment) => String::from_utf8(chat::read_attachment(&attachment.id)?)
                .map_err(|_| Error::reply(format!("`{}` is not a text file.", attachment.filename)))?,
            None => invocation.args.trim().to_string(),
        };
        if text.trim().is_empty() {
            return Err(Error::usage(&invocation.prefix, USAGE));
        }
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::reply(format!("That is not valid JSON: {e}.")))?;
        let serde_json::Value::Array(items) = value else {
            return Err(Error::reply("The JSON should be a list of examples."));
        };
        if items.is_empty() {
            return Err(Error::reply("The list of examples is empty."));
        }
        let mut score = Score::default();
        let mut per_label: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        let mut misses = Vec::new();
        for (n, item) in items.iter().enumerate() {
            let example = from_value(item).map_err(|why| Error::reply(format!("Item {}: {why}", n + 1)))?;
            // `"expected": null`: a question the bot should not know.
            let expected = match item.get("expected") {
                Some(serde_json::Value::Null) => None,
                _ if example.output.trim().is_empty() => {
                    return Err(Error::reply(format!("Item {} has no `expected` or `label`.", n + 1)))
                }
                _ => Some(example.output.clone()),
            };
            let got = model::predict(&example.input)?;
            let right = score.add(expected.as_deref(), &got);
            if !right {
                misses.push((example.input.clone(), got, expected.clone()));
            }
            if let Some(label) = &example.label {
                let counts = per_label.entry(label.clone()).or_default();
                counts.1 += 1;
                if right {
                    counts.0 += 1;
                }
            }
        }
        let mut text = score.report();
        for (label, (right, all)) in &per_label {
            text.push_str(&format!("\n{label}: {right}/{all} right"));
        }
        if !misses.is_empty() {
            text.push_str("\nMissed:");
            for (input, got, expected) in misses.iter().take(SHOWN_MISSES) {
                let got = if got.trim().is_empty() { "“I don't know”".to_string() } else { short(got) };
                let expected = expected.as_deref().map_or("“I don't know”".to_string(), short);
                text.push_str(&format!("\n- {} → got {got}, expected {expected}", short(input)));
            }
            if misses.len() > SHOWN_MISSES {
                text.push_str(&format!("\n…and {} more.", misses.len() - SHOWN_MISSES));
            }
        }
        reply(text)?;
        Ok(())
    }
}

fn short(text: &str) -> String {
    let line = text.replace('\n', " ");
    if line.chars().count() <= 80 {
        format!("“{line}”")
    } else {
        format!("“{}…”", line.chars().take(80).collect::<String>())
    }
}

command!(Test);
