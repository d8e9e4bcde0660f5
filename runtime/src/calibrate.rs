//! `sandbot calibrate`: how the retrieval's thresholds are chosen, on an
//! operator's own data. It teaches a throwaway model the training file,
//! asks it every question of a development set (paraphrases with the
//! answer they should get, and unrelated questions with `"expected":
//! null`), and sweeps the acceptance threshold:
//!
//! - `min_similarity` is the lowest score at which at most `max_false` of
//!   the unrelated questions are answered with a taught fact, and at most
//!   `max_false` of the paraphrases with another fact than theirs;
//! - `near_similarity` is the lowest score at which at most
//!   `max_near_unrelated` of the unrelated questions would still reach the
//!   language model as context.
//!
//! The defaults in [`Scoring::calibrated`] came from running it on
//! `tests/data/community/` (see `docs/model.md`).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sandbot_examples::{parse, same, Format};

use crate::services::model::knowledge::Knowledge;
use crate::services::model::retrieval::Scoring;
use crate::services::model::{new_job_id, Example, JobRecord, Scope};
use crate::services::store::{SqliteStore, Store};

/// One question of a development or test set, as the model saw it.
#[derive(Debug, Clone)]
pub struct Asked {
    pub question: String,
    /// `None`: the bot should say it does not know.
    pub expected: Option<String>,
    /// The best entry's score and answer.
    pub best: Option<(f32, String)>,
    /// The best score of an entry with the expected answer and no missing
    /// names (the fact that would reach the language model), if any.
    pub expected_near: Option<f32>,
    /// The best score of any entry without missing names.
    pub any_near: Option<f32>,
}

/// The figures at one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub paraphrases: usize,
    pub unrelated: usize,
    /// Paraphrases answered with their fact.
    pub right: usize,
    /// Paraphrases answered with another fact.
    pub wrong: usize,
    /// Unrelated questions answered with a taught fact.
    pub false_answers: usize,
}

impl Figures {
    pub fn at(asked: &[Asked], accept: f32) -> Figures {
        let mut f = Figures { paraphrases: 0, unrelated: 0, right: 0, wrong: 0, false_answers: 0 };
        for a in asked {
            let answered = a.best.as_ref().filter(|(score, _)| *score >= accept).map(|(_, answer)| answer);
            match (&a.expected, answered) {
                (Some(_), _) => f.paraphrases += 1,
                (None, _) => f.unrelated += 1,
            }
            match (&a.expected, answered) {
                (Some(expected), Some(answer)) if same(expected, answer) => f.right += 1,
                (Some(_), Some(_)) => f.wrong += 1,
                (None, Some(_)) => f.false_answers += 1,
                (_, None) => {}
            }
        }
        f
    }

    /// Answers given that were wrong, as a share of all questions.
    pub fn false_rate(&self) -> f32 {
        let total = (self.paraphrases + self.unrelated).max(1);
        (self.wrong + self.false_answers) as f32 / total as f32
    }

    pub fn right_rate(&self) -> f32 {
        self.right as f32 / self.paraphrases.max(1) as f32
    }

    pub fn false_answer_rate(&self) -> f32 {
        self.false_answers as f32 / self.unrelated.max(1) as f32
    }
}

/// Reads a training file (JSONL, JSON, CSV or text) into examples.
pub fn read_examples(path: &Path) -> anyhow::Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let format = Format::guess(path.file_name().and_then(|n| n.to_str()), &text);
    let examples = parse(&text, format, None).map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
    Ok(examples.into_iter().map(|e| Example { input: e.input, output: e.output, label: e.label }).collect())
}

/// Reads a development or test set: a JSON list of `{"input", "expected"}`,
/// `expected` null for questions the bot should not know.
pub fn read_questions(path: &Path) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let items: Vec<serde_json::Value> =
        serde_json::from_str(&text).with_context(|| format!("{} is not a JSON list", path.display()))?;
    items
        .iter()
        .enumerate()
        .map(|(n, item)| {
            let input = item["input"].as_str().with_context(|| format!("item {} has no `input`", n + 1))?;
            let expected = match &item["expected"] {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                other => anyhow::bail!("item {}: `expected` is {other}, not a text or null", n + 1),
            };
            Ok((input.to_string(), expected))
        })
        .collect()
}

/// A model taught `examples` in a temporary store.
pub async fn teach(
    examples: Vec<Example>,
    embeddings: Option<&Path>,
    scoring: Scoring,
) -> anyhow::Result<(Knowledge, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("calibrate.db"))?);
    let job = JobRecord {
        id: new_job_id(),
        provider: "embedded".into(),
        status: "succeeded".into(),
        detail: None,
        examples: examples.len() as u32,
    };
    store.create_job(job, &Scope::global(), examples).await?;
    let knowledge = Knowledge::open(store, embeddings, scoring).await?;
    Ok((knowledge, dir))
}

/// Asks every question; what the model found for each.
pub async fn ask(knowledge: &Knowledge, questions: &[(String, Option<String>)]) -> anyhow::Result<Vec<Asked>> {
    let mut out = Vec::with_capacity(questions.len());
    for (question, expected) in questions {
        let (found, _) = knowledge.search(&Scope::global(), question).await?;
        let best = found.first().map(|f| (f.hit.score, f.entry().answer.clone()));
        let usable = found.iter().filter(|f| f.hit.missing_names.is_empty());
        let any_near = usable.clone().map(|f| f.hit.score).reduce(f32::max);
        let expected_near = expected
            .as_ref()
            .and_then(|e| usable.filter(|f| same(e, &f.entry().answer)).map(|f| f.hit.score).reduce(f32::max));
        out.push(Asked { question: question.clone(), expected: expected.clone(), best, expected_near, any_near });
    }
    Ok(out)
}

