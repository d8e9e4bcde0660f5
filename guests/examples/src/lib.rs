//! Training and test examples in the formats people send:
//!
//! - JSONL: one object per line — OpenAI's chat fine-tuning format
//!   (`{"messages":[{"role":"user",…},{"role":"assistant",…}]}`), or
//!   `input`/`expected` (or `output`), `prompt`/`completion`,
//!   `question`/`answer`, `text`/`label`;
//! - JSON: a list of such objects;
//! - CSV with a header naming those columns;
//! - plain text: one example per line, `question | answer`, or any text
//!   when a label is given.
//!
//! Every error says where (line, item) and what was wrong, for the user.
//! [`Score`] counts a test's predictions.

mod score;

pub use score::{same, Score};
use serde_json::Value;

/// One example: what goes in, what should come out, and its label when
/// the example is a classification (`text`/`label`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub input: String,
    pub output: String,
    pub label: Option<String>,
}

/// How a text is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    JsonLines,
    Json,
    Csv,
    Text,
}

impl Format {
    /// From a file name's extension, else from the first character.
    pub fn guess(filename: Option<&str>, text: &str) -> Format {
        let extension = filename.and_then(|n| n.rsplit_once('.')).map(|(_, e)| e.to_ascii_lowercase());
        match extension.as_deref() {
            Some("jsonl" | "ndjson") => Format::JsonLines,
            Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some("txt" | "text" | "md") => Format::Text,
            _ => match text.trim_start().chars().next() {
                Some('[') => Format::Json,
                Some('{') => Format::JsonLines,
                _ => Format::Text,
            },
        }
    }
}

/// Reads every example of `text`. `label`, when given, labels every
/// example that has none (and makes plain text lines classification
/// examples).
pub fn parse(text: &str, format: Format, label: Option<&str>) -> Result<Vec<Example>, String> {
    let mut examples = match format {
        Format::JsonLines => parse_json_lines(text)?,
        Format::Json => parse_json(text)?,
        Format::Csv => parse_csv(text)?,
        Format::Text => parse_text(text, label)?,
    };
    if let Some(label) = label {
        for e in &mut examples {
            if e.label.is_none() {
                e.label = Some(label.to_string());
                if e.output.is_empty() {
                    e.output = label.to_string();
                }
            }
        }
    }
    if let Some(at) = examples.iter().position(|e| e.output.trim().is_empty()) {
        return Err(format!("Example {} has no answer or label.", at + 1));
    }
    Ok(examples)
}

fn parse_json_lines(text: &str) -> Result<Vec<Example>, String> {
    let mut examples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| format!("Line {} is not valid JSON: {e}.", n + 1))?;
        examples.push(from_value(&value).map_err(|why| format!("Line {}: {why}", n + 1))?);
    }
    Ok(examples)
}

fn parse_json(text: &str) -> Result<Vec<Example>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("That is not valid JSON: {e}."))?;
    let items = match &value {
        Value::Array(items) => items.as_slice(),
        Value::Object(_) => std::slice::from_ref(&value),
        _ => return Err("The JSON should be a list of examples.".to_string()),
    };
    items.iter().enumerate().map(|(n, item)| from_value(item).map_err(|why| format!("Item {}: {why}", n + 1))).collect()
}

/// One object, in any of the accepted shapes.
pub fn from_value(value: &Value) -> Result<Example, String> {
    let Value::Object(object) = value else {
        return Err("each example should be an object.".to_string());
    };
    if let Some(Value::Array(messages)) = object.get("messages") {
        return from_chat(messages);
    }
    let field = |names: &[&str]| names.iter().find_map(|n| object.get(*n)).map(text_of);
    let input = field(&["input", "prompt", "question", "text"]);
    let output = field(&["expected", "output", "completion", "answer"]);
    let label = field(&["label"]);
    match (input, output, label) {
        (Some(input), Some(output), label) => Ok(Example { input, output, label }),
        (Some(input), None, Some(label)) => Ok(Example { input, output: label.clone(), label: Some(label) }),
        (Some(input), None, None) => Ok(Example { input, output: String::new(), label: None }),
        (None, ..) => Err("it has no `input` (or `prompt`, `question`, `text`).".to_string()),
    }
}

fn from_chat(messages: &[Value]) -> Result<Example, String> {
    let role = |m: &Value| m.get("role").and_then(Value::as_str).unwrap_or_default().to_string();
    let content = |m: &Value| m.get("content").map(text_of).unwrap_or_default();
    let answer = messages.iter().rposition(|m| role(m) == "assistant");
    let question = answer.and_then(|a| messages[..a].iter().rposition(|m| role(m) == "user"));
    match (question, answer) {
        (Some(q), Some(a)) => Ok(Example { input: content(&messages[q]), output: content(&messages[a]), label: None }),
        _ => Err("`messages` needs a user message followed by an assistant message.".to_string()),
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_csv(text: &str) -> Result<Vec<Example>, String> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("The CSV header cannot be read: {e}."))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let mut examples = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("CSV row {} cannot be read: {e}.", n + 2))?;
        let object: serde_json::Map<String, Value> =
            headers.iter().zip(record.iter()).map(|(h, v)| (h.clone(), Value::String(v.to_string()))).collect();
        examples.push(from_value(&Value::Object(object)).map_err(|why| format!("CSV row {}: {why}", n + 2))?);
    }
    Ok(examples)
}

