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
//! **Narrow square** ([`square_narrow`], x² mod 2^ℓ for |x| < 2^{k−2}, ⌈ℓ/2⌉ ≤ k ≤ ℓ − 2;
//! SIRNN / Cheetah style): the parties keep their shares' low k bits, the server adds the bias
//! B = 2^{k−2}, so `x' = x + B = a_0 + a_1 − w·2^k` (a_i < 2^k) with MSB 0 and wrap
//! `w = m_0 ∨ m_1` (m_i the top bit of a_i, as in the known-MSB truncation). With 2k ≥ ℓ,
//! `x'² ≡ a_0² + a_1² + 2·a_0·a_1 − 2^{k+1}·w·(a_0 + a_1)` and
//! `w·(a_0 + a_1) = m_0·a_0 + m_1·a_1 + m_1·a_0(1 − m_0) + m_0·a_1(1 − m_1)`. The cross term
//! `2·a_0·a_1 − 2^{k+1}·m_1·a_0(1 − m_0)` is one batch of k COTs on the client's bits of a_1
//! (the last one, its bit k − 1, is m_1: its correlation carries both terms), the term
//! `2^{k+1}·m_0·a_1(1 − m_1)` one COT the server chooses by m_0; `x² = x'² − 2B·x − B²`
//! (x from the full shares). The result is exactly [`square`]'s, with k COTs instead of ℓ − 1
//! from the server and one from the client. Outside |x| < 2^{k−2} it is garbage (the caller's
//! precondition).
//!
//! **Narrow product** ([`mul_narrow`], x·y mod 2^ℓ for |x|, |y| < 2^{k−2}, same k range): with
//! a_i, b_i the biased low k bits of x_i, y_i and wraps `w_x = m^x_0 ∨ m^x_1`,
//! `w_y = m^y_0 ∨ m^y_1`, `x'y' ≡ (a_0 + a_1)(b_0 + b_1) − 2^k·w_y·(a_0 + a_1) −
//! 2^k·w_x·(b_0 + b_1)`. Each party sends one batch of k + 1 COTs on the peer's choices: the
//! k bits of the peer's b (correlation its own a; the last, on m^y_peer, also carries
//! `−2^k·m^y_peer·a(1 − m^y_own)`) and the peer's m^x (correlation `−b(1 − m^x_own)`, scale
//! 2^k); `xy = x'y' − B·x − B·y − B²`. 2(k + 1) COTs instead of 2ℓ, the same result as [`mul`].
//!
//! Cost (labels `mul`, `square`; [`mul_cost`], [`square_cost`], [`square_narrow_cost`],
//! [`mul_narrow_cost`]):
//! * mul, rows × cols: each party sends `⌈rows·ℓ/8⌉` bytes (flight 1) then
//!   `⌈rows·cols·ℓ(ℓ+1)/2/8⌉` (flight 2); element-wise (cols = 1): ℓ + ℓ(ℓ+1)/2 bits per cross
//!   term, two cross terms; 2 rounds. COTs: rows·ℓ per direction.
//! * square: client → server `⌈n(ℓ−1)/8⌉`, server → client `⌈n·ℓ(ℓ−1)/2/8⌉` bytes; 2 rounds.
//! * narrow square: flight 1 client → server `n·k` bits, server → client `n` bits; flight 2
//!   server → client `n·Σ_{j<k}(ℓ − 1 − j)` bits, client → server `n(ℓ − k − 1)` bits; 2 rounds.
//!   COTs: n·k from the server, n from the client.
//! * narrow product: each party sends `n(k + 1)` bits (flight 1) then
//!   `n(Σ_{j<k}(ℓ − j) + ℓ − k)` bits (flight 2); 2 rounds; COTs n(k + 1) per direction.
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
        return Err(Error::shape("mul: elements", x.len(), [y.len(), cols]));
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

