//! Row-structured products of shared matrices on HE (LayerNorm's two products, attention's
//! softmax normalisation), with packed outputs and response windows ([`Window`]). Without a
//! truncating window everything is exact modulo 2^64, hence modulo any 2^ℓ the caller reduces to.
//!
//! * [`row_scalar_product`]: shares of r_i·V_ij for shared r (k) and V (k×n), as the
//!   secret × secret product diag(r)·V ([`secret_products`], each cross term in its
//!   cheaper orientation), both directions in the same two flights; [`row_scalar_products`]
//!   batches several (attention's per-head normalisation, 128×128·128×64 per head: 372 752
//!   bytes each way, Oᵀ encrypted and diag(r) the plaintext; 342 032 through bits [16, 64)).
//! * [`row_square_sums`]: shares of Σ_j V_ij² modulo 2^bits for shared V (k×n). Only the cross
//!   term 2·Σ_j V^c_ij·V^s_ij needs both shares, and it is the diagonal of V^c·(V^s)ᵀ: the
//!   client encrypts V^c (its key), the server evaluates with (V^s)ᵀ and returns the product's
//!   shares (SIP), in column chunks that keep each product within the parameters' terms per
//!   coefficient (two chunks of 384 at BERT-base's 768). Flights: 2 (C→S encryptions, S→C
//!   responses).
//!
//! Cost at BERT-base's LayerNorm (128×768, packed parameters; exact, `tests/row_products.rs`):
//! the row-scalar product 2 637 888 B each way (2 input ciphertexts, 12 merged responses, 372
//! merges per party), 1 728 576 B through the window [12, 38) LayerNorm uses; the square sums
//! 2 752 704 B client → server (12 ciphertexts) and 573 440 B back (2 chunks × 2 responses,
//! 252 merges on the server), 360 448 B modulo 2^38. 6.57 MB in all as LayerNorm runs them,
//! against 27.3 MB for Gilboa products on Z_2^38 over COTs (square 9.1, row-scalar product
//! 18.2).
//!
//! What each party sees: the peer's fresh RLWE encryptions (semantically secure) and
//! responses re-randomized, noise-flooded and masked by uniform values over Z_2^64 (see
//! [`crate::response`] and docs/security.md): its output share and nothing else.
use crate::galois::GaloisKeys;
use crate::matrix::{MatDims, ProductShape, RingMatrix};
use crate::params::HeParams;
use crate::response::Window;
use crate::rlwe::{PublicKey, SecretKey};
use crate::secret_product::{secret_products, ProductKeys};
use crate::sip::{self, SipPlan};
use mpc_core::{Channel, Error, Result, Seed};

/// Shares of r_i·V_ij (k×n) from shares of r (k) and V (k×n), through `window`
/// ([`secret_products`]): ⌊r_i·V_ij / 2^lo⌋ modulo 2^{hi−lo} (exact for lo = 0, else
/// within 3 units).
pub fn row_scalar_product(
    ch: &mut Channel,
    params: &HeParams,
    keys: ProductKeys<'_>,
    r: &[u64],
    v: &RingMatrix,
    window: Window,
    seed: Seed,
) -> Result<RingMatrix> {
    let mut out = row_scalar_products(ch, params, keys, &[(r, v)], window, seed)?;
    Ok(out.remove(0))
}

/// [`row_scalar_product`] of several (r, V) pairs in the same two flights (attention's
/// per-head normalisation diag(r_h)·O_h).
pub fn row_scalar_products(
    ch: &mut Channel,
    params: &HeParams,
    keys: ProductKeys<'_>,
    pairs: &[(&[u64], &RingMatrix)],
    window: Window,
    seed: Seed,
) -> Result<Vec<RingMatrix>> {
    let diags = pairs
        .iter()
        .map(|&(r, v)| {
            let k = v.rows();
            if r.len() != k {
                return Err(Error::shape("row scalars (one per row)", r.len(), k));
            }
            let mut diag = RingMatrix::zeros(k, k);
            for (i, &ri) in r.iter().enumerate() {
                diag.data_mut()[i * k + i] = ri;
            }
            Ok(diag)
        })
        .collect::<Result<Vec<_>>>()?;
    let products: Vec<_> = diags.iter().zip(pairs).map(|(d, &(_, v))| (d, v)).collect();
    secret_products(ch, params, keys, &products, window, seed)
}

/// The column chunks of [`row_square_sums`] at width n: as few as keep every chunk's plan
/// within the parameters' terms per coefficient.
fn chunks(params: &HeParams, n: usize) -> Vec<std::ops::Range<usize>> {
    let count = n.div_ceil((params.max_terms() as usize).max(1)).max(1);
    let width = n.div_ceil(count);
    (0..n)
        .step_by(width.max(1))
        .map(|s| s..(s + width).min(n))
        .collect()
}

