//! `!train` — adds examples to the model and starts a training job.
//!
//! ```text
//! !train [positive|negative] <examples…>      inline: JSON, JSONL or `question | answer` lines
//! !train [positive|negative]                  with an attached JSONL, JSON, CSV or text file
//! !train <dataset> [positive|negative]        a dataset made with !select_dataset
//! !train status <job id>
//! ```

use sandbot_examples::{parse, Example, Format};
use sandbot_sdk::host::{chat, model};
use sandbot_sdk::{command, reply, Command, CommandInfo, CommandOption, Error, HostError, Invocation};

struct Train;

const USAGE: &str = "train [positive|negative] <examples… | dataset | attached file> — or — train status <job id>";

impl Command for Train {
    fn describe() -> CommandInfo {
        CommandInfo::new("train", "Teaches the model new examples.", USAGE)
            .needs(&[
                "chat.send-message",
                "chat.read-attachment",
                "model.train",
                "model.job-status",
                "model.load-dataset",
            ])
            .option(CommandOption::string("examples", "Examples, a dataset's name, or `status <job id>`"))
            .option(CommandOption::attachment("file", "Examples as JSONL, JSON or CSV"))
    }

    fn handle(invocation: Invocation) -> Result<(), Error> {
        let args = invocation.args.trim();
        if let Some(id) = args.strip_prefix("status") {
            return status(id.trim(), &invocation.prefix);
        }
        let (label, rest) = split_label(args);
        let mut examples = Vec::new();
        for attachment in &invocation.message.attachments {
            let data = chat::read_attachment(&attachment.id)?;
            let text = String::from_utf8(data)
                .map_err(|_| Error::reply(format!("`{}` is not a text file.", attachment.filename)))?;
            let format = Format::guess(Some(&attachment.filename), &text);
            let parsed =
                parse(&text, format, label).map_err(|why| Error::reply(format!("`{}`: {why}", attachment.filename)))?;
            examples.extend(parsed);
        }
        if !rest.is_empty() {
            examples.extend(inline(rest, label)?);
        }
        if examples.is_empty() {
            return Err(Error::reply(format!(
                "There is nothing to train on. Give examples, attach a file, or name a dataset. Usage: `{}{USAGE}`",
                invocation.prefix
            )));
        }
        let list: Vec<model::Example> =
            examples.into_iter().map(|e| model::Example { input: e.input, output: e.output, label: e.label }).collect();
        let job = model::train(&list)?;
        reply(format!("Model training started. Job ID: {} ({} examples)", job.id, job.examples))?;
        Ok(())
    }
}

/// A leading or trailing `positive`/`negative` is the label.
fn split_label(args: &str) -> (Option<&'static str>, &str) {
    for label in ["positive", "negative"] {
        if let Some(rest) = args.strip_prefix(label).filter(|r| r.is_empty() || r.starts_with(char::is_whitespace)) {
            return (Some(label), rest.trim());
        }
        if let Some(rest) = args.strip_suffix(label).filter(|r| r.is_empty() || r.ends_with(char::is_whitespace)) {
            return (Some(label), rest.trim());
        }
    }
    (None, args)
}

/// A dataset's name, or examples typed in the message.
fn inline(text: &str, label: Option<&str>) -> Result<Vec<Example>, Error> {
    let one_word = !text.contains(char::is_whitespace) && !text.starts_with(['[', '{']);
    if one_word {
        match model::load_dataset(text) {
            Ok(list) => {
                return Ok(list
                    .into_iter()
                    .map(|e| Example {
                        input: e.input,
                        output: if e.output.is_empty() { label.unwrap_or_default().to_string() } else { e.output },
                        label: e.label.or(label.map(str::to_string)),
                    })
                    .collect())
            }
            Err(HostError::NotFound(_) | HostError::Invalid(_)) if text.contains(['|', '\t']) || label.is_some() => {}
            Err(HostError::NotFound(_) | HostError::Invalid(_)) => {
                return Err(Error::reply(format!(
                    "There is no dataset `{text}`. Make one with `!select_dataset`, or write examples as `question | answer`."
                )))
            }
            Err(other) => return Err(other.into()),
        }
    }
    parse(text, Format::guess(None, text), label).map_err(Error::reply)
}

fn status(id: &str, prefix: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(Error::usage(prefix, "train status <job id>"));
    }
    let job = model::job_status(id).map_err(|e| match e {
        HostError::NotFound(_) => Error::reply(format!("There is no training job `{id}`.")),
        other => other.into(),
    })?;
    let detail = job.detail.map(|d| format!(": {d}")).unwrap_or_default();
    reply(format!("Training job `{}` is {} ({} examples){detail}.", job.id, job.status, job.examples))?;
    Ok(())
}

command!(Train);

#[cfg(test)]
mod tests {
    use sandbot_sdk::host::model::Example;
    use sandbot_sdk::testing::{invocation, FakeHost, InvocationExt};

    use super::Train;

    fn example(input: &str, output: &str) -> Example {
        Example { input: input.into(), output: output.into(), label: None }
    }

    #[test]
    fn trains_on_examples_typed_in_the_message() {
        let done =
            FakeHost::new().run::<Train>(invocation("train", "Who runs the club? | Mira\nWhen do we meet? | Fridays"));
        assert_eq!(done.trained, [vec![example("Who runs the club?", "Mira"), example("When do we meet?", "Fridays")]]);
        assert_eq!(done.replies, ["Model training started. Job ID: job-1 (2 examples)"]);
    }

    #[test]
    fn trains_on_an_attached_file() {
        let jsonl = r#"{"messages":[{"role":"user","content":"Where is the map?"},{"role":"assistant","content":"In #maps."}]}"#;
        let done = FakeHost::new().attachment("a1", jsonl).run::<Train>(invocation("train", "").attach(
            "a1",
            "facts.jsonl",
            jsonl.len() as u64,
        ));
        assert_eq!(done.trained, [vec![example("Where is the map?", "In #maps.")]]);
    }

    #[test]
    fn a_named_dataset_is_loaded() {
        let done = FakeHost::new()
            .dataset("cats", vec![example("a cat photo", "")])
            .run::<Train>(invocation("train", "cats positive"));
        assert_eq!(done.trained.len(), 1);
        assert_eq!(done.trained[0][0].output, "positive");
        assert_eq!(done.trained[0][0].label.as_deref(), Some("positive"));
    }

    #[test]
    fn bad_input_gets_a_reason_and_trains_nothing() {
        let nothing = FakeHost::new().run::<Train>(invocation("train", ""));
        assert!(nothing.answer().is_some_and(|a| a.starts_with("There is nothing to train on.")), "{nothing:?}");
        let unknown = FakeHost::new().run::<Train>(invocation("train", "dogs"));
        assert!(unknown.answer().is_some_and(|a| a.starts_with("There is no dataset `dogs`.")), "{unknown:?}");
        let not_text = FakeHost::new()
            .attachment("a1", vec![0xff, 0xfe, 0x00])
            .run::<Train>(invocation("train", "").attach("a1", "photo.png", 3));
        assert_eq!(not_text.result, Err("`photo.png` is not a text file.".into()));
        for done in [nothing, unknown, not_text] {
            assert!(done.trained.is_empty());
        }
    }

    #[test]
    fn reports_a_job_by_id() {
        let done = FakeHost::new().run::<Train>(invocation("train", "status job-7"));
        assert_eq!(done.result, Err("There is no training job `job-7`.".into()));
        let usage = FakeHost::new().run::<Train>(invocation("train", "status"));
        assert_eq!(usage.result, Err("Usage: `!train status <job id>`".into()));
    }
}