/// Whether [`square_narrow`] / [`mul_narrow`] on Z_2^ℓ with k bits run the narrow protocols
/// (⌈ℓ/2⌉ ≤ k ≤ ℓ − 2); otherwise they are [`square`] / [`mul`].
fn narrow(ring: Ring, k: u32) -> bool {
    let l = ring.bits();
    2 * k >= l && k + 2 <= l
}

/// Element-wise square, exact for |x| < 2^{k−2} (module comment; garbage beyond): the narrow
/// protocol when ⌈ℓ/2⌉ ≤ k ≤ ℓ − 2, else [`square`]. Label `square`.
pub fn square_narrow(sess: &mut Session, x: &[u64], ring: Ring, k: u32) -> Result<Vec<u64>> {
    if !narrow(ring, k) {
        return square(sess, x, ring);
    }
    check_shares(x, ring, "square")?;
    let l = ring.bits();
    let server = sess.is_server();
    let bias = 1u64 << (k - 2);
    let (a, m) = low_bits(x, k, server)?;
    // Server → client: COT j < k on the client's bit j of a_1, scale 2^{j+1}; the last one
    // (scale 2^k, choice m_1) also carries −2^{k+1}·a_0(1 − m_0).
    let server_layout = AcotLayout {
        ring,
        widths: (0..k).map(|j| l - 1 - j).collect(),
        fanout: 1,
    };
    // Client → server: one COT on the server's m_0, scale 2^{k+1}: −a_1(1 − m_1).
    let client_layout = AcotLayout {
        ring,
        widths: vec![l - k - 1],
        fanout: 1,
    };
    let last = k as usize - 1;
    let corr = |u: usize, j: usize, _: usize| {
        if server {
            if j < last {
                a[u]
            } else {
                ring.sub(a[u], ring.mul(2 * a[u], 1 - m[u]))
            }
        } else {
            ring.neg(ring.mul(a[u], 1 - m[u]))
        }
    };
    let choices: Vec<bool> = if server {
        m.iter().map(|&b| b == 1).collect()
    } else {
        a.iter()
            .flat_map(|&v| (0..k).map(move |j| (v >> j) & 1 == 1))
            .collect()
    };
    let (send_layout, recv_layout) = if server {
        (&server_layout, &client_layout)
    } else {
        (&client_layout, &server_layout)
    };
    sess.scope("square", |sess| {
        let (mine, theirs) = acot_duplex(
            sess,
            Some(SendSide {
                layout: send_layout,
                units: x.len(),
                corr,
            }),
            Some(RecvSide {
                layout: recv_layout,
                choices: &choices,
            }),
        )?;
        let shift = ring.reduce(1u64 << (k + 1));
        Ok((0..x.len())
            .map(|i| {
                // a_i² − 2^{k+1}·m_i·a_i − 2^{k−1}·x_i (− B² on the server's share).
                let mut y = ring.mul(a[i], a[i]);
                y = ring.sub(y, ring.mul(shift, m[i] * a[i]));
                y = ring.sub(y, ring.mul(ring.reduce(2 * bias), x[i]));
                if server {
                    y = ring.sub(y, ring.reduce(bias.wrapping_mul(bias)));
                }
                ring.add(y, ring.add(mine[i], theirs[i]))
            })
            .collect())
    })
}

/// COTs drawn by [`square_narrow`] on n elements.
pub fn square_narrow_cots(n: usize, ring: Ring, k: u32) -> CotDemand {
    if !narrow(ring, k) {
        return square_cots(n, ring);
    }
    CotDemand {
        server: n * k as usize,
        client: n,
    }
}

/// Exact cost of [`square_narrow`] on n elements.
pub fn square_narrow_cost(n: usize, ring: Ring, k: u32) -> Cost {
    if !narrow(ring, k) {
        return square_cost(n, ring);
    }
    let (l, k) = (ring.bits() as usize, k as usize);
    let server_msgs: usize = (0..k).map(|j| l - 1 - j).sum();
    Cost::flight(n, n * k).then(Cost::flight(n * server_msgs, n * (l - k - 1)))
}

