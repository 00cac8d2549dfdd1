//! CoPriv's Winograd convolution F(2×2, 3×3) on shares (used by [`crate::conv`]).
//!
//! Lavin–Gray: for a 4×4 input tile d and a 3×3 kernel g, the 2×2 output tile of the
//! correlation is Y = Aᵀ·[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]·A with
//!
//! ```text
//! Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]   G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
//! Aᵀ = [1 1 1 0; 0 1 −1 −1]
//! ```
//!
//! G has halves, which Z_2^ℓ cannot hold; the server uses 2G (integer) instead, so that
//! U = (2G)·g·(2G)ᵀ = 4·G·g·Gᵀ and the identity, an identity of integer polynomials after
//! multiplying by 4, gives exactly 4·Y in Z_2^ℓ. The factor 4 goes into the truncation
//! (by s + 2 instead of s), so the result's mirror is the direct convolution's.
//!
//! Protocol: the input transform V = Bᵀ·d·B is linear with integer coefficients, so each party
//! applies it to its share (local); the server transforms the kernel; the element-wise products
//! over all tiles and channels become, per position ξ of the 4×4 Winograd domain, one product
//! U_ξ (K×C) · V_ξ (C×T), T = ⌈Ho/2⌉·⌈Wo/2⌉ tiles — the 16 products run as one batch of the OT
//! matrix product (2 flights); the output transform Aᵀ·M·A is local again. Tiles that overhang
//! the output (odd Ho or Wo) read zeros and their extra outputs are dropped.
use crate::conv::{ConvParty, ConvShape};
use mpc_core::{Result, Ring};
use ot_nonlinear::mpc::{server_matmul, MatmulDims, Session};

/// Positions of the Winograd domain (4×4).
const POSITIONS: usize = 16;

/// Whether F(2×2, 3×3) applies: a 3×3 kernel with stride 1.
pub fn supports(shape: &ConvShape) -> bool {
    shape.kernel == (3, 3) && shape.stride == (1, 1)
}

/// Tiles (rows, columns) of 2×2 outputs.
fn tiles(shape: &ConvShape) -> (usize, usize) {
    (
        shape.out_height().div_ceil(2),
        shape.out_width().div_ceil(2),
    )
}

/// The batched product's dimensions: 16 × (K×C)·(C×T).
pub fn dims(shape: &ConvShape) -> MatmulDims {
    let (th, tw) = tiles(shape);
    MatmulDims {
        batch: POSITIONS,
        rows: shape.out_channels,
        inner: shape.in_channels,
        cols: th * tw,
    }
}

/// Bᵀ·v for a column v of 4.
fn b_t(v: [u64; 4]) -> [u64; 4] {
    [
        v[0].wrapping_sub(v[2]),
        v[1].wrapping_add(v[2]),
        v[2].wrapping_sub(v[1]),
        v[1].wrapping_sub(v[3]),
    ]
}

/// (2G)·v for a column v of 3.
fn g2(v: [u64; 3]) -> [u64; 4] {
    let s = v[0].wrapping_add(v[2]);
    [
        v[0].wrapping_mul(2),
        s.wrapping_add(v[1]),
        s.wrapping_sub(v[1]),
        v[2].wrapping_mul(2),
    ]
}

/// Aᵀ·v for a column v of 4.
fn a_t(v: [u64; 4]) -> [u64; 2] {
    [
        v[0].wrapping_add(v[1]).wrapping_add(v[2]),
        v[1].wrapping_sub(v[2]).wrapping_sub(v[3]),
    ]
}

/// L·m·Lᵀ for a row transform `f` (n → m) applied to the columns, then to the rows.
fn two_sided<const N: usize, const M: usize>(
    m: [[u64; N]; N],
    f: impl Fn([u64; N]) -> [u64; M],
) -> [[u64; M]; M] {
    // Columns: t[·][j] = f(m[·][j]).
    let mut t = [[0u64; N]; M];
    for j in 0..N {
        let col = f(std::array::from_fn(|i| m[i][j]));
        for i in 0..M {
            t[i][j] = col[i];
        }
    }
    std::array::from_fn(|i| f(t[i]))
}

