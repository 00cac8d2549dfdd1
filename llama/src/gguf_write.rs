//! A small GGUF v3 writer: metadata of the types [`crate::gguf`] reads and tensors given as
//! their raw bytes (already in their ggml type's layout). It writes the synthetic models of
//! [`crate::synthetic`] and the malformed files of the loader's tests; it is not a converter.
//!
//! ```
//! use llama::gguf_write::{GgufWriter, Meta};
//! use llama::GgufFile;
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tiny.gguf");
//! let mut w = GgufWriter::new();
//! w.meta("general.architecture", Meta::Str("llama".into()));
//! w.tensor_f32("x.weight", &[4], &[1.0, 2.0, 3.0, 4.0]);
//! w.write(&path)?;
//! let file = GgufFile::open(&path)?;
//! assert_eq!(file.get_str("general.architecture")?, "llama");
//! assert_eq!(file.tensor("x.weight").map(|t| t.dims.clone()), Some(vec![4]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use crate::error::LlamaError;
use crate::gguf::DEFAULT_ALIGNMENT;

/// A metadata value to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Meta {
    /// Type 4.
    U32(u32),
    /// Type 5.
    I32(i32),
    /// Type 6.
    F32(f32),
    /// Type 8.
    Str(String),
    /// Type 9, elements of type 8.
    Strs(Vec<String>),
    /// Type 9, elements of type 5.
    I32s(Vec<i32>),
}

/// A GGUF file under construction: the header fields can be overridden to write broken files.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    /// The magic (`GGUF`).
    pub magic: [u8; 4],
    /// The version (3).
    pub version: u32,
    meta: Vec<(String, Meta)>,
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

impl Default for GgufWriter {
    fn default() -> GgufWriter {
        GgufWriter::new()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl GgufWriter {
    /// An empty version-3 file.
    pub fn new() -> GgufWriter {
        GgufWriter {
            magic: *b"GGUF",
            version: 3,
            meta: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Adds (or replaces) a metadata key.
    pub fn meta(&mut self, key: &str, value: Meta) -> &mut GgufWriter {
        self.meta.retain(|(k, _)| k != key);
        self.meta.push((key.into(), value));
        self
    }

    /// Removes a metadata key.
    pub fn remove_meta(&mut self, key: &str) -> &mut GgufWriter {
        self.meta.retain(|(k, _)| k != key);
        self
    }

    /// Adds a tensor of ggml type `ggml_type` with dimensions `dims` (fastest first) and its
    /// raw bytes (not checked against the type: broken files are the point of some callers).
    pub fn tensor_raw(
        &mut self,
        name: &str,
        dims: &[u64],
        ggml_type: u32,
        bytes: Vec<u8>,
    ) -> &mut GgufWriter {
        self.tensors.retain(|t| t.0 != name);
        self.tensors
            .push((name.into(), dims.to_vec(), ggml_type, bytes));
        self
    }

    /// Adds an F32 tensor.
    pub fn tensor_f32(&mut self, name: &str, dims: &[u64], values: &[f32]) -> &mut GgufWriter {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor_raw(name, dims, 0, bytes)
    }

    /// Removes a tensor.
    pub fn remove_tensor(&mut self, name: &str) -> &mut GgufWriter {
        self.tensors.retain(|t| t.0 != name);
        self
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.meta.len() as u64).to_le_bytes());
        for (key, value) in &self.meta {
            put_str(&mut out, key);
            match value {
                Meta::U32(v) => {
                    out.extend_from_slice(&4u32.to_le_bytes());
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Meta::I32(v) => {
                    out.extend_from_slice(&5u32.to_le_bytes());
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Meta::F32(v) => {
                    out.extend_from_slice(&6u32.to_le_bytes());
                    out.extend_from_slice(&v.to_le_bytes());
                }
                Meta::Str(s) => {
                    out.extend_from_slice(&8u32.to_le_bytes());
                    put_str(&mut out, s);
                }
                Meta::Strs(items) => {
                    out.extend_from_slice(&9u32.to_le_bytes());
                    out.extend_from_slice(&8u32.to_le_bytes());
                    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                    for s in items {
                        put_str(&mut out, s);
                    }
                }
                Meta::I32s(items) => {
                    out.extend_from_slice(&9u32.to_le_bytes());
                    out.extend_from_slice(&5u32.to_le_bytes());
                    out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                    for v in items {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
        let align = DEFAULT_ALIGNMENT;
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for (name, dims, ty, bytes) in &self.tensors {
            put_str(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offsets.push(offset);
            offset = (offset + bytes.len() as u64).div_ceil(align) * align;
        }
        let data_start = (out.len() as u64).div_ceil(align) * align;
        out.resize(data_start as usize, 0);
        for ((_, _, _, bytes), at) in self.tensors.iter().zip(offsets) {
            out.resize((data_start + at) as usize, 0);
            out.extend_from_slice(bytes);
        }
        out
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) -> Result<(), LlamaError> {
        std::fs::write(path, self.to_bytes()).map_err(|source| LlamaError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
