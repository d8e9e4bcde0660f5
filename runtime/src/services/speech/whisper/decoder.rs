//! Whisper's text decoder, with a cache of its own keys and values.
//!
//! candle's `TextDecoder` caches only cross-attention, so each step feeds
//! the whole sequence again: step *n* costs *n* tokens, and a sentence of
//! 40 tokens feeds 800. Here each layer keeps the keys and values of the
//! tokens already seen, and a step feeds only what is new (the prompt
//! once, then one token). The weights are candle's (same names, same
//! maths, after OpenAI's `model.py`).

use candle_core::{Result, Tensor, D};
use candle_nn::{embedding, layer_norm, linear, linear_no_bias, Embedding, LayerNorm, Linear, Module, VarBuilder};
use candle_transformers::models::whisper as w;

pub struct Decoder {
    token_embedding: Embedding,
    positional_embedding: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
    /// Tokens fed since [`Decoder::start`]: the position of the next one.
    fed: usize,
    /// Over this decoder's life (the tests read it).
    work: DecoderWork,
}

/// What the decoder has done: with the cache, each audio costs one step
/// per token and feeds the prompt once, then one token a step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecoderWork {
    /// Audio windows decoded.
    pub starts: usize,
    pub steps: usize,
    pub tokens_fed: usize,
}

struct Block {
    attn: Attention,
    attn_ln: LayerNorm,
    cross_attn: Attention,
    cross_attn_ln: LayerNorm,
    mlp_linear1: Linear,
    mlp_linear2: Linear,
    mlp_ln: LayerNorm,
    /// Self-attention keys and values so far, `(1, heads, seen, head_dim)`.
    cache: Option<(Tensor, Tensor)>,
    /// Cross-attention keys and values of this audio, computed once.
    audio: Option<(Tensor, Tensor)>,
}

struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    heads: usize,
}

const LN_EPS: f64 = 1e-5;