/// The biased low k bits of each share (the server adds 2^{k−2}) and their top bits.
fn low_bits(x: &[u64], k: u32, server: bool) -> Result<(Vec<u64>, Vec<u64>)> {
    let small = Ring::new(k)?;
    let bias = if server { 1u64 << (k - 2) } else { 0 };
    let a: Vec<u64> = x
        .iter()
        .map(|&v| small.add(small.reduce(v), bias))
        .collect();
    let m = a.iter().map(|&v| small.msb(v) as u64).collect();
    Ok((a, m))
}

/// Element-wise product, exact for |x|, |y| < 2^{k−2} (module comment; garbage beyond): the
/// narrow protocol when ⌈ℓ/2⌉ ≤ k ≤ ℓ − 2, else [`mul`]. Label `mul`.
pub fn mul_narrow(
    sess: &mut Session,
    x: &[u64],
    y: &[u64],
    ring: Ring,
    k: u32,
) -> Result<Vec<u64>> {
    if !narrow(ring, k) {
        return mul(sess, x, y, ring);
    }
    check_len(x.len(), y.len(), "mul")?;
    check_shares(x, ring, "mul")?;
    check_shares(y, ring, "mul")?;
    let l = ring.bits();
    let server = sess.is_server();
    let bias = 1u64 << (k - 2);
    let (a, mx) = low_bits(x, k, server)?;
    let (b, my) = low_bits(y, k, server)?;
    // The same layout both ways: COT j < k on the peer's bit j of b (scale 2^j), COT k on the
    // peer's m^x (scale 2^k).
    let layout = AcotLayout {
        ring,
        widths: (0..k).map(|j| l - j).chain([l - k]).collect(),
        fanout: 1,
    };
    let last = k as usize - 1;
    let corr = |u: usize, j: usize, _: usize| match j {
        j if j < last => a[u],
        j if j == last => ring.sub(a[u], ring.mul(2 * a[u], 1 - my[u])),
        _ => ring.neg(ring.mul(b[u], 1 - mx[u])),
    };
    let choices: Vec<bool> = (0..x.len())
        .flat_map(|u| {
            let (bu, mu) = (b[u], mx[u]);
            (0..k).map(move |j| (bu >> j) & 1 == 1).chain([mu == 1])
        })
        .collect();
    sess.scope("mul", |sess| {
        let (mine, theirs) = acot_duplex(
            sess,
            Some(SendSide {
                layout: &layout,
                units: x.len(),
                corr,
            }),
            Some(RecvSide {
                layout: &layout,
                choices: &choices,
            }),
        )?;
        let scale = ring.reduce(1u64 << k);
        let b_ring = ring.reduce(bias);
        Ok((0..x.len())
            .map(|i| {
                // a·b − 2^k(m^y·a + m^x·b) − B·x − B·y (− B² on the server's share).
                let mut z = ring.mul(a[i], b[i]);
                z = ring.sub(z, ring.mul(scale, my[i] * a[i] + mx[i] * b[i]));
                z = ring.sub(z, ring.mul(b_ring, ring.add(x[i], y[i])));
                if server {
                    z = ring.sub(z, ring.reduce(bias.wrapping_mul(bias)));
                }
                ring.add(z, ring.add(mine[i], theirs[i]))
            })
            .collect())
    })
}

/// COTs drawn by [`mul_narrow`] on n elements.
pub fn mul_narrow_cots(n: usize, ring: Ring, k: u32) -> CotDemand {
    if !narrow(ring, k) {
        return mul_cots(n, ring);
    }
    CotDemand::both(n * (k as usize + 1))
}

/// Exact cost of [`mul_narrow`] on n elements.
pub fn mul_narrow_cost(n: usize, ring: Ring, k: u32) -> Cost {
    if !narrow(ring, k) {
        return mul_cost(n, 1, ring);
    }
    let (l, k) = (ring.bits() as usize, k as usize);
    let msgs: usize = (0..k).map(|j| l - j).sum::<usize>() + l - k;
    Cost::flight(n * (k + 1), n * (k + 1)).then(Cost::flight(n * msgs, n * msgs))
}
