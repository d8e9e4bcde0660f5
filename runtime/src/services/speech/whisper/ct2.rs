//! Reads CTranslate2's `model.bin` container (format version 6) holding a
//! `WhisperSpec`, and renames and splits its tensors into the Hugging Face
//! names candle's Whisper loads: CTranslate2 fuses self-attention's Q|K|V
//! and cross-attention's K|V into one projection each.

use std::collections::HashMap;
use std::io::Read;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::whisper as w;

use super::{failed, SpeechError};

/// The part of CTranslate2's `config.json` used here.
#[derive(serde::Deserialize)]
pub(super) struct Ct2Config {
    #[serde(default)]
    pub suppress_ids: Vec<u32>,
    #[serde(default)]
    pub suppress_ids_begin: Vec<u32>,
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
pub(super) fn read_ct2(
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

#[cfg(test)]
mod tests {
    use super::*;

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
