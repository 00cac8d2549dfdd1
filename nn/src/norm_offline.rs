//! LayerNorm's and RMSNorm's two row products on correlations made offline: the square sums
//! Σ_j v_ij² and the row-scalar product r_i·v_ij of [`crate::norm::normalize`] move their HE
//! work before the input exists, and the online phase sends only masked operands.
//!
//! **Offline** ([`NormTriples::generate`]), on `rows` × `n`:
//! * a *square-sum correlation*: each party draws A_p uniform over Z_2^38 (the square ring,
//!   [`SQUARE_RING`]) and the HE square sums ([`HeRowProducts`], the client the key holder)
//!   give both shares of C_i = Σ_j A_ij² modulo 2^38;
//! * a row-scaling triple ([`TripleShape::RowScale`], [`crate::triple`]): a (rows), B
//!   (rows × n) uniform over the product ring ([`PRODUCT_RING`], Z_2^38) and C = diag(a)·B
//!   by the HE secret product through the window [0, 38) (exact: no low bits dropped; the
//!   responses carry 38 bits instead of 64).
//!
//! **Online** ([`RowProducts`] for [`NormTriples`]), each product one round in which both
//! parties send (values packed to the ring's 38 bits):
//! * square sums: open D = v − A; Σ_j v_ij² = Σ_j D_ij² + 2·Σ_j D_ij·A_ij + C_i (the server
//!   adds Σ D²), exact modulo 2^38;
//! * row-scalar product: open δ = r − a and E = v − B; r_i·v_ij = δ_i·E_ij + δ_i·B_ij +
//!   a_i·E_ij + C_ij, exact modulo 2^38, then the normalisation's own known-MSB truncation to
//!   Z_2^64 (as on COTs: the same values as [`ot_nonlinear::functions::OtProducts`], so the mirror is
//!   [`crate::norm::norm_mirror`] unchanged).
//!
//! What each party sees online: D, δ and E, uniform whatever v and r are (A, a and B are
//! uniform and used once: a [`NormTriples`] refuses a second product of either kind, and
//! [`crate::offline::OfflineStore`] a second use of an entry). Offline: what the HE square sums
//! and secret products show (docs/security.md), on random operands.
//!
//! At BERT-base's 128 × 768 the two openings send 934 496 bytes per party (HE online: 6.57 MB
//! in all, COTs: 27.3 MB), one round each.
//!
//! ```
//! use nn::norm::Norm;
//! use nn::norm_offline::norm_prepared_cost;
//! let cost = norm_prepared_cost(Norm::LayerNorm, 128, 768);
//! assert!(cost.client_bytes < 2_000_000);
//! ```
use crate::keys::HeKeys;
use crate::matmul::products_cost;
use crate::norm::{HeRowProducts, Norm};
use crate::offline::OfflineStore;
use crate::triple::{open_packed as open, Triple, TripleShape};
use he_linear::matrix::MatDims;
use he_linear::matrix::RingMatrix;
use he_linear::params::HeParams;
use he_linear::response::Window;
use he_linear::row_products::{self, row_square_sums_bytes};
use mpc_core::{AesPrg, Error, Result, Ring};
use ot_nonlinear::approx::layernorm::{PRODUCT_RING, SQUARE_RING};
use ot_nonlinear::functions::{normalize_cost_with, normalize_cots_besides_products, RowProducts};
use ot_nonlinear::mpc::trunc::TruncKind;
use ot_nonlinear::mpc::{trunc_cast, Cost, CotDemand, Session, Side};

/// One party's correlations for one normalisation of `rows` rows of `n` (module docs). Each
/// of its two products can be served once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormTriples {
    dims: MatDims,
    /// A (rows × n) and C (rows), over [`SQUARE_RING`]; `None` once used.
    squares: Option<(Vec<u64>, Vec<u64>)>,
    /// The row-scaling triple over Z_2^64; `None` once used.
    scale: Option<Triple>,
}

/// The digest normalisation entries are filed under (their shape is the metadata).
const DIGEST: [u8; 32] = *b"nn norm triples v1 .............";