/// The server's transformed kernel `U_ξ[k][c]` = ((2G)·g·(2G)ᵀ)_ξ, laid out ξ-major.
pub fn transform_kernel(shape: &ConvShape, kernel: &[u64], ring: Ring) -> Vec<u64> {
    let (k_n, c_n) = (shape.out_channels, shape.in_channels);
    let mut u = vec![0u64; POSITIONS * k_n * c_n];
    for k in 0..k_n {
        for c in 0..c_n {
            let g = &kernel[(k * c_n + c) * 9..(k * c_n + c + 1) * 9];
            let gm: [[u64; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| g[i * 3 + j]));
            let t = two_sided(gm, g2);
            for (xi, &v) in t.iter().flatten().enumerate() {
                u[(xi * k_n + k) * c_n + c] = ring.reduce(v);
            }
        }
    }
    u
}

/// The input transform of a share: `V_ξ[c][t] = (Bᵀ·d_{c,t}·B)_ξ`, ξ-major.
pub fn transform_input(shape: &ConvShape, x: &[u64], ring: Ring) -> Vec<u64> {
    let (th, tw) = tiles(shape);
    let (c_n, t_n) = (shape.in_channels, th * tw);
    let mut v = vec![0u64; POSITIONS * c_n * t_n];
    for c in 0..c_n {
        for a in 0..th {
            for b in 0..tw {
                let d: [[u64; 4]; 4] = std::array::from_fn(|i| {
                    std::array::from_fn(|j| shape.at_padded(x, c, 2 * a + i, 2 * b + j))
                });
                let t = two_sided(d, b_t);
                for (xi, &val) in t.iter().flatten().enumerate() {
                    v[(xi * c_n + c) * t_n + a * tw + b] = ring.reduce(val);
                }
            }
        }
    }
    v
}

/// The output transform of a share: Y = Aᵀ·M·A per tile, cropped to K × Ho × Wo.
pub fn transform_output(shape: &ConvShape, m: &[u64], ring: Ring) -> Vec<u64> {
    let (th, tw) = tiles(shape);
    let (k_n, t_n) = (shape.out_channels, th * tw);
    let (ho, wo) = (shape.out_height(), shape.out_width());
    let mut y = vec![0u64; k_n * ho * wo];
    for k in 0..k_n {
        for a in 0..th {
            for b in 0..tw {
                let t = a * tw + b;
                let mt: [[u64; 4]; 4] = std::array::from_fn(|i| {
                    std::array::from_fn(|j| m[((i * 4 + j) * k_n + k) * t_n + t])
                });
                let out = two_sided(mt, a_t);
                for (i, row) in out.iter().enumerate() {
                    for (j, &val) in row.iter().enumerate() {
                        let (oy, ox) = (2 * a + i, 2 * b + j);
                        if oy < ho && ox < wo {
                            y[(k * ho + oy) * wo + ox] = ring.reduce(val);
                        }
                    }
                }
            }
        }
    }
    y
}

/// Shares of 4·(W ⋆ x) (K × Ho × Wo, no bias), the server's kernel K × C × 3 × 3.
pub(crate) fn conv(
    sess: &mut Session,
    party: ConvParty<'_>,
    shape: &ConvShape,
    x: &[u64],
    ring: Ring,
) -> Result<Vec<u64>> {
    let v = transform_input(shape, x, ring);
    let u = match party {
        ConvParty::Server(w) => Some(transform_kernel(shape, w.kernel(), ring)),
        ConvParty::Client => None,
    };
    let m = server_matmul(sess, u.as_deref(), &v, dims(shape), ring)?;
    Ok(transform_output(shape, &m, ring))
}
