//! A decoder's key/value cache as shares: each party appends its shares of every new
//! position's keys and values (rotated keys) and hands the whole cache to
//! [`crate::attention::attention`] with a causal mask over it. Nothing is sent: the cache is
//! the two parties' additive shares kept across generation steps, so neither ever sees a key
//! or a value.
use crate::cast::LINEAR;
use crate::tensor::SharedTensor;
use mpc_core::{Error, Result};

/// One layer's cache: `len` rows of keys and of values, each `width` = kv_heads·head_dim wide,
/// Z_2^64 with 18 fraction bits, at most `capacity` rows.
#[derive(Clone, Debug)]
pub struct KvCache {
    width: usize,
    capacity: usize,
    keys: Vec<u64>,
    values: Vec<u64>,
}

impl KvCache {
    /// An empty cache of rows of `width`, holding at most `capacity` positions (the context).
    pub fn new(width: usize, capacity: usize) -> KvCache {
        KvCache {
            width,
            capacity,
            keys: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Positions cached.
    pub fn len(&self) -> usize {
        self.keys.len() / self.width.max(1)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Appends the shares of new positions' keys and values (same rows).
    pub fn append(&mut self, k: &SharedTensor, v: &SharedTensor) -> Result<()> {
        let shape = crate::Shape::matrix(k.rows(), self.width);
        k.expect("cached keys", &shape, LINEAR)?;
        v.expect("cached values", &shape, LINEAR)?;
        if self.len() + k.rows() > self.capacity {
            return Err(Error::shape(
                format!("positions cached after adding {}", k.rows()),
                self.len() + k.rows(),
                mpc_core::Dims::AtMost(self.capacity),
            ));
        }
        self.keys.extend_from_slice(k.share());
        self.values.extend_from_slice(v.share());
        Ok(())
    }

    /// The cached keys and values (len × width each).
    pub fn tensors(&self) -> Result<(SharedTensor, SharedTensor)> {
        let rows = self.len();
        Ok((
            SharedTensor::matrix(rows, self.width, LINEAR, self.keys.clone())?,
            SharedTensor::matrix(rows, self.width, LINEAR, self.values.clone())?,
        ))
    }
}
