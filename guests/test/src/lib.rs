//! `!test` — runs the model on examples and reports the score.
//!
//! ```text
//! !test [{"input": "…", "expected": "…"}, …]
//! !test [{"text": "…", "label": "positive"}, …]
//! !test                                      with the same JSON attached
//! ```

use std::collections::BTreeMap;

use sandbot_examples::from_value;
use sandbot_sdk::host::{chat, model};
use sandbot_sdk::{command, reply, Command, CommandInfo, Error, Invocation};

struct Test;

const USAGE: &str = "test <JSON list of {\"input\", \"expected\"} or {\"text\", \"label\"}> (or attach it)";
/// Misses shown in the reply; the rest are counted.
const SHOWN_MISSES: usize = 5;

impl Command for Test {
    fn describe() -> CommandInfo {
        CommandInfo::new("test", "Scores the model on examples.", USAGE).needs(&[
            "chat.send-message",
            "chat.read-attachment",
            "model.predict",
        ])
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
        let mut correct = 0;
        let mut per_label: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        let mut misses = Vec::new();
        for (n, item) in items.iter().enumerate() {
            let example = from_value(item).map_err(|why| Error::reply(format!("Item {}: {why}", n + 1)))?;
            if example.output.trim().is_empty() {
                return Err(Error::reply(format!("Item {} has no `expected` or `label`.", n + 1)));
            }
            let got = model::predict(&example.input)?;
            let right = same(&got, &example.output);
            if right {
                correct += 1;
            } else {
                misses.push((example.input.clone(), got, example.output.clone()));
            }
            if let Some(label) = &example.label {
                let counts = per_label.entry(label.clone()).or_default();
                counts.1 += 1;
                if right {
                    counts.0 += 1;
                }
            }
        }
        let total = items.len();
        let mut text = format!("Accuracy: {correct}/{total} ({:.0}%)", 100.0 * correct as f64 / total as f64);
        for (label, (right, all)) in &per_label {
            text.push_str(&format!("\n{label}: {right}/{all} right"));
        }
        if !misses.is_empty() {
            text.push_str("\nMissed:");
            for (input, got, expected) in misses.iter().take(SHOWN_MISSES) {
                text.push_str(&format!("\n- {} → got {}, expected {}", short(input), short(got), short(expected)));
            }
            if misses.len() > SHOWN_MISSES {
                text.push_str(&format!("\n…and {} more.", misses.len() - SHOWN_MISSES));
            }
        }
        reply(text)?;
        Ok(())
    }
}

/// Equal, ignoring case, spacing and final punctuation.
fn same(a: &str, b: &str) -> bool {
    let norm =
        |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").trim_end_matches(['.', '!', '?']).to_lowercase();
    norm(a) == norm(b)
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