fn parse_text(text: &str, label: Option<&str>) -> Result<Vec<Example>, String> {
    let mut examples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let pair = ["|", "=>", "\t"].iter().find_map(|sep| line.split_once(sep));
        let example = match (pair, label) {
            (Some((q, a)), _) if !q.trim().is_empty() && !a.trim().is_empty() => {
                Example { input: q.trim().to_string(), output: a.trim().to_string(), label: None }
            }
            (_, Some(label)) => {
                Example { input: line.to_string(), output: label.to_string(), label: Some(label.to_string()) }
            }
            _ => {
                return Err(format!(
                    "Line {} has no answer: write `question | answer`, or give a label (`positive` or `negative`).",
                    n + 1
                ))
            }
        };
        examples.push(example);
    }
    Ok(examples)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any file in any format: examples or a reason, never a panic.
        #[test]
        fn fuzz_any_training_file_is_read_or_refused(text in "\\PC*", label in proptest::option::of("[a-z]{1,8}")) {
            for format in [Format::JsonLines, Format::Json, Format::Csv, Format::Text] {
                let _ = parse(&text, format, label.as_deref());
            }
            let _ = Format::guess(Some("x.jsonl"), &text);
        }

        /// JSON shaped like examples, with values of every kind.
        #[test]
        fn fuzz_json_lines_of_any_shape(lines in proptest::collection::vec(
            ("[a-z_]{1,10}", "\\PC{0,20}", proptest::bool::ANY), 0..6)
        ) {
            let text: String = lines
                .iter()
                .map(|(key, value, nested)| {
                    let value = if *nested { serde_json::json!([{ "role": key, "content": value }]) } else { serde_json::json!(value) };
                    format!("{}\n", serde_json::json!({ key.as_str(): value, "messages": value }))
                })
                .collect();
            let _ = parse(&text, Format::JsonLines, None);
            let _ = parse(&format!("[{}]", text.lines().collect::<Vec<_>>().join(",")), Format::Json, None);
        }
    }

    fn ex(input: &str, output: &str, label: Option<&str>) -> Example {
        Example { input: input.into(), output: output.into(), label: label.map(str::to_string) }
    }

    #[test]
    fn reads_every_json_shape() {
        let text = r#"{"messages":[{"role":"system","content":"be nice"},{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}
{"input":"a","expected":"b"}
{"prompt":"c","completion":"d"}

{"text":"great","label":"positive"}"#;
        let examples = parse(text, Format::JsonLines, None).unwrap();
        assert_eq!(
            examples,
            [
                ex("hi", "hello", None),
                ex("a", "b", None),
                ex("c", "d", None),
                ex("great", "positive", Some("positive"))
            ]
        );
        let list = parse(r#"[{"question":"q","answer":"a"}]"#, Format::Json, None).unwrap();
        assert_eq!(list, [ex("q", "a", None)]);
    }

    #[test]
    fn reads_csv_and_text() {
        let csv = "Input,Expected\n\"hello, there\",hi\nbye,see you\n";
        assert_eq!(
            parse(csv, Format::Csv, None).unwrap(),
            [ex("hello, there", "hi", None), ex("bye", "see you", None)]
        );
        let text = "what is rust? | a language\n\nsky colour => blue\n";
        assert_eq!(
            parse(text, Format::Text, None).unwrap(),
            [ex("what is rust?", "a language", None), ex("sky colour", "blue", None)]
        );
        let labelled = parse("I love it\nso good\n", Format::Text, Some("positive")).unwrap();
        assert_eq!(labelled[1], ex("so good", "positive", Some("positive")));
    }

    #[test]
    fn errors_say_where() {
        assert_eq!(
            parse("{\"input\":\"a\",\"expected\":\"b\"}\n{oops", Format::JsonLines, None).unwrap_err(),
            "Line 2 is not valid JSON: key must be a string at line 1 column 2."
        );
        assert!(parse("[1]", Format::Json, None).unwrap_err().starts_with("Item 1:"));
        assert!(parse("just words", Format::Text, None).unwrap_err().starts_with("Line 1 has no answer"));
        assert_eq!(parse(r#"[{"input":"x"}]"#, Format::Json, None).unwrap_err(), "Example 1 has no answer or label.");
    }

    #[test]
    fn guesses_formats() {
        assert_eq!(Format::guess(Some("a.JSONL"), ""), Format::JsonLines);
        assert_eq!(Format::guess(None, " [ {}]"), Format::Json);
        assert_eq!(Format::guess(Some("x.bin"), "hello"), Format::Text);
    }
}
