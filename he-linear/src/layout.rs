//! How COP packs an m×n weight matrix into ciphertexts and its k×n output into responses.
//!
//! **Rows.** P rows of W share one ciphertext (P ≤ ⌊N/n⌋): row jP + i sits at coefficients
//! i·S .. i·S + n of ciphertext j, stride S = ⌊N/P⌋, so a layer is ⌈m/P⌉ ciphertexts instead
//! of m. Rows longer than N take ⌈n/N⌉ ciphertexts each (P = 1, one per column chunk).
//!
//! **Outputs.** T = ⌊S/n⌋ tokens share one response (capped so the m·T terms summed into one
//! coefficient stay inside the parameters' noise analysis).
//! Token τ of a response multiplies ciphertext j by x[τ, jP + i]·X^{τ·n − i·S} for every i: row
//! i lands on the token's slot τ·n .. τ·n + n, the other rows at distance ≥ S − (T − 1)·n ≥ n
//! from every slot, with no wrap-around onto a slot because P·S ≤ N. So the client multiplies
//! each ciphertext by a plaintext polynomial with T·P terms (in the NTT domain), and the noise
//! per revealed coefficient is that of m·T scalar products, as with P = 1.
//!
//! P trades setup and cache (∝ 1/P) against the bytes of a single-phase online call
//! (⌈k/T⌉ responses, T ≈ ⌊N/n⌋/P); the client's work, (k/T)·(m/P) products of T·P terms, does
//! not depend on the split. [`Packing`] names the two ends.
use crate::matrix::MatDims;
use crate::params::HeParams;
use crate::response::Window;
use mpc_core::{Error, Result};

/// Bound on P: the client accumulates k·P "virtual tokens" per column group (`cop`), k·P·N
/// residues, and gains little setup beyond it (a 768×2 head is 24 ciphertexts at P = 32).
pub const MAX_ROWS_PER_CT: usize = 32;

/// Which end of the setup / online trade a layer takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Packing {
    /// As many rows per ciphertext as fit (P = min(⌊N/n⌋, m, 32)): the smallest setup and
    /// cache, one token per response.
    #[default]
    Compact,
    /// One row per ciphertext (P = 1): the fewest single-phase online bytes (⌊N/n⌋ tokens per
    /// response), ⌊N/n⌋ times the setup.
    Online,
}

impl std::str::FromStr for Packing {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "compact" => Ok(Packing::Compact),
            "online" => Ok(Packing::Online),
            _ => Err(Error::InvalidArgument(format!(
                "row packing `{s}`: expected `compact` or `online`"
            ))),
        }
    }
}

/// One token's chunk placed in an output ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Token (row of X).
    pub token: usize,
    /// Chunk of the output row (columns chunk·N ..).
    pub chunk: usize,
    /// First coefficient in the ciphertext.
    pub offset: usize,
    /// Number of coefficients.
    pub width: usize,
}

/// The packing of one layer (both parties derive every position from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopLayout {
    /// Rows of W (inner dimension).
    pub m: usize,
    /// Columns of W.
    pub n: usize,
    /// Rows per ciphertext, P.
    pub rows_per_ct: usize,
    /// Ring degree N.
    pub poly_n: usize,
    /// The parameters' bound on terms per coefficient.
    max_terms: usize,
}

impl CopLayout {
    /// The layout of an m×n weight matrix (`w`) with P rows per ciphertext, checked:
    /// 1 ≤ P ≤ min(⌊N/n⌋, m, [`MAX_ROWS_PER_CT`]) (P = 1 when n > N).
    pub fn new(params: &HeParams, w: MatDims, rows_per_ct: usize) -> Result<CopLayout> {
        let MatDims { rows: m, cols: n } = w;
        if m == 0 || n == 0 {
            return Err(Error::shape("weight matrix", [m, n], "a non-empty matrix"));
        }
        let most = Self::most_rows(params, m, n);
        if rows_per_ct == 0 || rows_per_ct > most {
            return Err(Error::out_of_range(
                format!("rows of {n} per ciphertext"),
                rows_per_ct,
                mpc_core::Dims::within(1, most),
            ));
        }
        Ok(CopLayout {
            m,
            n,
            rows_per_ct,
            poly_n: params.n(),
            max_terms: usize::try_from(params.max_terms()).unwrap_or(usize::MAX),
        })
    }

    fn most_rows(params: &HeParams, m: usize, n: usize) -> usize {
        (params.n() / n).clamp(1, MAX_ROWS_PER_CT).min(m)
    }

    /// The layout `packing` gives an m×n weight matrix (`w`).
    pub fn choose(params: &HeParams, w: MatDims, packing: Packing) -> Result<CopLayout> {
        let rows = match packing {
            Packing::Compact => Self::most_rows(params, w.rows.max(1), w.cols.max(1)),
            Packing::Online => 1,
        };
        CopLayout::new(params, w, rows)
    }

    /// Coefficient stride between the rows of one ciphertext, S = ⌊N/P⌋.
    pub fn stride(&self) -> usize {
        self.poly_n / self.rows_per_ct
    }

    /// Column chunks per row, ⌈n/N⌉.
    pub fn chunks(&self) -> usize {
        self.n.div_ceil(self.poly_n)
    }