/// Every question's best `n` entries, as JSON lines: what the score is
/// made of, for looking into a miss.
pub async fn hits(knowledge: &Knowledge, questions: &[(String, Option<String>)], n: usize) -> anyhow::Result<String> {
    let mut out = String::new();
    for (question, expected) in questions {
        let (found, _) = knowledge.search(&Scope::global(), question).await?;
        let best: Vec<serde_json::Value> = found
            .iter()
            .take(n)
            .map(|f| {
                serde_json::json!({
                    "question": f.entry().question,
                    "answer": f.entry().answer,
                    "score": f.hit.score,
                    "meaning": f.hit.meaning,
                    "words": f.hit.words,
                    "missing_names": f.hit.missing_names,
                    "wrong_kind": f.hit.wrong_kind,
                })
            })
            .collect();
        let line = serde_json::json!({ "input": question, "expected": expected, "hits": best });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    Ok(out)
}

/// The thresholds the development set calls for.
pub fn choose(asked: &[Asked], max_false: f32, max_near_unrelated: f32) -> (f32, f32) {
    let steps = || (20..=95).map(|s| s as f32 / 100.0);
    let accept = steps()
        .find(|&t| {
            let f = Figures::at(asked, t);
            f.false_answers as f32 <= max_false * f.unrelated as f32
                && f.wrong as f32 <= max_false * f.paraphrases as f32
        })
        .unwrap_or(0.95);
    let unrelated: Vec<&Asked> = asked.iter().filter(|a| a.expected.is_none()).collect();
    let near = steps()
        .filter(|&t| t <= accept)
        .find(|&t| {
            let reaching = unrelated.iter().filter(|a| a.any_near.is_some_and(|s| s >= t && s < accept)).count();
            reaching as f32 <= max_near_unrelated * unrelated.len().max(1) as f32
        })
        .unwrap_or(accept);
    (accept, near)
}

/// The sweep as a table, one row per threshold.
pub fn table(asked: &[Asked]) -> String {
    let mut out = String::from("threshold  right  wrong  false-answers  false-rate\n");
    for t in (30..=90).step_by(2).map(|s| s as f32 / 100.0) {
        let f = Figures::at(asked, t);
        out.push_str(&format!(
            "{t:>9.2}  {:>4.0}%  {:>5}  {:>13}  {:>9.1}%\n",
            100.0 * f.right_rate(),
            f.wrong,
            f.false_answers,
            100.0 * f.false_rate()
        ));
    }
    out
}

/// The questions not answered as expected at `accept`, one a line.
pub fn misses(asked: &[Asked], accept: f32) -> String {
    let mut out = String::new();
    for a in asked {
        let answered = a.best.as_ref().filter(|(s, _)| *s >= accept).map(|(_, answer)| answer);
        let right = match (&a.expected, answered) {
            (Some(e), Some(answer)) => same(e, answer),
            (None, None) => true,
            _ => false,
        };
        if !right {
            let (score, answer) = a.best.clone().unwrap_or((0.0, String::new()));
            let kind = if a.expected.is_some() { "paraphrase" } else { "unrelated " };
            out.push_str(&format!("  {kind} {score:.2} “{}” → “{answer}”\n", a.question));
        }
    }
    out
}

/// Reaching the language model: paraphrases whose fact is in the near
/// band, unrelated questions that reach it at all.
pub fn near_figures(asked: &[Asked], near: f32, accept: f32) -> (usize, usize) {
    let band = |s: &Option<f32>| s.is_some_and(|s| s >= near && s < accept);
    let answered = |a: &Asked| a.best.as_ref().is_some_and(|(s, _)| *s >= accept);
    let paraphrases = asked.iter().filter(|a| a.expected.is_some() && !answered(a) && band(&a.expected_near)).count();
    let unrelated = asked.iter().filter(|a| a.expected.is_none() && !answered(a) && band(&a.any_near)).count();
    (paraphrases, unrelated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(expected: Option<&str>, best: (f32, &str)) -> Asked {
        Asked {
            question: "q".into(),
            expected: expected.map(str::to_string),
            best: Some((best.0, best.1.to_string())),
            expected_near: None,
            any_near: Some(best.0),
        }
    }

    #[test]
    fn the_threshold_is_the_lowest_with_few_false_answers() {
        let set = [
            asked(Some("a"), (0.9, "a")),
            asked(Some("b"), (0.5, "b")),
            asked(Some("c"), (0.45, "x")),
            asked(None, (0.6, "a")),
            asked(None, (0.3, "b")),
        ];
        let f = Figures::at(&set, 0.5);
        assert_eq!((f.right, f.wrong, f.false_answers), (2, 0, 1));
        // Nothing false at or above 0.61; below, the unrelated one is answered.
        let (accept, _) = choose(&set, 0.0, 1.0);
        assert!((accept - 0.61).abs() < 1e-6, "{accept}");
        // Allowing half of each to go wrong lowers it to just above the
        // second unrelated question.
        let (accept, _) = choose(&set, 0.5, 1.0);
        assert!((accept - 0.31).abs() < 1e-6, "{accept}");
    }
}
