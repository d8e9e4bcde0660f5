//! What the bot was taught, found by meaning and by words.
//!
//! Every taught entry (a trained example or a correction) has two sentence
//! vectors, its question's and its answer's, and its words in a BM25
//! index. A query is compared with the entries that either finds:
//!
//! - *meaning*: the cosine with the entry's question, or the mean of that
//!   and the cosine with its answer when that is higher (a question can be
//!   asked about the answer's words: "what is the Wick?");
//! - *words*: the share of the query's content words, weighted by their
//!   rarity, that the entry contains (stemmed, typos forgiven);
//! - *names*: a name or number in the query (capitalised mid-sentence, a
//!   digit, an acronym, or a word no dictionary knows) that the entry does
//!   not contain. "Who founded Stonebrook?" means something else than
//!   "Who founded Lanternmoor?", however close the two sentences' vectors.
//! - *kind*: whether the entry gives the kind of answer the query asks
//!   for (a time for "when", a number for "how many"; see [`kind`]).
//!
//! [`Scoring`] folds the four into one score; its thresholds were
//! calibrated on a development set (`tests/data/community/dev.json`, see
//! `docs/model.md`).

mod kind;
mod vectors;
mod words;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub use vectors::dot;
use vectors::{Quantised, Rows};
use words::Lexicon;
pub use words::{contains_term, names_in, terms};

/// One thing the bot can say, and the question that leads to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub question: String,
    pub answer: String,
    /// Corrections outrank trained examples.
    pub correction: bool,
    /// A classification example: its answer is a label, not a sentence.
    pub labelled: bool,
}

/// How close a query is to one entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The entry's position in [`Index::entries`].
    pub entry: usize,
    pub score: f32,
    pub meaning: f32,
    pub words: f32,
    /// Names in the query that the entry lacks.
    pub missing_names: Vec<String>,
    /// The entry does not give the kind of answer asked for ("when…?"
    /// answered without a time).
    pub wrong_kind: bool,
}

/// The weights and thresholds of the score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scoring {
    /// How much the share of shared words counts beside the meaning.
    pub words_weight: f32,
    /// Taken off for each name of the query that the entry lacks.
    pub name_penalty: f32,
    /// Taken off when the entry does not give the kind of answer asked for.
    pub kind_penalty: f32,
    /// At or above: the taught answer is the answer.
    pub accept: f32,
    /// At or above (and under `accept`): near enough to give the language
    /// model as context.
    pub near: f32,
    /// At or above: named as the nearest taught question when the bot does
    /// not know.
    pub hint: f32,
}

impl Default for Scoring {
    /// Calibrated on the development set for all-MiniLM-L6-v2 (and used
    /// without embeddings); see `docs/model.md`.
    fn default() -> Self {
        Scoring { words_weight: 0.2, name_penalty: 0.5, kind_penalty: 0.25, accept: 0.52, near: 0.4, hint: 0.3 }
    }
}

impl Scoring {
    /// The calibrated defaults for the embedding model of this
    /// architecture (`config.json`'s `model_type`): each model has its own
    /// scale of cosines.
    pub fn calibrated(architecture: Option<&str>) -> Scoring {
        match architecture {
            // all-mpnet-base-v2: same rule, same development set.
            Some("mpnet") => Scoring { accept: 0.44, ..Scoring::default() },
            _ => Scoring::default(),
        }
    }

    pub fn score(&self, meaning: f32, words: f32, missing_names: usize, wrong_kind: bool) -> f32 {
        meaning + self.words_weight * (words - 0.5)
            - self.name_penalty * missing_names as f32
            - if wrong_kind { self.kind_penalty } else { 0.0 }
    }
}

/// Candidates taken from each ranking (question vectors, answer vectors,
/// BM25) before they are scored together.
const CANDIDATES: usize = 8;

/// An entry and the texts it is found by, each with its vector.
#[derive(Debug, Clone)]
pub struct Indexed {
    pub entry: Entry,
    /// The question, then other phrasings of it (see [`home_name`]).
    pub keys: Vec<(String, Vec<f32>)>,
    pub answer: Vec<f32>,
}

/// Where [`Index::texts`] found a text's vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Key(usize),
    Answer(usize),
}