    /// Ciphertexts per column chunk, ⌈m/P⌉.
    pub fn cts_per_chunk(&self) -> usize {
        self.m.div_ceil(self.rows_per_ct)
    }

    /// Ciphertexts of the layer (setup sends and the client caches this many).
    pub fn ciphertexts(&self) -> usize {
        self.chunks() * self.cts_per_chunk()
    }

    /// Tokens per response, T.
    pub fn tokens_per_ct(&self) -> usize {
        if self.n > self.poly_n {
            return 1;
        }
        let by_noise = (self.max_terms / self.m).max(1);
        (self.stride() / self.n).min(by_noise).max(1)
    }

    /// Setup bytes from server to client: (seed, b) per ciphertext.
    pub fn setup_bytes(&self, params: &HeParams) -> usize {
        self.ciphertexts() * (16 + 4 * params.rns().len() * self.poly_n)
    }

    /// Offset of row i of a ciphertext's packed rows.
    pub fn row_offset(&self, i: usize) -> usize {
        i * self.stride()
    }

    /// The multiplier exponent for token slot τ and packed row i: τ·n − i·S, as (exponent in
    /// 0..N, negated) with X^{−e} = −X^{N−e}.
    pub fn shift(&self, tau: usize, i: usize) -> (usize, bool) {
        let (up, down) = (tau * self.n, self.row_offset(i));
        if up >= down {
            (up - down, false)
        } else {
            (self.poly_n - (down - up), true)
        }
    }

    /// How the k×n output is packed into responses.
    pub fn output_layout(&self, k: usize) -> Vec<Vec<Slot>> {
        if self.n <= self.poly_n {
            let per = self.tokens_per_ct();
            (0..k.div_ceil(per))
                .map(|ct| {
                    (ct * per..((ct + 1) * per).min(k))
                        .enumerate()
                        .map(|(j, token)| Slot {
                            token,
                            chunk: 0,
                            offset: j * self.n,
                            width: self.n,
                        })
                        .collect()
                })
                .collect()
        } else {
            let (poly_n, n) = (self.poly_n, self.n);
            (0..k)
                .flat_map(|token| {
                    (0..self.chunks()).map(move |chunk| {
                        vec![Slot {
                            token,
                            chunk,
                            offset: 0,
                            width: poly_n.min(n - chunk * poly_n),
                        }]
                    })
                })
                .collect()
        }
    }

    /// Response bytes of a k-token call revealing `window` (without the message header).
    pub fn responses_bytes(&self, params: &HeParams, k: usize, window: Window) -> usize {
        self.output_layout(k)
            .iter()
            .map(|slots| window.response_bytes(params, slots.iter().map(|s| s.width).sum()))
            .sum()
    }
}

/// Revealed coefficient positions of one output ciphertext.
pub fn slot_positions(slots: &[Slot]) -> Vec<u32> {
    slots
        .iter()
        .flat_map(|s| (s.offset..s.offset + s.width).map(|p| p as u32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packings_at_bert_base_shapes() {
        let params = HeParams::default_params().unwrap();
        // (m, n) → (compact P, its T, cts; online T, cts)
        for ((m, n), want) in [
            ((768, 2304), (3, 1, 256, 3, 768)),
            ((768, 768), (10, 1, 77, 10, 768)),
            ((768, 3072), (2, 1, 384, 2, 768)),
            ((3072, 768), (10, 1, 308, 10, 3072)),
            ((768, 2), (32, 42, 24, 42, 768)),
            ((3, 8292), (1, 1, 6, 1, 6)),
        ] {
            let w = MatDims { rows: m, cols: n };
            let c = CopLayout::choose(&params, w, Packing::Compact).unwrap();
            let o = CopLayout::choose(&params, w, Packing::Online).unwrap();
            let got = (
                c.rows_per_ct,
                c.tokens_per_ct(),
                c.ciphertexts(),
                o.tokens_per_ct(),
                o.ciphertexts(),
            );
            assert_eq!(got, want, "{m}×{n}");
        }
        let w = |rows, cols| MatDims { rows, cols };
        assert!(CopLayout::new(&params, w(768, 768), 11).is_err());
        assert!(CopLayout::new(&params, w(768, 768), 0).is_err());
        assert!(CopLayout::new(&params, w(0, 768), 1).is_err());
    }

    #[test]
    fn no_row_lands_on_another_tokens_slot() {
        let params = HeParams::default_params().unwrap();
        let n_poly = params.n();
        for (m, n, p) in [(40, 700, 5), (40, 700, 2), (9, 3000, 2), (64, 100, 32)] {
            let l = CopLayout::new(&params, MatDims { rows: m, cols: n }, p).unwrap();
            let t = l.tokens_per_ct();
            for tau in 0..t {
                for i in 0..p {
                    let (e, _) = l.shift(tau, i);
                    for i2 in 0..p {
                        // Row i2 moves to [i2·S + e, +n) mod N.
                        let start = (l.row_offset(i2) + e) % n_poly;
                        for c in 0..n {
                            let pos = (start + c) % n_poly;
                            let slot = (pos < t * n).then_some(pos / n);
                            if i2 == i {
                                assert_eq!(slot, Some(tau), "m={m} n={n} P={p}");
                            } else {
                                assert_eq!(slot, None, "m={m} n={n} P={p} τ={tau} i={i} i2={i2}");
                            }
                        }
                    }
                }
            }
        }
    }
}