impl NormTriples {
    /// Generates this party's correlations for a normalisation of `rows` rows of `n` (offline:
    /// nothing depends on the input): the square sums' HE flights, then the row-scaling
    /// triple's.
    pub fn generate(
        sess: &mut Session,
        he: &HeKeys<'_>,
        rows: usize,
        n: usize,
    ) -> Result<NormTriples> {
        let dims = MatDims { rows, cols: n };
        check(dims)?;
        let mut prg = AesPrg::new(sess.fresh_seed());
        let a: Vec<u64> = prg
            .u64s(rows * n)
            .into_iter()
            .map(|v| SQUARE_RING.reduce(v))
            .collect();
        let c = HeRowProducts::new(he.product_params, he.keys).row_square_sums(
            sess,
            &a,
            n,
            SQUARE_RING,
        )?;
        // The row-scaling triple over the product ring: a (rows) and B uniform there, C =
        // diag(a)·B through the window [0, 38) (exact; the responses carry 38 bits, not 64).
        let reduced =
            |v: Vec<u64>| -> Vec<u64> { v.into_iter().map(|w| PRODUCT_RING.reduce(w)).collect() };
        let (sa, sb) = (reduced(prg.u64s(rows)), reduced(prg.u64s(rows * n)));
        let b = RingMatrix::new(rows, n, sb.clone())?;
        let window = Window::new(he.product_params, 0, PRODUCT_RING.bits())?;
        let seed = sess.fresh_seed();
        let scaled = row_products::row_scalar_product(
            &mut sess.ch,
            he.product_params,
            he.keys,
            &sa,
            &b,
            window,
            seed,
        )?;
        let words = [&sa[..], &sb, scaled.data()].concat();
        let scale = Triple::from_words(TripleShape::RowScale(dims), &words)?;
        Ok(NormTriples {
            dims,
            squares: Some((a, c)),
            scale: Some(scale),
        })
    }

    /// Exact cost of [`NormTriples::generate`] on `rows` rows of `n`.
    pub fn generate_cost(params: &HeParams, rows: usize, n: usize) -> Result<Cost> {
        let dims = MatDims { rows, cols: n };
        check(dims)?;
        let (to_server, to_client) = row_square_sums_bytes(params, dims, SQUARE_RING.bits())?;
        let squares = Cost {
            server_bytes: to_client as u64,
            client_bytes: to_server as u64,
            rounds: 2,
            first: Side::Client,
            last: Side::Server,
        };
        let window = Window::new(params, 0, PRODUCT_RING.bits())?;
        Ok(squares.then(products_cost(params, &[(rows, rows, n)], window)?))
    }

    /// The store's metadata and length of a normalisation of `dims`.
    fn layout(dims: MatDims) -> ([u64; 2], usize) {
        let MatDims { rows, cols } = dims;
        let scale: usize = TripleShape::RowScale(dims).sizes().iter().sum();
        ([rows as u64, cols as u64], rows * cols + rows + scale)
    }

    /// Files this party's correlations as entry `name` of `store` (refused once either
    /// product has been served).
    pub fn put(&self, store: &OfflineStore, name: &str) -> Result<()> {
        let (Some((a, c)), Some(scale)) = (&self.squares, &self.scale) else {
            return Err(used("filing"));
        };
        let (meta, _) = Self::layout(self.dims);
        let words = [&a[..], c, &scale.to_words()].concat();
        store.put(name, &DIGEST, &meta, &words)
    }

    /// Consumes entry `name` of `store`, which must hold correlations for a normalisation of
    /// `rows` rows of `n` (refused otherwise, or if used before).
    pub fn take(store: &OfflineStore, name: &str, rows: usize, n: usize) -> Result<NormTriples> {
        let dims = MatDims { rows, cols: n };
        check(dims)?;
        let (meta, len) = Self::layout(dims);
        let words = store.take(name, &DIGEST, &meta, len)?;
        let (a, rest) = words.split_at(rows * n);
        let (c, scale) = rest.split_at(rows);
        Ok(NormTriples {
            dims,
            squares: Some((a.to_vec(), c.to_vec())),
            scale: Some(Triple::from_words(TripleShape::RowScale(dims), scale)?),
        })
    }

    /// Refuses operands of another shape or ring than the correlations'.
    fn check_call(&self, what: &str, len: usize, n: usize, ring: Ring, want: Ring) -> Result<()> {
        let MatDims { rows, cols } = self.dims;
        if n != cols || len != rows * cols {
            return Err(Error::shape(
                format!("{what} on normalisation triples"),
                [len / n.max(1), n],
                [rows, cols],
            ));
        }
        if ring != want {
            return Err(Error::shape(
                format!("{what}'s ring on normalisation triples"),
                ring.bits() as usize,
                want.bits() as usize,
            ));
        }
        Ok(())
    }
}

fn check(dims: MatDims) -> Result<()> {
    if dims.rows == 0 || dims.cols == 0 {
        return Err(Error::shape(
            "normalisation triples",
            [dims.rows, dims.cols],
            "at least one row of one value",
        ));
    }
    Ok(())
}

