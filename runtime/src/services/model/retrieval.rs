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
//!
//! [`Scoring`] folds the three into one score; its thresholds were
//! calibrated on a development set (`tests/data/community/dev.json`, see
//! `docs/model.md`).

use std::collections::{HashMap, HashSet};

use bm25::{Document, Language, SearchEngine, SearchEngineBuilder, Tokenizer};

use super::embedder::DIM;

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
}

/// The weights and thresholds of the score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scoring {
    /// How much the share of shared words counts beside the meaning.
    pub words_weight: f32,
    /// Taken off for each name of the query that the entry lacks.
    pub name_penalty: f32,
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
    /// Calibrated on the development set; see `docs/model.md`.
    fn default() -> Self {
        Scoring { words_weight: 0.2, name_penalty: 0.5, accept: 0.52, near: 0.4, hint: 0.3 }
    }
}

impl Scoring {
    pub fn score(&self, meaning: f32, words: f32, missing_names: usize) -> f32 {
        meaning + self.words_weight * (words - 0.5) - self.name_penalty * missing_names as f32
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

/// The index over every entry. Built whole when something is learned;
/// vectors come from the embedding cache, so a rebuild embeds only what
/// is new.
pub struct Index {
    entries: Vec<Entry>,
    /// Row-major, `DIM` floats a key; `key_owner` says whose.
    key_vectors: Vec<f32>,
    key_owner: Vec<u32>,
    /// The text of each key after an entry's first (its question).
    key_texts: Vec<String>,
    /// Row-major, `DIM` floats an entry.
    answer_vectors: Vec<f32>,
    bm25: SearchEngine<u32>,
    /// Each entry's stemmed content words (question and answer).
    terms: Vec<HashSet<String>>,
    /// In how many entries each stemmed word occurs.
    document_frequency: HashMap<String, u32>,
    words: bm25::DefaultTokenizer,
    /// Everyday words (lower case): a word outside it, and outside what
    /// was taught, is probably a name.
    dictionary: std::sync::Arc<HashSet<String>>,
    /// Whether the vectors mean anything; without them, meaning is
    /// judged by the shared words alone.
    semantic: bool,
}

impl Index {
    pub fn build(indexed: Vec<Indexed>, dictionary: std::sync::Arc<HashSet<String>>) -> Index {
        let words = bm25::DefaultTokenizer::new(Language::English);
        let mut entries = Vec::with_capacity(indexed.len());
        let mut key_vectors = Vec::with_capacity(indexed.len() * DIM);
        let mut key_owner = Vec::with_capacity(indexed.len());
        let mut key_texts = Vec::new();
        let mut answer_vectors = Vec::with_capacity(indexed.len() * DIM);
        for (i, item) in indexed.into_iter().enumerate() {
            for (k, (text, vector)) in item.keys.into_iter().enumerate() {
                key_vectors.extend(fit(vector));
                key_owner.push(i as u32);
                key_texts.push(if k == 0 { String::new() } else { text });
            }
            answer_vectors.extend(fit(item.answer));
            entries.push(item.entry);
        }
        let terms: Vec<HashSet<String>> = entries
            .iter()
            .map(|e| words.tokenize(&format!("{} {}", e.question, e.answer)).into_iter().collect())
            .collect();
        let mut document_frequency: HashMap<String, u32> = HashMap::new();
        for set in &terms {
            for term in set {
                *document_frequency.entry(term.clone()).or_default() += 1;
            }
        }
        let documents =
            entries.iter().enumerate().map(|(i, e)| Document::new(i as u32, format!("{} {}", e.question, e.answer)));
        let bm25 = SearchEngineBuilder::<u32>::with_documents(Language::English, documents).build();
        Index {
            entries,
            key_vectors,
            key_owner,
            key_texts,
            answer_vectors,
            bm25,
            terms,
            document_frequency,
            words,
            dictionary,
            semantic: true,
        }
    }

    /// Marks the vectors as meaningless (no embedding model): candidates
    /// then come from BM25, and shared words stand in for meaning.
    pub fn semantic(mut self, semantic: bool) -> Index {
        self.semantic = semantic;
        self
    }

    /// Every text the index holds a vector for, with the vector: for the
    /// next rebuild, which embeds only what is new.
    pub fn vectors(&self) -> impl Iterator<Item = (&str, &[f32])> {
        let keys = self.key_vectors.chunks_exact(DIM).zip(&self.key_owner).zip(&self.key_texts).map(
            |((vector, &owner), text)| {
                let text = if text.is_empty() { self.entries[owner as usize].question.as_str() } else { text.as_str() };
                (text, vector)
            },
        );
        let answers = self.entries.iter().map(|e| e.answer.as_str()).zip(self.answer_vectors.chunks_exact(DIM));
        keys.chain(answers)
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

    /// The entries nearest to `query` (whose vector is `vector`), best
    /// first, with their scores.
    pub fn search(&self, query: &str, vector: &[f32], scoring: &Scoring) -> Vec<Hit> {
        if self.entries.is_empty() || vector.len() != DIM {
            return Vec::new();
        }
        let mut candidates: Vec<usize> = Vec::new();
        // The best key of each entry, for those the vectors bring up.
        let mut best_key: HashMap<usize, f32> = HashMap::new();
        if self.semantic {
            for (row, s) in top_dot(&self.key_vectors, vector, CANDIDATES * 2) {
                let owner = self.key_owner[row] as usize;
                let best = best_key.entry(owner).or_insert(f32::MIN);
                *best = best.max(s);
            }
            candidates.extend(best_key.keys().copied());
            candidates.extend(top_dot(&self.answer_vectors, vector, CANDIDATES).into_iter().map(|(i, _)| i));
        }
        candidates.extend(self.bm25.search(query, CANDIDATES).into_iter().map(|r| r.document.id as usize));
        candidates.sort_unstable();
        candidates.dedup();

        let query_terms = self.words.tokenize(query);
        let names = names_in(query, &self.dictionary, &self.document_frequency);
        let mut hits: Vec<Hit> = candidates
            .into_iter()
            .map(|i| {
                let to_question = match best_key.get(&i) {
                    Some(&s) => s,
                    None => self.key_rows(i).map(|row| dot(row, vector)).fold(f32::MIN, f32::max),
                };
                let to_answer = dot(&self.answer_vectors[i * DIM..(i + 1) * DIM], vector);
                let words = self.shared_words(&query_terms, i);
                let meaning = if !self.semantic {
                    words
                } else if self.entries[i].labelled {
                    to_question
                } else {
                    to_question.max((to_question + to_answer) / 2.0)
                };
                let missing_names: Vec<String> =
                    names.iter().filter(|n| !contains_term(&self.terms[i], n)).cloned().collect();
                let score = scoring.score(meaning, words, missing_names.len());
                Hit { entry: i, score, meaning, words, missing_names }
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

    /// The vectors of entry `i`'s keys.
    fn key_rows(&self, i: usize) -> impl Iterator<Item = &[f32]> {
        let start = self.key_owner.partition_point(|&o| (o as usize) < i);
        let end = self.key_owner.partition_point(|&o| (o as usize) <= i);
        self.key_vectors[start * DIM..end * DIM].chunks_exact(DIM)
    }

    /// The share of the query's content words (weighted by rarity) that
    /// entry `i` contains.
    fn shared_words(&self, query_terms: &[String], i: usize) -> f32 {
        let n = self.entries.len() as f32;
        let weight = |term: &str| {
            let df = self.document_frequency.get(term).copied().unwrap_or(0) as f32;
            (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
        };
        let mut total = 0.0;
        let mut shared = 0.0;
        for term in query_terms {
            let w = weight(term);
            total += w;
            if contains_term(&self.terms[i], term) {
                shared += w;
            }
        }
        if total > 0.0 {
            shared / total
        } else {
            0.0
        }
    }
}

/// A vector of `DIM` floats: a missing one (no embedding model) is zeros.
fn fit(mut vector: Vec<f32>) -> Vec<f32> {
    vector.resize(DIM, 0.0);
    vector
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

/// `term` is among `terms`, or one of them differs only by a typo, or one
/// is the other's abbreviation ("mod", "moder").
pub(crate) fn contains_term(terms: &HashSet<String>, term: &str) -> bool {
    terms.contains(term) || terms.iter().any(|t| close(t, term))
}

fn close(a: &str, b: &str) -> bool {
    let (short, long) = if a.chars().count() <= b.chars().count() { (a, b) } else { (b, a) };
    let short_len = short.chars().count();
    if short_len >= 3 && long.starts_with(short) && long.chars().count() <= short_len * 2 + 1 {
        return true;
    }
    let allowed = match short_len {
        0..=4 => 0,
        5..=7 => 1,
        _ => 2,
    };
    allowed > 0 && edit_distance(a, b, allowed) <= allowed
}

/// Levenshtein distance with adjacent swaps, stopping early past `limit`.
fn edit_distance(a: &str, b: &str, limit: usize) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > limit {
        return limit + 1;
    }
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        let mut row_min = current[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1).min(current[j - 1] + 1).min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
            row_min = row_min.min(d);
        }
        if row_min > limit {
            return limit + 1;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The names and numbers of `text`, stemmed like the index's words: words
/// capitalised after the first, acronyms, words with digits, and words
/// neither the dictionary nor what was taught knows.
pub fn names_in(text: &str, dictionary: &HashSet<String>, taught: &HashMap<String, u32>) -> Vec<String> {
    let words = bm25::DefaultTokenizer::new(Language::English);
    let mut names = Vec::new();
    let mut first = true;
    // Apostrophes split words too: "who's" is "who" and "s", and a
    // contraction's tail is too short to name anything.
    for raw in text.split(|c: char| !c.is_alphanumeric()) {
        if raw.is_empty() {
            continue;
        }
        let was_first = std::mem::replace(&mut first, false);
        let lower = raw.to_lowercase();
        // Stop words, and words of one or two letters, name nothing.
        let Some(stem) = words.tokenize(&lower).into_iter().next() else { continue };
        if lower.chars().count() < 3 && !lower.chars().any(|c| c.is_ascii_digit()) {
            continue;
        }
        let capitalised = raw.chars().next().is_some_and(char::is_uppercase);
        let acronym = raw.chars().filter(|c| c.is_alphabetic()).count() >= 2 && raw.chars().all(|c| !c.is_lowercase());
        let digits = raw.chars().any(|c| c.is_ascii_digit());
        // A long word nobody knows, and no typo of a known one.
        let unknown = lower.chars().count() >= 5
            && !dictionary.contains(&lower)
            && !taught.contains_key(&stem)
            && !dictionary.iter().any(|d| d.len().abs_diff(lower.len()) <= 1 && edit_distance(d, &lower, 1) <= 1);
        if digits || acronym || (capitalised && !was_first) || unknown {
            names.push(stem);
        }
    }
    names.sort();
    names.dedup();
    names
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight lanes, so the compiler vectorises it.
    let mut lanes = [0f32; 8];
    let mut a8 = a.chunks_exact(8);
    let mut b8 = b.chunks_exact(8);
    for (x, y) in (&mut a8).zip(&mut b8) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// The `k` rows of `matrix` with the largest dot product with `vector`.
fn top_dot(matrix: &[f32], vector: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut top: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    for (i, row) in matrix.chunks_exact(DIM).enumerate() {
        let s = dot(row, vector);
        if top.len() < k || s > top[top.len() - 1].1 {
            let at = top.partition_point(|&(_, t)| t >= s);
            top.insert(at, (i, s));
            top.truncate(k);
        }
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dictionary() -> HashSet<String> {
        ["who", "what", "founded", "the", "server", "music", "bot", "capital"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn typos_and_abbreviations_are_close() {
        assert!(close("lanternmoor", "lanternmor"));
        assert!(close("moder", "mod"));
        assert!(close("recieve", "receive"));
        assert!(!close("stonebrook", "lanternmoor"));
        assert!(!close("cat", "car"), "short words must match exactly");
    }

    #[test]
    fn names_are_what_the_dictionary_and_the_taught_words_lack() {
        let taught: HashMap<String, u32> = [("lanternmoor".to_string(), 3)].into_iter().collect();
        let found = names_in("Who founded Stonebrook in 2019, NSFW?", &dictionary(), &taught);
        assert_eq!(found, ["2019", "nsfw", "stonebrook"]);
        // Lower case still counts when no dictionary knows the word.
        assert_eq!(names_in("who founded stonebrook", &dictionary(), &taught), ["stonebrook"]);
        // A taught name is still a name when capitalised mid-sentence.
        assert_eq!(names_in("Who founded Lanternmoor", &dictionary(), &taught), ["lanternmoor"]);
        assert!(names_in("who founded lanternmoor", &dictionary(), &taught).is_empty());
        // Nor a typo of a known word, nor a short word.
        assert!(names_in("whats the music bto", &dictionary(), &taught).is_empty());
        assert!(names_in("who's the founder's bot? what's", &dictionary(), &taught).is_empty());
        // The first word's capital says nothing.
        assert!(names_in("Server bot?", &dictionary(), &taught).is_empty());
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

    #[test]
    fn top_dot_keeps_the_best_rows_in_order() {
        let mut matrix = vec![0f32; DIM * 5];
        for (i, v) in [0.1, 0.9, 0.5, 0.7, 0.2].iter().enumerate() {
            matrix[i * DIM] = *v;
        }
        let mut query = vec![0f32; DIM];
        query[0] = 1.0;
        let top = top_dot(&matrix, &query, 3);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 3, 2]);
    }
}
