//! A bounds-checked reader for llama.cpp's GGUF container (versions 2 and 3), over a memory map.
//!
//! Layout (little-endian): magic `GGUF`, `u32` version, `u64` tensor count, `u64` metadata count,
//! then the metadata key/value pairs (a key is a `u64`-length-prefixed UTF-8 string, a value a
//! `u32` type tag and the value; arrays are a type tag, a `u64` count and the elements), then one
//! info per tensor (name, `u32` number of dimensions, `u64` per dimension with the fastest first,
//! `u32` ggml type, `u64` offset into the data section), then padding to `general.alignment`
//! (32 unless the metadata says otherwise) and the data section.
//!
//! Why not a crate: the GGUF readers on crates.io we evaluated trust the file's counts — `ggus`
//! 0.5 pre-allocates maps with the header's counts, panics slicing the data section of a
//! truncated file and reads the type tag straight into an enum; `gguf-rs-lib` 0.3 allocates
//! `vec![0; len]` with lengths read from the file and needs a newer compiler than this
//! workspace. Here every count and length is checked against the bytes left in the file before
//! anything is allocated, so a hostile file gives a [`LlamaError`], never a panic or an abort.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::LlamaError;

/// The alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's maximum number of tensor dimensions.
const MAX_DIMS: u32 = 4;
/// Nesting limit for arrays of arrays (the format allows nesting; real files use none).
const MAX_ARRAY_DEPTH: usize = 4;
/// Header: magic, version, tensor count, metadata count.
const HEADER_BYTES: u64 = 4 + 4 + 8 + 8;

/// One metadata value, with the type the file gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    /// Type 0.
    U8(u8),
    /// Type 1.
    I8(i8),
    /// Type 2.
    U16(u16),
    /// Type 3.
    I16(i16),
    /// Type 4.
    U32(u32),
    /// Type 5.
    I32(i32),
    /// Type 6.
    F32(f32),
    /// Type 7.
    Bool(bool),
    /// Type 8.
    String(String),
    /// Type 9: elements all of one type.
    Array(Vec<MetaValue>),
    /// Type 10.
    U64(u64),
    /// Type 11.
    I64(i64),
    /// Type 12.
    F64(f64),
}

impl MetaValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is a float of either width.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as text, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The type's name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "u8",
            MetaValue::I8(_) => "i8",
            MetaValue::U16(_) => "u16",
            MetaValue::I16(_) => "i16",
            MetaValue::U32(_) => "u32",
            MetaValue::I32(_) => "i32",
            MetaValue::F32(_) => "f32",
            MetaValue::Bool(_) => "bool",
            MetaValue::String(_) => "string",
            MetaValue::Array(_) => "array",
            MetaValue::U64(_) => "u64",
            MetaValue::I64(_) => "i64",
            MetaValue::F64(_) => "f64",
        }
    }
}

/// Where a tensor lies and how it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`, …).
    pub name: String,
    /// Dimensions, fastest-varying first (ggml's `ne`): a matrix `out × in` is `[in, out]`.
    pub dims: Vec<u64>,
    /// The ggml type id (see [`crate::dequant::GgmlType`]).
    pub ggml_type: u32,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements (checked at parse time not to overflow).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A parsed, memory-mapped GGUF file.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    version: u32,
    alignment: u64,
    metadata: HashMap<String, MetaValue>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    data_offset: u64,
}

impl GgufFile {
    /// Maps and parses `path`: header, metadata, tensor infos; tensor data is read lazily by
    /// [`GgufFile::tensor_data`].
    pub fn open(path: &Path) -> Result<GgufFile, LlamaError> {
        let io = |source| LlamaError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        if file_len < HEADER_BYTES {
            return Err(LlamaError::Truncated {
                path: path.to_path_buf(),
                what: "the header".into(),
                offset: 0,
                needed: HEADER_BYTES,
                file_len,
            });
        }
        // SAFETY: the map is read-only and private to this process; like every reader of model
        // files we rely on nobody truncating or rewriting the file while it is mapped.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let parsed = parse(path, &map)?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            map,
            version: parsed.version,
            alignment: parsed.alignment,
            tensor_index: parsed
                .tensors
                .iter()
                .enumerate()
                .map(|(i, t)| (t.name.clone(), i))
                .collect(),
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            data_offset: parsed.data_offset,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data section's alignment.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Offset of the data section in the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// All metadata keys, sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.metadata.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    /// All tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The info of a named tensor.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    fn metadata_error(&self, key: &str, what: impl Into<String>) -> LlamaError {
        LlamaError::Metadata {
            path: self.path.clone(),
            key: key.into(),
            what: what.into(),
        }
    }

