//! Secure embedding lookup: the server's table stays private, the client's token ids too.
//! The server encrypted its table once ([`he_linear::embedding`], several rows per
//! ciphertext); online the client selects its tokens' rows homomorphically and returns them
//! masked: each party ends with a share of the rows. Roles are types: [`ServerEmbedding`] holds
//! the table, [`ClientEmbedding`] the cached encryption.
//!
//! Cost: [`EmbeddingLayout::online_bytes`] (client → server, one flight). Mirror: the rows.
use crate::cast::LINEAR;
use crate::keys::HeKeys;
use crate::tensor::SharedTensor;
use he_linear::embedding::{self, CachedTable, EmbeddingLayout};
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use mpc_core::{Channel, Error, Result, Seed};
use ot_nonlinear::mpc::Session;
use std::path::Path;

/// The server's embedding table (vocab × dim, 18 fraction bits).
pub struct ServerEmbedding {
    table: Vec<u64>,
    layout: EmbeddingLayout,
}

impl std::fmt::Debug for ServerEmbedding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerEmbedding")
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl ServerEmbedding {
    /// The table of `vocab` rows of `dim`, in the densest layout the parameters allow.
    pub fn new(params: &HeParams, table: Vec<u64>, vocab: usize, dim: usize) -> Result<Self> {
        if table.len() != vocab.saturating_mul(dim) {
            return Err(Error::shape(
                "embedding table values",
                table.len(),
                [vocab, dim],
            ));
        }
        Ok(ServerEmbedding {
            table,
            layout: EmbeddingLayout::densest(params, vocab, dim)?,
        })
    }

    /// Sends the encrypted table against [`ClientEmbedding::setup`]; `seed` (fresh, secret)
    /// seeds the encryptions.
    pub fn setup(
        &self,
        ch: &mut Channel,
        params: &HeParams,
        sk: &SecretKey,
        pk: &PublicKey,
        seed: Seed,
    ) -> Result<()> {
        embedding::server_setup(ch, params, sk, pk, &self.layout, &self.table, seed)
    }

    /// The server's share of the rows of the client's `tokens` ids.
    pub fn lookup(
        &self,
        sess: &mut Session,
        he: &HeKeys<'_>,
        tokens: usize,
    ) -> Result<SharedTensor> {
        let share =
            embedding::server_lookup(&mut sess.ch, he.params, he.keys.my_sk, &self.layout, tokens)?;
        SharedTensor::matrix(tokens, self.layout.dim, LINEAR, share)
    }

    /// The table (vocab × dim, row-major).
    pub fn table(&self) -> &[u64] {
        &self.table
    }

    /// The table's packing.
    pub fn layout(&self) -> &EmbeddingLayout {
        &self.layout
    }
}

/// The client's cached encryption of the server's table.
#[derive(Debug)]
pub struct ClientEmbedding {
    cached: CachedTable,
}

impl ClientEmbedding {
    /// The cache file holding the encrypted table.
    pub fn cache_file(&self) -> &std::path::Path {
        &self.cached.path
    }

    /// Receives the encrypted table against [`ServerEmbedding::setup`] (or reuses the cache
    /// entry `name` in `cache_dir`).
    pub fn setup(
        ch: &mut Channel,
        params: &HeParams,
        cache_dir: &Path,
        name: &str,
    ) -> Result<Self> {
        Ok(ClientEmbedding {
            cached: embedding::client_setup(ch, params, cache_dir, name)?,
        })
    }

    /// The client's share of the rows of `ids`.
    pub fn lookup(&self, sess: &mut Session, he: &HeKeys<'_>, ids: &[u32]) -> Result<SharedTensor> {
        let table = self.cached.open(he.params)?;
        let dim = table.layout().dim;
        let seed = sess.fresh_seed();
        let share =
            embedding::client_lookup(&mut sess.ch, he.params, he.keys.peer_pk, &table, ids, seed)?;
        SharedTensor::matrix(ids.len(), dim, LINEAR, share)
    }
}
