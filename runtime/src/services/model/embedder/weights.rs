//! A `.safetensors` file read one tensor at a time.
//!
//! candle's loaders read the whole file into memory and then copy every
//! tensor out of it, so loading costs twice the weights (940 MiB at the
//! peak for all-mpnet-base-v2's 438 MB); its memory-mapped loader needs
//! `unsafe` and a file nobody changes meanwhile. Reading tensor by tensor
//! costs the weights plus the largest tensor, and the same pass gives the
//! file's sha256 for the embedding cache's id.

use std::collections::HashMap;
use std::io::Read;

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::Metadata;
use sha2::{Digest, Sha256};

/// The header may not be larger (the format's own limit).
const MAX_HEADER: u64 = 100_000_000;

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a safetensors file: {0}")]
    Format(String),
    #[error("{0}")]
    Tensor(#[from] candle_core::Error),
}

/// Every tensor of the file (floats as `F32`), and the file's sha256.
pub fn read(mut file: impl Read) -> Result<(HashMap<String, Tensor>, [u8; 32]), WeightsError> {
    let mut hash = Sha256::new();
    let mut length = [0u8; 8];
    file.read_exact(&mut length)?;
    hash.update(length);
    let length = u64::from_le_bytes(length);
    if length > MAX_HEADER {
        return Err(WeightsError::Format(format!("a header of {length} bytes")));
    }
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header)?;
    hash.update(&header);
    // Checked by safetensors: the tensors lie back to back, in offset
    // order, each the size its shape and type say.
    let metadata: Metadata = serde_json::from_slice(&header).map_err(|e| WeightsError::Format(e.to_string()))?;

    let mut tensors = HashMap::new();
    let mut bytes = Vec::new();
    for name in metadata.offset_keys() {
        let Some(info) = metadata.info(&name) else { continue };
        let dtype = DType::try_from(info.dtype)?;
        let (start, end) = info.data_offsets;
        bytes.resize(end - start, 0);
        file.read_exact(&mut bytes)?;
        hash.update(&bytes);
        let mut tensor = Tensor::from_raw_buffer(&bytes, dtype, &info.shape, &Device::Cpu)?;
        if dtype.is_float() {
            tensor = tensor.to_dtype(DType::F32)?;
        }
        tensors.insert(name, tensor);
    }
    std::io::copy(&mut file, &mut hash)?;
    Ok((tensors, hash.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_candle_writes_and_hashes_the_whole_file() {
        let a = Tensor::arange(0f32, 6.0, &Device::Cpu).unwrap().reshape((2, 3)).unwrap();
        let b = Tensor::new(&[1.5f32, -2.0], &Device::Cpu).unwrap().to_dtype(DType::F16).unwrap();
        let ids = Tensor::new(&[[0i64, 1, 2]], &Device::Cpu).unwrap();
        let path = std::env::temp_dir().join(format!("sandbot-weights-{}.safetensors", std::process::id()));
        candle_core::safetensors::save(
            &HashMap::from([("a".to_string(), a.clone()), ("b".to_string(), b), ("ids".to_string(), ids)]),
            &path,
        )
        .unwrap();
        let file = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();

        let (tensors, sha) = read(&file[..]).unwrap();
        assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&file)));
        assert_eq!(tensors["a"].to_vec2::<f32>().unwrap(), a.to_vec2::<f32>().unwrap());
        assert_eq!(tensors["b"].to_vec1::<f32>().unwrap(), [1.5, -2.0]);
        assert_eq!(tensors["ids"].to_vec2::<i64>().unwrap(), [[0, 1, 2]]);
    }

    #[test]
    fn a_broken_file_is_an_error_not_a_panic() {
        let file = {
            let header = br#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
            let mut file = (header.len() as u64).to_le_bytes().to_vec();
            file.extend_from_slice(header);
            file.extend_from_slice(&[0; 16]);
            file
        };
        assert!(read(&file[..]).is_ok());
        // Cut short, a lying header, a huge header, not JSON.
        assert!(read(&file[..file.len() - 1]).is_err());
        let lying = String::from_utf8(file.clone()).unwrap().replace("[4]", "[5]");
        assert!(read(lying.as_bytes()).is_err());
        assert!(read(&u64::MAX.to_le_bytes()[..]).is_err());
        let mut garbage = 3u64.to_le_bytes().to_vec();
        garbage.extend_from_slice(b"{{{");
        assert!(read(&garbage[..]).is_err());
    }
}