fn used(what: &str) -> Error {
    Error::InvalidArgument(format!(
        "normalisation triples: {what} a product already served (each serves once)"
    ))
}

/// The cost of one [`open`] of `count` values of `ring`.
fn open_cost(count: usize, ring: Ring) -> Cost {
    let bits = count * ring.bits() as usize;
    Cost::flight(bits, bits)
}

impl RowProducts for NormTriples {
    fn cots(&self, _: usize, _: usize) -> CotDemand {
        CotDemand::default()
    }

    fn row_square_sums(
        &mut self,
        sess: &mut Session,
        v: &[u64],
        n: usize,
        ring: Ring,
    ) -> Result<Vec<u64>> {
        self.check_call("square sums", v.len(), n, ring, SQUARE_RING)?;
        let (a, c) = self.squares.take().ok_or_else(|| used("square sums of"))?;
        let mine: Vec<u64> = v.iter().zip(&a).map(|(&v, &a)| ring.sub(v, a)).collect();
        let d = open(sess, &mine, ring)?;
        let server = sess.is_server();
        Ok(c.iter()
            .enumerate()
            .map(|(i, &ci)| {
                let (di, ai) = (&d[i * n..(i + 1) * n], &a[i * n..(i + 1) * n]);
                let cross = di
                    .iter()
                    .zip(ai)
                    .fold(0u64, |s, (&d, &a)| s.wrapping_add(d.wrapping_mul(a)));
                let mut s = ci.wrapping_add(cross.wrapping_mul(2));
                if server {
                    s = di.iter().fold(s, |s, &d| s.wrapping_add(d.wrapping_mul(d)));
                }
                ring.reduce(s)
            })
            .collect())
    }

    fn row_scalar_product(
        &mut self,
        sess: &mut Session,
        v: &[u64],
        r: &[u64],
        n: usize,
        ring: Ring,
        shift: u32,
    ) -> Result<Vec<u64>> {
        self.check_call("row-scalar product", v.len(), n, ring, PRODUCT_RING)?;
        if r.len() != self.dims.rows {
            return Err(Error::shape(
                "row scalars on normalisation triples",
                r.len(),
                self.dims.rows,
            ));
        }
        let t = self
            .scale
            .take()
            .ok_or_else(|| used("row-scalar product of"))?;
        let [a, b, c] = t.parts().map(|p| p.iter().map(|&w| ring.reduce(w)));
        let (a, b, c): (Vec<u64>, Vec<u64>, Vec<u64>) = (a.collect(), b.collect(), c.collect());
        let mine: Vec<u64> = r
            .iter()
            .zip(&a)
            .chain(v.iter().zip(&b))
            .map(|(&x, &m)| ring.sub(x, m))
            .collect();
        let opened = open(sess, &mine, ring)?;
        let (delta, e) = opened.split_at(r.len());
        let server = sess.is_server();
        let y: Vec<u64> = c
            .iter()
            .enumerate()
            .map(|(k, &ck)| {
                let i = k / n;
                let mut z = ck
                    .wrapping_add(delta[i].wrapping_mul(b[k]))
                    .wrapping_add(a[i].wrapping_mul(e[k]));
                if server {
                    z = z.wrapping_add(delta[i].wrapping_mul(e[k]));
                }
                ring.reduce(z)
            })
            .collect();
        trunc_cast(sess, &y, ring, Ring::R64, shift, TruncKind::KnownMsb)
    }
}

/// Exact online cost of [`crate::norm::normalize`] on `rows` rows of `n` with its products on
/// [`NormTriples`] (label `layernorm` or `rmsnorm` inside the caller's).
pub fn norm_prepared_cost(norm: Norm, rows: usize, n: usize) -> Cost {
    normalize_cost_with(
        rows,
        n,
        norm.centering(),
        [
            open_cost(rows * n, SQUARE_RING),
            open_cost(rows + rows * n, PRODUCT_RING),
        ],
    )
}

/// COTs [`crate::norm::normalize`] draws on `rows` rows of `n` with its products on
/// [`NormTriples`] (its truncations and reciprocal square roots).
pub fn norm_prepared_cots(norm: Norm, rows: usize, n: usize) -> CotDemand {
    normalize_cots_besides_products(rows, n, norm.centering())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_holds_both_correlations() {
        let dims = MatDims { rows: 3, cols: 5 };
        let (meta, len) = NormTriples::layout(dims);
        assert_eq!(meta, [3, 5]);
        // A and C of the squares, then a, B and C of the row scaling.
        assert_eq!(len, 15 + 3 + (3 + 15 + 15));
        assert!(check(MatDims { rows: 0, cols: 5 }).is_err());
    }
}