    fn required(&self, key: &str) -> Result<&MetaValue, LlamaError> {
        self.get(key)
            .ok_or_else(|| self.metadata_error(key, "missing"))
    }

    /// A required non-negative integer key (any integer width).
    pub fn get_usize(&self, key: &str) -> Result<usize, LlamaError> {
        let value = self.required(key)?;
        value
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| {
                self.metadata_error(
                    key,
                    format!("expected a non-negative integer, found {value:?}"),
                )
            })
    }

    /// A required float key (f32 or f64).
    pub fn get_f32(&self, key: &str) -> Result<f32, LlamaError> {
        let value = self.required(key)?;
        value.as_f64().map(|v| v as f32).ok_or_else(|| {
            self.metadata_error(
                key,
                format!("expected a float, found {}", value.type_name()),
            )
        })
    }

    /// A required string key.
    pub fn get_str(&self, key: &str) -> Result<&str, LlamaError> {
        let value = self.required(key)?;
        value.as_str().ok_or_else(|| {
            self.metadata_error(
                key,
                format!("expected a string, found {}", value.type_name()),
            )
        })
    }

    /// A required array key.
    pub fn get_array(&self, key: &str) -> Result<&[MetaValue], LlamaError> {
        match self.required(key)? {
            MetaValue::Array(items) => Ok(items),
            other => Err(self.metadata_error(
                key,
                format!("expected an array, found {}", other.type_name()),
            )),
        }
    }

    /// A required array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, LlamaError> {
        self.get_array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().ok_or_else(|| {
                    self.metadata_error(
                        key,
                        format!("element {i} is a {}, expected a string", v.type_name()),
                    )
                })
            })
            .collect()
    }

    /// The raw bytes of a tensor's data, checked to lie inside the file. `n_bytes` is the size
    /// its type and shape imply (the caller knows the type's block layout).
    pub fn tensor_data(&self, info: &TensorInfo, n_bytes: u64) -> Result<&[u8], LlamaError> {
        let file_len = self.map.len() as u64;
        let start = self.data_offset.checked_add(info.offset);
        let end = start.and_then(|s| s.checked_add(n_bytes));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => {
                Ok(&self.map[start as usize..end as usize])
            }
            _ => Err(LlamaError::Truncated {
                path: self.path.clone(),
                what: format!("data of tensor {}", info.name),
                offset: self.data_offset.saturating_add(info.offset),
                needed: n_bytes,
                file_len,
            }),
        }
    }
}

/// The parsed header, metadata and tensor infos.
struct Parsed {
    version: u32,
    alignment: u64,
    metadata: HashMap<String, MetaValue>,
    tensors: Vec<TensorInfo>,
    data_offset: u64,
}

