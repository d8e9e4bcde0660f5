//! A small local language model: SmolLM2-135M-Instruct (Q4_1 GGUF,
//! re-quantised to Q8_0 at load), run with candle on the CPU. The
//! embedded model asks it when retrieval finds nothing close enough.
//!
//! The GGUF file carries the tokenizer (byte-level BPE vocabulary and
//! merges), which is rebuilt here with the `tokenizers` crate; the chat
//! template is ChatML. Generation is greedy with a mild repeat penalty, so
//! the same question gets the same answer. One generation runs at a time
//! (the weights and their cache are one mutable state), on the blocking
//! pool.

use std::io::Seek;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::ModelWeights;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::Tokenizer;

use super::ModelError;

/// Most prompt tokens kept (the oldest turns go first).
const MAX_PROMPT_TOKENS: usize = 1024;
const REPEAT_PENALTY: f32 = 1.2;
/// How far back the repeat penalty looks.
const REPEAT_WINDOW: usize = 64;

/// Where the weights are and how to use them.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmSettings {
    pub path: PathBuf,
    /// Tokens generated at most per answer.
    pub max_tokens: usize,
}

pub struct LocalLlm {
    weights: Mutex<ModelWeights>,
    tokenizer: Tokenizer,
    im_start: u32,
    im_end: u32,
    eos: Option<u32>,
    settings: LlmSettings,
}