/// The SIP plan of each column chunk of V (k×n): V_chunk · V_chunkᵀ, k×m·m×k.
fn chunk_plans(
    params: &HeParams,
    v: MatDims,
    window: Window,
) -> Result<Vec<(std::ops::Range<usize>, SipPlan)>> {
    let k = v.rows;
    chunks(params, v.cols)
        .into_iter()
        .map(|c| {
            let shape = ProductShape {
                k,
                m: c.len(),
                n: k,
            };
            SipPlan::new(params, shape).map(|p| (c, p.with_window(window)))
        })
        .collect()
}

/// Bytes of [`row_square_sums`] on V of shape `v` modulo 2^bits: (client → server,
/// server → client).
pub fn row_square_sums_bytes(params: &HeParams, v: MatDims, bits: u32) -> Result<(usize, usize)> {
    Ok(chunk_plans(params, v, Window::new(params, 0, bits)?)?
        .iter()
        .fold((0, 0), |(c, s), (_, p)| {
            (c + p.input_bytes(params), s + p.output_bytes(params))
        }))
}

fn columns(v: &RingMatrix, cols: &std::ops::Range<usize>) -> Result<RingMatrix> {
    let data = (0..v.rows())
        .flat_map(|i| v.row(i)[cols.clone()].iter().copied())
        .collect();
    RingMatrix::new(v.rows(), cols.len(), data)
}

/// A party's half of [`row_square_sums`], with the keys that half uses.
#[derive(Clone, Copy)]
pub enum SquareSumsRole<'a> {
    /// Encrypts its share of V under its own key and opens the responses.
    KeyHolder {
        /// Its secret key.
        sk: &'a SecretKey,
    },
    /// Multiplies the key holder's encrypted share by its own and answers, re-randomized under
    /// the key holder's public key (and packed with its Galois keys when the parameters pack).
    Evaluator {
        /// The key holder's public key.
        holder_pk: &'a PublicKey,
        /// The key holder's Galois keys (packing parameters only).
        holder_galois: Option<&'a GaloisKeys>,
    },
}

impl std::fmt::Debug for SquareSumsRole<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SquareSumsRole::KeyHolder { .. } => "KeyHolder",
            SquareSumsRole::Evaluator { .. } => "Evaluator",
        })
    }
}

/// Shares of Σ_j V_ij² per row from shares of V (k×n), modulo 2^bits (the responses reveal
/// only those bits); one party is the key holder, the other the evaluator (`role`).
pub fn row_square_sums(
    ch: &mut Channel,
    params: &HeParams,
    role: SquareSumsRole<'_>,
    v: &RingMatrix,
    bits: u32,
    seed: Seed,
) -> Result<Vec<u64>> {
    let k = v.rows();
    let window = Window::new(params, 0, bits)?;
    let plans = chunk_plans(params, v.dims(), window)?;
    let chunks = plans
        .iter()
        .map(|(cols, _)| columns(v, cols))
        .collect::<Result<Vec<_>>>()?;
    // Σ_j (V_ij^mine)², local; the cross term enters twice.
    let mut sums: Vec<u64> = (0..k)
        .map(|i| {
            v.row(i)
                .iter()
                .fold(0u64, |a, &x| a.wrapping_add(x.wrapping_mul(x)))
        })
        .collect();
    let cross: Vec<RingMatrix> = match role {
        SquareSumsRole::KeyHolder { sk } => {
            for (i, ((_, plan), chunk)) in plans.iter().zip(&chunks).enumerate() {
                let chunk_seed = seed.derive(i as u64);
                sip::send_encrypted_input(ch, params, sk, plan, chunk, chunk_seed)?;
            }
            ch.flush()?;
            plans
                .iter()
                .map(|(_, plan)| sip::recv_and_open(ch, params, sk, plan))
                .collect::<Result<_>>()?
        }
        SquareSumsRole::Evaluator {
            holder_pk,
            holder_galois,
        } => {
            let inputs = plans
                .iter()
                .map(|(_, plan)| sip::recv_encrypted_input(ch, params, plan))
                .collect::<Result<Vec<_>>>()?;
            plans
                .iter()
                .zip(&chunks)
                .zip(&inputs)
                .enumerate()
                .map(|(i, (((_, plan), chunk), inputs))| {
                    let plain = sip::encode_plain(params, plan, &chunk.transpose())?;
                    sip::evaluate_and_respond(
                        ch,
                        params,
                        holder_pk,
                        holder_galois,
                        plan,
                        inputs,
                        &plain,
                        seed.derive(i as u64),
                    )
                })
                .collect::<Result<_>>()?
        }
    };
    for m in &cross {
        for (i, s) in sums.iter_mut().enumerate() {
            *s = s.wrapping_add(m.get(i, i).wrapping_mul(2));
        }
    }
    Ok(sums.into_iter().map(|s| window.reduce(s)).collect())
}