/// The index over every entry. Built whole when something is learned;
/// vectors come from the embedding cache, so a rebuild embeds only what
/// is new.
pub struct Index {
    entries: Vec<Entry>,
    /// One row a key; `key_owner` says whose (ascending).
    keys: Rows,
    key_owner: Vec<u32>,
    /// The text of each key after an entry's first (its question).
    key_texts: Vec<String>,
    /// One row an entry.
    answers: Rows,
    /// The words of each entry's question and answer.
    lexicon: Lexicon,
    /// Everyday words (lower case): a word outside it, and outside what
    /// was taught, is probably a name.
    dictionary: Arc<HashSet<String>>,
    /// Whether the vectors mean anything; without them, meaning is
    /// judged by the shared words alone.
    semantic: bool,
    /// The length of the vectors (the embedding model's).
    dim: usize,
    /// The community's own name ([`home_name`]) and its stem.
    home: Option<(String, String)>,
}

impl Index {
    /// The index of `indexed`, whose vectors have `dim` values (a missing
    /// one counts as zeros).
    pub fn build(indexed: Vec<Indexed>, dictionary: Arc<HashSet<String>>, dim: usize) -> Index {
        let mut entries = Vec::with_capacity(indexed.len());
        let mut keys = Rows::with_capacity(dim, indexed.len());
        let mut key_owner = Vec::with_capacity(indexed.len());
        let mut key_texts = Vec::new();
        let mut answers = Rows::with_capacity(dim, indexed.len());
        for (i, item) in indexed.into_iter().enumerate() {
            for (k, (text, vector)) in item.keys.into_iter().enumerate() {
                keys.push(&vector);
                key_owner.push(i as u32);
                key_texts.push(if k == 0 { String::new() } else { text });
            }
            answers.push(&item.answer);
            entries.push(item.entry);
        }
        let texts: Vec<String> = entries.iter().map(|e: &Entry| format!("{} {}", e.question, e.answer)).collect();
        let lexicon = Lexicon::build(texts.iter().map(String::as_str));
        Index { entries, keys, key_owner, key_texts, answers, lexicon, dictionary, semantic: true, dim, home: None }
    }

    /// Marks the vectors as meaningless (no embedding model): candidates
    /// then come from BM25, and shared words stand in for meaning.
    pub fn semantic(mut self, semantic: bool) -> Index {
        self.semantic = semantic;
        self
    }