/// A cursor over the file that turns every short read into [`LlamaError::Truncated`].
struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn malformed(&self, what: impl Into<String>) -> LlamaError {
        LlamaError::Malformed {
            path: self.path.to_path_buf(),
            what: what.into(),
        }
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], LlamaError> {
        if n > self.remaining() {
            return Err(LlamaError::Truncated {
                path: self.path.to_path_buf(),
                what: what(),
                offset: self.pos as u64,
                needed: n,
                file_len: self.bytes.len() as u64,
            });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], LlamaError> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, LlamaError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, LlamaError> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, LlamaError> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.malformed(format!("{} is not UTF-8", what())))
    }

    /// Refuses a count whose elements, at `min_bytes` each, could not fit in the rest of the
    /// file: this is what keeps a hostile count from reaching an allocation.
    fn check_count(&self, count: u64, min_bytes: u64, what: &str) -> Result<usize, LlamaError> {
        if count.saturating_mul(min_bytes) > self.remaining() {
            return Err(self.malformed(format!(
                "{what}: count {count} cannot fit in the {} bytes left",
                self.remaining()
            )));
        }
        Ok(count as usize)
    }

    fn value(&mut self, tag: u32, key: &str, depth: usize) -> Result<MetaValue, LlamaError> {
        let what = || format!("value of metadata key {key}");
        Ok(match tag {
            0 => MetaValue::U8(u8::from_le_bytes(self.array(&what)?)),
            1 => MetaValue::I8(i8::from_le_bytes(self.array(&what)?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(&what)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(&what)?)),
            4 => MetaValue::U32(u32::from_le_bytes(self.array(&what)?)),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(&what)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(&what)?)),
            7 => match self.array::<1>(&what)?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => return Err(self.malformed(format!("metadata key {key}: bool byte {b}"))),
            },
            8 => MetaValue::String(self.string(&what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.malformed(format!(
                        "metadata key {key}: arrays nested deeper than {MAX_ARRAY_DEPTH}"
                    )));
                }
                let element_tag = self.u32(&what)?;
                let count = self.u64(&what)?;
                let min_bytes = min_value_bytes(element_tag).ok_or_else(|| {
                    self.malformed(format!(
                        "metadata key {key}: unknown array element type {element_tag}"
                    ))
                })?;
                let count = self.check_count(count, min_bytes, &format!("array {key}"))?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(element_tag, key, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(u64::from_le_bytes(self.array(&what)?)),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(&what)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(&what)?)),
            other => {
                return Err(
                    self.malformed(format!("metadata key {key}: unknown value type {other}"))
                )
            }
        })
    }
}

/// The fewest bytes a value of this type tag occupies (None: unknown tag).
fn min_value_bytes(tag: u32) -> Option<u64> {
    Some(match tag {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,
        9 => 12,
        10..=12 => 8,
        _ => return None,
    })
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed, LlamaError> {
    let mut cur = Cursor {
        path,
        bytes,
        pos: 0,
    };
    let magic = cur.array::<4>(&|| "the magic".into())?;
    if &magic != b"GGUF" {
        return Err(LlamaError::BadMagic {
            path: path.to_path_buf(),
            found: magic,
        });
    }
    let version = cur.u32(&|| "the version".into())?;
    if !(2..=3).contains(&version) {
        return Err(LlamaError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    let n_tensors = cur.u64(&|| "the tensor count".into())?;
    let n_metadata = cur.u64(&|| "the metadata count".into())?;
    // A key/value pair is at least an 8-byte key length, a 4-byte tag and a 1-byte value; a
    // tensor info at least a name length, a dimension count, a type and an offset.
    let n_metadata = cur.check_count(n_metadata, 13, "metadata")?;
    let n_tensors = cur.check_count(n_tensors, 24, "tensor infos")?;

    let mut metadata = HashMap::with_capacity(n_metadata);
    for index in 0..n_metadata {
        let key = cur.string(&|| format!("key of metadata entry {index}"))?;
        let tag = cur.u32(&|| format!("type of metadata key {key}"))?;
        let value = cur.value(tag, &key, 0)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(cur.malformed(format!("metadata key {key} appears twice")));
        }
    }
    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(MetaValue::U32(a)) if a.is_power_of_two() => u64::from(*a),
        Some(other) => {
            return Err(cur.malformed(format!(
                "general.alignment must be a power-of-two u32, found {other:?}"
            )))
        }
    };

    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors);
    let mut names = HashMap::with_capacity(n_tensors);
    for index in 0..n_tensors {
        let name = cur.string(&|| format!("name of tensor {index}"))?;
        let what = || format!("info of tensor {name}");
        let n_dims = cur.u32(&what)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(cur.malformed(format!(
                "tensor {name}: {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(cur.u64(&what)?);
        }
        if dims.contains(&0)
            || dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .is_none()
        {
            return Err(cur.malformed(format!(
                "tensor {name}: dimensions {dims:?} are empty or overflow"
            )));
        }
        let ggml_type = cur.u32(&what)?;
        let offset = cur.u64(&what)?;
        if offset % alignment != 0 {
            return Err(cur.malformed(format!(
                "tensor {name}: offset {offset} is not a multiple of the alignment {alignment}"
            )));
        }
        if names.insert(name.clone(), index).is_some() {
            return Err(cur.malformed(format!("tensor {name} appears twice")));
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        });
    }
    let data_offset = (cur.pos as u64).div_ceil(alignment) * alignment;
    Ok(Parsed {
        version,
        alignment,
        metadata,
        tensors,
        data_offset,
    })
}
