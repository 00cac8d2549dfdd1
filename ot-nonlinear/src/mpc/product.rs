//! Share × share products in Z_2^ℓ by correlated OT (Gilboa): element-wise [`mul`], a row
//! scalar times every element of its row [`mul_row_scalar`], and [`square`].
//!
//! `x·y = x_0·y_0 + x_1·y_1 + x_0·y_1 + x_1·y_0`; each cross term `x_i·y_{1−i} = Σ_j 2^j·y_{1−i,j}·x_i`
//! is a batch of ℓ additive COTs ([`super::acot`]) with the peer's bits `y_{1−i,j}` as choices
//! and `x_i` as correlation, COT j needing only ℓ − j bits (its term is a multiple of 2^j).
//! Each party is the sender of its own `x_i` and the receiver for the peer's, so both cross
//! terms share the same two flights.
//!
//! **Row scalar** (`z_{r,c} = x_{r,c}·y_r`, e.g. softmax `e_{ij}·(1/Σ)_i`): the COTs of row r's
//! choice bits carry one correlation per column (tweaks `(c, index)`), so the choice
//! corrections are sent once per row, not per element.
//!
//! **Square**: `x² = x_0² + x_1² + 2·x_0·x_1`, and `2·x_0·x_1` mod 2^ℓ needs `x_0·x_1` mod
//! 2^{ℓ−1} only: one cross term (server sends), choice bits 0..ℓ−2 of x_1, COT j on ℓ − 1 − j
//! bits.
//!
//! Cost (labels `mul`, `square`; [`mul_cost`], [`square_cost`]):
//! * mul, rows × cols: each party sends `⌈rows·ℓ/8⌉` bytes (flight 1) then
//!   `⌈rows·cols·ℓ(ℓ+1)/2/8⌉` (flight 2); element-wise (cols = 1): ℓ + ℓ(ℓ+1)/2 bits per cross
//!   term, two cross terms; 2 rounds. COTs: rows·ℓ per direction.
//! * square: client → server `⌈n(ℓ−1)/8⌉`, server → client `⌈n·ℓ(ℓ−1)/2/8⌉` bytes; 2 rounds.
//!
//! **Why not HE.** he-linear encodes a vector as the coefficients of a polynomial, and a
//! ciphertext × plaintext product is a negacyclic convolution of coefficient vectors, not an
//! element-wise product; element-wise products need SIMD slots (batching), which exist only for
//! a plaintext modulus t ≡ 1 mod 2N, never for t = 2^ℓ. An HE element-wise product would need a
//! prime plaintext modulus and conversions to and from Z_2^ℓ (extra protocols per element), so
//! the OT route is the one built here. The exception is a row-scalar product over long rows and
//! the row sums of squares (LayerNorm's): they are matrix products (diag(r)·V and the diagonal of
//! V^c·(V^s)ᵀ), which coefficient encoding does well; `he_linear::row_products` runs them on
//! HE through [`crate::functions::layernorm::RowProducts`], at a third of these bytes.
use super::acot::{acot_duplex, acot_server_sends, RecvSide, SendSide};
use super::{check_len, check_shares, Cost, CotDemand, Session};
use crate::adapters::AcotLayout;
use mpc_core::{Error, Result, Ring};

/// Element-wise product of shared vectors. Label `mul`.
pub fn mul(sess: &mut Session, x: &[u64], y: &[u64], ring: Ring) -> Result<Vec<u64>> {
    check_len(x.len(), y.len(), "mul")?;
    mul_row_scalar(sess, x, y, 1, ring)
}

/// `z[r·cols + c] = x[r·cols + c]·y[r]`: `x` is rows × cols (row-major), `y` one value per row.
/// Label `mul`.
pub fn mul_row_scalar(
    sess: &mut Session,
    x: &[u64],
    y: &[u64],
    cols: usize,
    ring: Ring,
) -> Result<Vec<u64>> {
    check_shares(x, ring, "mul")?;
    check_shares(y, ring, "mul")?;
    if cols == 0 || y.len() * cols != x.len() {
        return Err(Error::Shape(format!(
            "mul: {} elements are not {} rows of {cols}",
            x.len(),
            y.len()
        )));
    }
    let l = ring.bits();
    let layout = AcotLayout {
        ring,
        widths: (0..l).map(|j| l - j).collect(),
        fanout: cols,
    };
    let choices: Vec<bool> = y
        .iter()
        .flat_map(|&v| (0..l).map(move |j| (v >> j) & 1 == 1))
        .collect();
    sess.scope("mul", |sess| {
        let (mine, theirs) = acot_duplex(
            sess,
            Some(SendSide {
                layout: &layout,
                units: y.len(),
                corr: |u: usize, _: usize, c: usize| x[u * cols + c],
            }),
            Some(RecvSide {
                layout: &layout,
                choices: &choices,
            }),
        )?;
        Ok((0..x.len())
            .map(|i| {
                let own = ring.mul(x[i], y[i / cols]);
                ring.add(own, ring.add(mine[i], theirs[i]))
            })
            .collect())
    })
}

/// Element-wise square. Label `square`.
pub fn square(sess: &mut Session, x: &[u64], ring: Ring) -> Result<Vec<u64>> {
    check_shares(x, ring, "square")?;
    let l = ring.bits();
    sess.scope("square", |sess| {
        let cross = if l == 1 {
            vec![0; x.len()]
        } else {
            let layout = AcotLayout {
                ring,
                widths: (0..l - 1).map(|j| l - 1 - j).collect(),
                fanout: 1,
            };
            let choices: Vec<bool> = x
                .iter()
                .flat_map(|&v| (0..l - 1).map(move |j| (v >> j) & 1 == 1))
                .collect();
            acot_server_sends(sess, &layout, x.len(), |u, _, _| x[u], &choices)?
        };
        Ok(x.iter()
            .zip(cross)
            .map(|(&v, z)| ring.add(ring.mul(v, v), z))
            .collect())
    })
}

/// COTs drawn by [`mul_row_scalar`] on `rows` rows ([`mul`]: rows = n).
pub fn mul_cots(rows: usize, ring: Ring) -> CotDemand {
    CotDemand::both(rows * ring.bits() as usize)
}

/// Exact cost of [`mul_row_scalar`] on rows × cols ([`mul`]: cols = 1).
pub fn mul_cost(rows: usize, cols: usize, ring: Ring) -> Cost {
    let l = ring.bits() as usize;
    let msg = rows * cols * l * (l + 1) / 2;
    Cost::flight(rows * l, rows * l).then(Cost::flight(msg, msg))
}

/// COTs drawn by [`square`] on n elements.
pub fn square_cots(n: usize, ring: Ring) -> CotDemand {
    CotDemand {
        server: n * (ring.bits() as usize - 1),
        client: 0,
    }
}

/// Exact cost of [`square`] on n elements.
pub fn square_cost(n: usize, ring: Ring) -> Cost {
    let l = ring.bits() as usize;
    if l == 1 {
        return Cost::default();
    }
    Cost::flight(0, n * (l - 1)).then(Cost::flight(n * l * (l - 1) / 2, 0))
}