impl Decoder {
    /// Loads the weights under `model.decoder` (Hugging Face names).
    pub fn load(vb: VarBuilder, cfg: &w::Config) -> Result<Decoder> {
        let d = cfg.d_model;
        let vb = vb.pp("model.decoder");
        let token_embedding = embedding(cfg.vocab_size, d, vb.pp("embed_tokens"))?;
        let positional_embedding = vb.get((cfg.max_target_positions, d), "embed_positions.weight")?;
        let blocks = (0..cfg.decoder_layers)
            .map(|i| Block::load(d, cfg.decoder_attention_heads, vb.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let ln = layer_norm(d, LN_EPS, vb.pp("layer_norm"))?;
        Ok(Decoder { token_embedding, positional_embedding, blocks, ln, fed: 0, work: DecoderWork::default() })
    }

    /// Forgets the last audio and its tokens, and takes `features` (the
    /// encoder's output, `(1, positions, d_model)`) as the audio to attend to.
    pub fn start(&mut self, features: &Tensor) -> Result<()> {
        self.fed = 0;
        self.work.starts += 1;
        for block in &mut self.blocks {
            block.cache = None;
            let key = block.cross_attn.heads_of(&block.cross_attn.key.forward(features)?)?;
            let value = block.cross_attn.heads_of(&block.cross_attn.value.forward(features)?)?;
            block.audio = Some((key, value));
        }
        Ok(())
    }

    /// Feeds `tokens` (the ones after those already fed) and returns the
    /// logits for the token after the last, `(vocab,)`.
    pub fn step(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let n = tokens.len();
        let positions = self.positional_embedding.dim(0)?;
        if n == 0 || self.fed + n > positions {
            candle_core::bail!("{} tokens after {} do not fit the decoder's {positions} positions", n, self.fed);
        }
        let input = Tensor::new(tokens, self.positional_embedding.device())?.unsqueeze(0)?;
        let mut x =
            self.token_embedding.forward(&input)?.broadcast_add(&self.positional_embedding.narrow(0, self.fed, n)?)?;
        // Only a prompt of several tokens needs a mask: one new token may
        // attend to everything before it.
        let mask = if n > 1 { Some(causal_mask(n, self.fed, x.device())?) } else { None };
        for block in &mut self.blocks {
            x = block.forward(&x, mask.as_ref())?;
        }
        self.fed += n;
        self.work.steps += 1;
        self.work.tokens_fed += n;
        let last = self.ln.forward(&x.narrow(1, n - 1, 1)?)?.squeeze(0)?;
        last.matmul(&self.token_embedding.embeddings().t()?)?.squeeze(0)
    }

    /// Since the decoder was made. A sentence of *n* tokens after a prompt
    /// of *p* feeds *p + n*, where re-feeding would cost *p·n + n²/2*.
    pub fn work(&self) -> DecoderWork {
        self.work
    }
}

/// `-inf` where query `i` (at position `past + i`) would see a later key.
fn causal_mask(n: usize, past: usize, device: &candle_core::Device) -> Result<Tensor> {
    let total = past + n;
    let mask: Vec<f32> =
        (0..n).flat_map(|i| (0..total).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_vec(mask, (n, total), device)
}

impl Block {
    fn load(d: usize, heads: usize, vb: VarBuilder) -> Result<Block> {
        Ok(Block {
            attn: Attention::load(d, heads, vb.pp("self_attn"))?,
            attn_ln: layer_norm(d, LN_EPS, vb.pp("self_attn_layer_norm"))?,
            cross_attn: Attention::load(d, heads, vb.pp("encoder_attn"))?,
            cross_attn_ln: layer_norm(d, LN_EPS, vb.pp("encoder_attn_layer_norm"))?,
            mlp_linear1: linear(d, 4 * d, vb.pp("fc1"))?,
            mlp_linear2: linear(4 * d, d, vb.pp("fc2"))?,
            mlp_ln: layer_norm(d, LN_EPS, vb.pp("final_layer_norm"))?,
            cache: None,
            audio: None,
        })
    }

    fn forward(&mut self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let attn = &self.attn;
        let h = self.attn_ln.forward(x)?;
        let (key, value) = (attn.heads_of(&attn.key.forward(&h)?)?, attn.heads_of(&attn.value.forward(&h)?)?);
        let (key, value) = match self.cache.take() {
            Some((k, v)) => (Tensor::cat(&[&k, &key], 2)?, Tensor::cat(&[&v, &value], 2)?),
            None => (key, value),
        };
        let x = (x + attn.attend(&attn.query.forward(&h)?, &key, &value, mask)?)?;
        self.cache = Some((key, value));

        let Some((audio_key, audio_value)) = &self.audio else {
            candle_core::bail!("the decoder was stepped before it was started on audio");
        };
        let cross = &self.cross_attn;
        let h = self.cross_attn_ln.forward(&x)?;
        let x = (&x + cross.attend(&cross.query.forward(&h)?, audio_key, audio_value, None)?)?;

        let mlp = self.mlp_linear2.forward(&self.mlp_linear1.forward(&self.mlp_ln.forward(&x)?)?.gelu()?)?;
        x + mlp
    }
}

impl Attention {
    fn load(d: usize, heads: usize, vb: VarBuilder) -> Result<Attention> {
        Ok(Attention {
            query: linear(d, d, vb.pp("q_proj"))?,
            key: linear_no_bias(d, d, vb.pp("k_proj"))?,
            value: linear(d, d, vb.pp("v_proj"))?,
            out: linear(d, d, vb.pp("out_proj"))?,
            heads,
        })
    }

    /// `(1, seq, d)` → `(1, heads, seq, head_dim)`, contiguous.
    fn heads_of(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, seq, d) = x.dims3()?;
        x.reshape((batch, seq, self.heads, d / self.heads))?.transpose(1, 2)?.contiguous()
    }

    /// Scaled dot-product attention of `query` `(1, n, d)` over keys and
    /// values already split into heads; back to `(1, n, d)` through `out`.
    fn attend(&self, query: &Tensor, key: &Tensor, value: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let head_dim = key.dim(D::Minus1)?;
        let query = (self.heads_of(query)? * (head_dim as f64).powf(-0.5))?;
        let mut scores = query.matmul(&key.t()?)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let mixed = weights.matmul(value)?.transpose(1, 2)?.flatten_from(2)?;
        self.out.forward(&mixed)
    }
}
