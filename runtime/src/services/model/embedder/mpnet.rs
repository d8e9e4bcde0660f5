//! MPNet, the architecture of all-mpnet-base-v2, which candle does not
//! ship: BERT's layers, with a bias by relative position (T5's buckets,
//! one table shared by every layer) added to each attention score, and
//! absolute positions counted RoBERTa's way (from the padding id, real
//! tokens only). Follows Hugging Face's `modeling_mpnet.py`.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

/// The fields of the model's `config.json` that the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "padding")]
    pub pad_token_id: u32,
}

fn buckets() -> usize {
    32
}

fn padding() -> u32 {
    1
}

/// The distance at which every larger one shares the last bucket
/// (`modeling_mpnet.py`'s `max_distance`).
const MAX_DISTANCE: usize = 128;

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl Layer {
    fn load(vb: VarBuilder, c: &Config) -> Result<Layer> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let attention = vb.pp("attention");
        let attn = attention.pp("attn");
        Ok(Layer {
            query: linear(h, h, attn.pp("q"))?,
            key: linear(h, h, attn.pp("k"))?,
            value: linear(h, h, attn.pp("v"))?,
            out: linear(h, h, attn.pp("o"))?,
            attention_norm: layer_norm(h, c.layer_norm_eps, attention.pp("LayerNorm"))?,
            intermediate: linear(h, i, vb.pp("intermediate").pp("dense"))?,
            output: linear(i, h, vb.pp("output").pp("dense"))?,
            output_norm: layer_norm(h, c.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
        })
    }

    /// `bias`: (batch, heads, tokens, tokens), positions and padding.
    fn forward(&self, x: &Tensor, bias: &Tensor, heads: usize) -> Result<Tensor> {
        let (batch, tokens, hidden) = x.dims3()?;
        let head = hidden / heads;
        let split = |t: Tensor| t.reshape((batch, tokens, heads, head))?.transpose(1, 2)?.contiguous();
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? / (head as f64).sqrt())?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((batch, tokens, hidden))?;
        let x = self.attention_norm.forward(&(self.out.forward(&context)? + x)?)?;
        let inner = self.intermediate.forward(&x)?.gelu_erf()?;
        self.output_norm.forward(&(self.output.forward(&inner)? + x)?)
    }
}

pub struct MpNet {
    words: Embedding,
    positions: Embedding,
    norm: LayerNorm,
    relative: Embedding,
    layers: Vec<Layer>,
    heads: usize,
    buckets: usize,
    pad: u32,
}

impl MpNet {
    pub fn load(vb: VarBuilder, c: &Config) -> Result<MpNet> {
        let e = vb.pp("embeddings");
        let encoder = vb.pp("encoder");
        let layers =
            (0..c.num_hidden_layers).map(|i| Layer::load(encoder.pp("layer").pp(i), c)).collect::<Result<_>>()?;
        Ok(MpNet {
            words: embedding(c.vocab_size, c.hidden_size, e.pp("word_embeddings"))?,
            positions: embedding(c.max_position_embeddings, c.hidden_size, e.pp("position_embeddings"))?,
            norm: layer_norm(c.hidden_size, c.layer_norm_eps, e.pp("LayerNorm"))?,
            relative: embedding(
                c.relative_attention_num_buckets,
                c.num_attention_heads,
                encoder.pp("relative_attention_bias"),
            )?,
            layers,
            heads: c.num_attention_heads,
            buckets: c.relative_attention_num_buckets,
            pad: c.pad_token_id,
        })
    }

    /// The last hidden states, (batch, tokens, hidden), of `ids` whose
    /// `mask` is 1 on real tokens and 0 on padding; both (batch, tokens).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, tokens) = ids.dims2()?;
        let real = mask.to_dtype(DType::F32)?;
        // Real tokens count up from the padding id + 1; padding stays at it.
        let positions = ((real.cumsum(1)? * &real)? + f64::from(self.pad))?.to_dtype(DType::U32)?;
        let x = (self.words.forward(ids)? + self.positions.forward(&positions)?)?;
        let mut x = self.norm.forward(&x)?;
        let distance: Vec<u32> = (0..tokens)
            .flat_map(|query| (0..tokens).map(move |key| bucket(key as i64 - query as i64, self.buckets)))
            .collect();
        let distance = Tensor::from_vec(distance, (tokens, tokens), ids.device())?;
        // (tokens, tokens, heads) → (1, heads, tokens, tokens)
        let by_position = self.relative.forward(&distance)?.permute((2, 0, 1))?.unsqueeze(0)?;
        // Padding gets no attention: a large negative score before softmax.
        let padding = ((real - 1.0)? * 1e4)?.unsqueeze(1)?.unsqueeze(1)?;
        let bias = by_position.broadcast_add(&padding)?.contiguous()?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, self.heads)?;
        }
        Ok(x)
    }
}

/// The bucket of a key `relative` tokens after the query: exact for near
/// keys, logarithmic out to [`MAX_DISTANCE`], one half for each side.
fn bucket(relative: i64, buckets: usize) -> u32 {
    let half = buckets / 2;
    let n = -relative;
    let side = if n < 0 { half } else { 0 };
    let n = n.unsigned_abs() as usize;
    let exact = half / 2;
    let within = if n < exact {
        n
    } else {
        let log = (n as f64 / exact as f64).ln() / (MAX_DISTANCE as f64 / exact as f64).ln();
        (exact + (log * (half - exact) as f64) as usize).min(half - 1)
    };
    (side + within) as u32
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_match_the_reference() {
        // modeling_mpnet.py's relative_position_bucket, 32 buckets.
        let cases = [(0, 0), (1, 17), (-1, 1), (7, 23), (-7, 7), (8, 24), (-8, 8), (20, 26), (-20, 10), (127, 31)];
        for (relative, want) in cases {
            assert_eq!(bucket(relative, 32), want, "relative {relative}");
        }
        assert_eq!(bucket(-1000, 32), 15);
    }
}