    /// The community's own name, whose questions were indexed with
    /// aliases too: a query that names it is read the same way.
    pub fn home(mut self, home: Option<String>) -> Index {
        self.home = home.and_then(|name| Some((terms(&name).into_iter().next()?, name)));
        self
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every text the index holds a vector for, and where: for the next
    /// rebuild, which embeds only what is new.
    pub fn texts(&self) -> impl Iterator<Item = (&str, Slot)> {
        let keys = (0..self.keys.len()).map(|row| {
            let text = &self.key_texts[row];
            let text =
                if text.is_empty() { self.entries[self.key_owner[row] as usize].question.as_str() } else { text };
            (text, Slot::Key(row))
        });
        let answers = self.entries.iter().enumerate().map(|(i, e)| (e.answer.as_str(), Slot::Answer(i)));
        keys.chain(answers)
    }

    /// The vector in `slot`.
    pub fn vector(&self, slot: Slot) -> Vec<f32> {
        match slot {
            Slot::Key(row) => self.keys.get(row),
            Slot::Answer(i) => self.answers.get(i),
        }
    }

    /// `text` with typos of taught words mended, for embedding; the
    /// community's own name, which says nothing of what is asked about
    /// it, reads "this server" as in the indexed aliases.
    pub fn mend(&self, text: &str) -> String {
        let mended = self.lexicon.mend(text, &self.dictionary);
        match &self.home {
            Some((_, name)) => aliases(&mended, name).into_iter().next().unwrap_or(mended),
            None => mended,
        }
    }

    /// Whether `term` (stemmed) is the community's own name: every entry
    /// is about it, so it tells no entry apart, and it is no name an
    /// entry can lack ("Does Harbourlight have a mascot?").
    fn is_home(&self, term: &str) -> bool {
        self.home.as_ref().is_some_and(|(stem, _)| stem == term)
    }

    /// Whether the taught texts have the (stemmed) word.
    pub fn knows(&self, term: &str) -> bool {
        self.lexicon.knows(term)
    }

    /// The entries nearest to `query` (whose vector is `vector`), best
    /// first, with their scores.
    pub fn search(&self, query: &str, vector: &[f32], scoring: &Scoring) -> Vec<Hit> {
        if self.entries.is_empty() || (self.semantic && vector.len() != self.dim) {
            return Vec::new();
        }
        let quantised = Quantised::new(vector, self.dim);
        let query_terms: Vec<String> = terms(query).into_iter().filter(|t| !self.is_home(t)).collect();
        let mut candidates: Vec<usize> = Vec::new();
        // The best key of each entry, for those the vectors bring up.
        let mut best_key: HashMap<usize, f32> = HashMap::new();
        if self.semantic {
            for (row, s) in self.keys.top(&quantised, CANDIDATES * 2) {
                let best = best_key.entry(self.key_owner[row] as usize).or_insert(f32::MIN);
                *best = best.max(s);
            }
            candidates.extend(best_key.keys().copied());
            candidates.extend(self.answers.top(&quantised, CANDIDATES).into_iter().map(|(i, _)| i));
        }
        candidates.extend(self.lexicon.top(&query_terms, CANDIDATES).into_iter().map(|(i, _)| i));
        candidates.sort_unstable();
        candidates.dedup();

        let mut names = names_in(query, &self.dictionary, |t| self.lexicon.knows(t));
        names.retain(|n| !self.is_home(n));
        let asked = kind::asked(query);
        let mut hits: Vec<Hit> = candidates
            .into_iter()
            .map(|i| {
                let to_question = match best_key.get(&i) {
                    Some(&s) => s,
                    None => self.key_rows(i).map(|row| self.keys.dot(row, &quantised)).fold(f32::MIN, f32::max),
                };
                let to_answer = self.answers.dot(i, &quantised);
                let words = self.lexicon.shared(&query_terms, i);
                let meaning = if !self.semantic {
                    words
                } else if self.entries[i].labelled {
                    to_question
                } else {
                    to_question.max((to_question + to_answer) / 2.0)
                };
                let missing_names: Vec<String> = names.iter().filter(|n| !self.lexicon.has(i, n)).cloned().collect();
                let entry = &self.entries[i];
                let wrong_kind =
                    asked.is_some_and(|k| !entry.labelled && !kind::answers(&entry.question, &entry.answer, k));
                let score = scoring.score(meaning, words, missing_names.len(), wrong_kind);
                Hit { entry: i, score, meaning, words, missing_names, wrong_kind }
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        // Among near-ties, a correction wins: a user said so.
        if let Some(best) = hits.first().map(|h| h.score) {
            if let Some(at) = hits.iter().position(|h| self.entries[h.entry].correction && h.score >= best - 0.03) {
                let correction = hits.remove(at);
                hits.insert(0, correction);
            }
        }
        hits
    }

    /// The rows of entry `i`'s keys.
    fn key_rows(&self, i: usize) -> std::ops::Range<usize> {
        let start = self.key_owner.partition_point(|&o| (o as usize) < i);
        let end = self.key_owner.partition_point(|&o| (o as usize) <= i);
        start..end
    }
}

/// What the taught texts call the community itself ("Lanternmoor"): a
/// capitalised word no dictionary knows, in at least a tenth (and three)
/// of the entries. Users say "this server" for it, which a sentence
/// vector does not take for the name, so questions that name it get a
/// phrasing with "this server" and one with "this community" as well.
pub fn home_name(entries: &[Entry], dictionary: &HashSet<String>) -> Option<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for e in entries {
        let mut seen = HashSet::new();
        for word in
            e.question.split(|c: char| !c.is_alphanumeric()).chain(e.answer.split(|c: char| !c.is_alphanumeric()))
        {
            let capitalised = word.chars().next().is_some_and(char::is_uppercase) && word.chars().count() >= 3;
            if capitalised && !dictionary.contains(&word.to_lowercase()) && seen.insert(word) {
                *counts.entry(word).or_default() += 1;
            }
        }
    }
    let needed = (entries.len() / 10).max(3);
    counts
        .into_iter()
        .filter(|&(_, n)| n >= needed)
        .max_by_key(|&(w, n)| (n, std::cmp::Reverse(w)))
        .map(|(w, _)| w.to_string())
}

/// The other phrasings of `question` when it names `home`.
pub fn aliases(question: &str, home: &str) -> Vec<String> {
    let named = question.split(|c: char| !c.is_alphanumeric()).any(|w| w.eq_ignore_ascii_case(home));
    if !named {
        return Vec::new();
    }
    ["this server", "this community"]
        .iter()
        .map(|alias| {
            question
                .split_inclusive(|c: char| !c.is_alphanumeric())
                .map(|piece| {
                    let word = piece.trim_end_matches(|c: char| !c.is_alphanumeric());
                    if word.eq_ignore_ascii_case(home) {
                        format!("{alias}{}", &piece[word.len()..])
                    } else {
                        piece.to_string()
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dictionary() -> HashSet<String> {
        ["who", "what", "founded", "the", "server", "music", "bot", "capital"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_community_s_name_gets_other_phrasings() {
        let entry =
            |q: &str, a: &str| Entry { question: q.into(), answer: a.into(), correction: false, labelled: false };
        let entries = [
            entry("Who founded Lanternmoor?", "Ysolde Varga founded Lanternmoor."),
            entry("How big is Lanternmoor?", "About 4,200 members."),
            entry("When is game night?", "Thursdays, in Lanternmoor's Tabletop channel."),
            entry("What is the mascot?", "An owl named Pip."),
        ];
        let home = home_name(&entries, &dictionary()).unwrap();
        assert_eq!(home, "Lanternmoor");
        assert_eq!(
            aliases("Who founded Lanternmoor?", &home),
            ["Who founded this server?", "Who founded this community?"]
        );
        assert!(aliases("What is the mascot?", &home).is_empty());
        // Names that only a few entries share are not the community's.
        assert_eq!(home_name(&entries[..2], &dictionary()), None);
    }

    /// One vector for every text, so that only words, names and kinds
    /// tell the entries apart.
    fn same_vectors(questions: &[&str]) -> (Vec<Indexed>, Vec<f32>) {
        let mut vector = vec![0f32; 384];
        vector[0] = 1.0;
        let indexed = questions
            .iter()
            .map(|q| Indexed {
                entry: Entry { question: q.to_string(), answer: "yes".into(), correction: false, labelled: false },
                keys: vec![(q.to_string(), vector.clone())],
                answer: vector.clone(),
            })
            .collect();
        (indexed, vector)
    }

    #[test]
    fn a_name_the_entry_lacks_costs_its_score() {
        let (indexed, vector) = same_vectors(&["Who founded Lanternmoor?", "Who founded the music bot?"]);
        let index = Index::build(indexed, Arc::new(dictionary()), vector.len());
        let scoring = Scoring::default();
        let hits = index.search("Who founded Stonebrook?", &vector, &scoring);
        assert_eq!(hits.len(), 2);
        assert!(hits.iter().all(|h| h.missing_names == ["stonebrook"]), "{hits:?}");
        assert!(hits[0].score < hits[0].meaning - scoring.name_penalty + 0.2);
        let hits = index.search("who founded lanternmoor", &vector, &scoring);
        assert_eq!(index.entries()[hits[0].entry].question, "Who founded Lanternmoor?");
        assert!(hits[0].missing_names.is_empty());
    }

    #[test]
    fn the_community_s_own_name_is_read_as_this_server() {
        let (indexed, vector) = same_vectors(&["What is the mascot?", "How many members does Lanternmoor have?"]);
        let build = |home: Option<&str>| {
            Index::build(Vec::clone(&indexed), Arc::new(dictionary()), vector.len()).home(home.map(String::from))
        };
        let mascot = |index: &Index| {
            let hits = index.search("Does Lanternmoor have a mascot?", &vector, &Scoring::default());
            hits.into_iter().find(|h| h.entry == 0).unwrap()
        };
        // Unknown as the community's, the name is one the mascot lacks.
        assert_eq!(mascot(&build(None)).missing_names, ["lanternmoor"]);
        // Known, it is neither a missing name nor a word that sets the
        // members question apart.
        let home = build(Some("Lanternmoor"));
        let hit = mascot(&home);
        assert!(hit.missing_names.is_empty(), "{hit:?}");
        assert_eq!(hit.words, 1.0);
        assert_eq!(home.mend("does lanternmoor have a mascot"), "does this server have a mascot");
        assert_eq!(home.mend("what is the mascot"), "what is the mascot");
    }
}