/// The model's tensors, with every Q4_1 matrix re-quantised to Q8_0, as
/// a GGUF file of its own (an unnamed temporary file: on disk, not in the
/// process's memory, while the weights are read back). candle multiplies
/// Q8_0 (and Q4_0) matrices with AVX2 or NEON when the CPU has them,
/// chosen at run time, but Q4_1, the format SmolLM2 ships in, only with a
/// scalar loop. Q8_0 keeps a Q4_1 block's values to within 1/254 of its
/// largest (Q4_1's own step is 1/15 of its range), so the answers barely
/// move; the matrices take ≈1.6× the memory.
fn with_fast_matrices(
    content: gguf_file::Content,
    file: &mut std::fs::File,
) -> candle_core::Result<(gguf_file::Content, std::fs::File)> {
    let mut tensors = Vec::with_capacity(content.tensor_infos.len());
    for name in content.tensor_infos.keys() {
        let tensor = content.tensor(file, name, &Device::Cpu)?;
        let fits = tensor.shape().dims().last().is_some_and(|d| d % GgmlDType::Q8_0.block_size() == 0);
        let tensor = match tensor.dtype() {
            GgmlDType::Q4_1 if fits => QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, GgmlDType::Q8_0)?,
            _ => tensor,
        };
        tensors.push((name.as_str(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut fast = std::io::BufWriter::new(tempfile::tempfile()?);
    {
        let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(name, tensor)| (*name, tensor)).collect();
        gguf_file::write(&mut fast, &metadata, &tensors)?;
    }
    // Only one copy of the weights in memory at a time.
    drop(tensors);
    let mut fast = fast.into_inner().map_err(|e| candle_core::Error::Io(e.into_error()))?;
    fast.seek(std::io::SeekFrom::Start(0))?;
    let content = gguf_file::Content::read(&mut fast)?;
    Ok((content, fast))
}

fn failed(what: &str) -> impl Fn(candle_core::Error) -> ModelError + '_ {
    move |e| ModelError::Failed(format!("{what}: {e}"))
}

impl LocalLlm {
    /// Reads the GGUF file: weights and tokenizer. Blocking; about half a
    /// second for the 135M model.
    pub fn load(settings: LlmSettings) -> Result<LocalLlm, ModelError> {
        let path = &settings.path;
        let mut file = std::fs::File::open(path).map_err(|e| {
            ModelError::Unavailable(format!(
                "the local language model {} cannot be opened ({e}); `make build` fetches it",
                path.display()
            ))
        })?;
        let content = gguf_file::Content::read(&mut file).map_err(failed("reading the GGUF header"))?;
        let (tokenizer, tokens) = tokenizer_from_gguf(&content)?;
        let id = |token: &str| tokens.get(token).copied();
        let (Some(im_start), Some(im_end)) = (id("<|im_start|>"), id("<|im_end|>")) else {
            return Err(ModelError::Failed("the model's vocabulary has no ChatML tokens".into()));
        };
        let eos = content.metadata.get("tokenizer.ggml.eos_token_id").and_then(|v| v.to_u32().ok());
        let (content, mut weights) = with_fast_matrices(content, &mut file).map_err(failed("loading the weights"))?;
        let weights =
            ModelWeights::from_gguf(content, &mut weights, &Device::Cpu).map_err(failed("loading the weights"))?;
        Ok(LocalLlm { weights: Mutex::new(weights), tokenizer, im_start, im_end, eos, settings })
    }

    pub fn path(&self) -> &Path {
        &self.settings.path
    }

    /// Text → token ids (no special tokens).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let encoding =
            self.tokenizer.encode(text, false).map_err(|e| ModelError::Failed(format!("tokenizing: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        self.tokenizer.decode(ids, true).map_err(|e| ModelError::Failed(format!("detokenizing: {e}")))
    }

    /// A ChatML prompt: the system prompt, earlier turns, the question.
    fn prompt(&self, system: &str, turns: &[(String, String)], question: &str) -> Result<Vec<u32>, ModelError> {
        let newline = self.encode("\n")?;
        let block = |role: &str, text: &str| -> Result<Vec<u32>, ModelError> {
            let mut ids = vec![self.im_start];
            ids.extend(self.encode(&format!("{role}\n{text}"))?);
            ids.push(self.im_end);
            ids.extend(&newline);
            Ok(ids)
        };
        let head = block("system", system)?;
        let mut tail = block("user", question)?;
        tail.push(self.im_start);
        tail.extend(self.encode("assistant\n")?);
        // Newest turns first, as many as fit.
        let mut middle: Vec<Vec<u32>> = Vec::new();
        let mut budget = MAX_PROMPT_TOKENS.saturating_sub(head.len() + tail.len());
        for (q, a) in turns.iter().rev() {
            let mut turn = block("user", q)?;
            turn.extend(block("assistant", a)?);
            if turn.len() > budget {
                break;
            }
            budget -= turn.len();
            middle.push(turn);
        }
        let mut ids = head;
        ids.extend(middle.into_iter().rev().flatten());
        ids.extend(tail);
        Ok(ids)
    }

    /// Answers `question` after the system prompt and `turns`. Blocking:
    /// run it off the async threads.
    pub fn generate(&self, system: &str, turns: &[(String, String)], question: &str) -> Result<String, ModelError> {
        self.generate_inner(system, turns, question, &AtomicBool::new(false), None)
    }

    /// [`generate`](Self::generate), stopping (with an error) once `cancel`
    /// is set: nobody waits for the answer any more.
    pub fn generate_until(
        &self,
        system: &str,
        turns: &[(String, String)],
        question: &str,
        cancel: &AtomicBool,
    ) -> Result<String, ModelError> {
        self.generate_inner(system, turns, question, cancel, None)
    }

    /// [`generate_until`](Self::generate_until), calling `written` with the
    /// answer so far after each token.
    pub fn generate_with(
        &self,
        system: &str,
        turns: &[(String, String)],
        question: &str,
        cancel: &AtomicBool,
        written: &mut dyn FnMut(&str),
    ) -> Result<String, ModelError> {
        self.generate_inner(system, turns, question, cancel, Some(written))
    }

    /// Without a listener, the answer is decoded once, at the end.
    fn generate_inner(
        &self,
        system: &str,
        turns: &[(String, String)],
        question: &str,
        cancel: &AtomicBool,
        mut written: Option<&mut dyn FnMut(&str)>,
    ) -> Result<String, ModelError> {
        let prompt = self.prompt(system, turns, question)?;
        let mut weights = self.weights.lock().unwrap_or_else(|p| p.into_inner());
        weights.clear_kv_cache();
        let mut sampler = LogitsProcessor::from_sampling(0, Sampling::ArgMax);
        let mut context = prompt.clone();
        let mut answer: Vec<u32> = Vec::new();
        let mut input = prompt;
        let mut position = 0;
        for _ in 0..self.settings.max_tokens {
            if cancel.load(Ordering::Relaxed) {
                return Err(ModelError::Unavailable("nobody waits for the answer any more".into()));
            }
            let tensor = Tensor::new(input.as_slice(), &Device::Cpu)
                .and_then(|t| t.unsqueeze(0))
                .map_err(failed("building the input"))?;
            let logits = weights.forward(&tensor, position).map_err(failed("running the model"))?;
            let logits = logits.squeeze(0).map_err(failed("reading the logits"))?;
            let recent = &context[context.len().saturating_sub(REPEAT_WINDOW)..];
            let logits = candle_transformers::utils::apply_repeat_penalty(&logits, REPEAT_PENALTY, recent)
                .map_err(failed("penalising repeats"))?;
            let next = sampler.sample(&logits).map_err(failed("choosing a token"))?;
            if next == self.im_end || Some(next) == self.eos {
                break;
            }
            position += input.len();
            answer.push(next);
            context.push(next);
            input = vec![next];
            if let Some(written) = written.as_mut() {
                written(self.decode(&answer)?.trim());
            }
        }
        Ok(self.decode(&answer)?.trim().to_string())
    }
}

/// The tokenizer stored in a GGUF file's metadata, and its vocabulary.
fn tokenizer_from_gguf(content: &gguf_file::Content) -> Result<(Tokenizer, Vocab), ModelError> {
    let strings = |key: &str| -> Result<Vec<String>, ModelError> {
        let value =
            content.metadata.get(key).ok_or_else(|| ModelError::Failed(format!("the GGUF file has no `{key}`")))?;
        let list = value.to_vec().map_err(failed(key))?;
        list.iter().map(|v| v.to_string().cloned().map_err(failed(key))).collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let merges: Vec<(String, String)> = strings("tokenizer.ggml.merges")?
        .into_iter()
        .filter_map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab.clone(), merges)
        .build()
        .map_err(|e| ModelError::Failed(format!("building the tokenizer: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);
    // SmolLM2's pre-tokenizer: single digits, then GPT-2's byte level.
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    Ok((tokenizer, vocab))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `make build` fetches the weights into `models/`.
    fn llm() -> LocalLlm {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(path.is_file(), "{} is missing: run `make test`, which fetches it", path.display());
        LocalLlm::load(LlmSettings { path, max_tokens: 24 }).unwrap()
    }

    #[test]
    fn q4_1_matrices_become_q8_0_with_their_values() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
        let mut file = std::fs::File::open(&path).expect("`make test` fetches the weights");
        let original = gguf_file::Content::read(&mut file).unwrap();
        let name = "blk.0.ffn_down.weight";
        let before = original.tensor(&mut file, name, &Device::Cpu).unwrap();
        assert_eq!(before.dtype(), GgmlDType::Q4_1);
        let count = original.tensor_infos.len();
        let (content, mut fast) = with_fast_matrices(original, &mut file).unwrap();
        let after = content.tensor(&mut fast, name, &Device::Cpu).unwrap();
        assert_eq!(after.dtype(), GgmlDType::Q8_0);
        assert_eq!(after.shape(), before.shape());
        let (before, after) = (before.dequantize(&Device::Cpu).unwrap(), after.dequantize(&Device::Cpu).unwrap());
        let error = (&after - &before).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let largest = before.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        // Within half a Q8_0 step of the block with the largest value.
        assert!(error <= largest / 254.0 + 1e-6, "off by {error} (largest value {largest})");
        assert_eq!(content.tensor_infos.len(), count, "a tensor was lost");
    }

    #[test]
    fn tokenizer_round_trips_text() {
        let llm = llm();
        let text = "Hello, world! Numbers 2026 and ünïcödé stay intact.\n  Indented.";
        let ids = llm.encode(text).unwrap();
        assert!(ids.len() > 5);
        assert_eq!(llm.decode(&ids).unwrap(), text);
    }

    /// With the matrices in Q8_0 the greedy answer keeps its first dozen
    /// tokens ("The capital of France, also known as Paris, is La Dame
    /// de"), then drifts from the Q4_1 one; both name Paris.
    #[test]
    fn generates_an_answer_in_words() {
        let llm = llm();
        let answer = llm.generate("You are a helpful assistant.", &[], "What is the capital of France?").unwrap();
        println!("answer: {answer}");
        assert!(!answer.is_empty());
        assert!(answer.contains("Paris"), "{answer}");
    }

    /// A caller whose deadline passed stops the writing at the next token.
    #[test]
    fn stops_when_nobody_waits() {
        let llm = llm();
        let gone = AtomicBool::new(true);
        let stopped = llm.generate_until("You are a helpful assistant.", &[], "What is the capital of France?", &gone);
        assert!(matches!(stopped, Err(ModelError::Unavailable(_))), "{stopped:?}");
    }
}
