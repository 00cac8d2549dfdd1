//! The COP client's hot loop: for every token r and every column c of a column group (one RNS
//! limb of one ciphertext part), `acc[r][c] = Σ_μ x[μ][r] · w[μ][c] mod p`.
//!
//! It is a modular matrix product with 31-bit operands. Products are < 2^62, accumulated lazily
//! in `u64` lanes and folded every [`FOLD`] terms (`rns::lazy_fold`). Weights are
//! stored in panels of 8 columns × all rows (`[block][μ][8]`), so the inner loop streams one
//! contiguous panel (m·32 bytes, L2-resident) for a tile of [`TILE`] tokens held in registers.
//! With AVX-512 each step is one zero-extending load of the panel row, then per token a
//! broadcast, a `vpmuludq` and a `vpaddq` on 8 columns; with AVX2 the 8 columns take two of
//! each (even and odd columns) and the tile is split in halves of 8 tokens, which is what
//! fits AVX2's 16 registers.
use crate::rns::{lazy_fold, Modulus, LAZY_TERMS};
use crate::simd::reduce_into;
pub use crate::simd::KernelPath;

/// Columns per panel.
pub const LANES: usize = 8;
/// Tokens per register tile: 16 accumulators of 8 columns fill half of AVX-512's registers
/// (on AVX2, 8 tokens per half: measured there 4 → 4.9, 6 → 4.6, 8 → 7.1, 12 → 4.7,
/// 16 → 5.3 G multiply-accumulates/s per core).
pub const TILE: usize = 16;
/// Tokens per AVX2 half-tile.
const AVX2_TILE: usize = 8;
/// Products accumulated between folds.
pub const FOLD: usize = LAZY_TERMS;

/// Portable path: one tile of tokens (`x_tile`, `[μ][TILE]`) over one panel.
fn panel_tile_portable(panel: &[u32], x_tile: &[u32], two32: u64) -> [[u64; LANES]; TILE] {
    let rows = panel.len() / LANES;
    let mut acc = [[0u64; LANES]; TILE];
    let mut mu = 0;
    while mu < rows {
        let end = (mu + FOLD).min(rows);
        for row in mu..end {
            let w = &panel[row * LANES..row * LANES + LANES];
            let xs = &x_tile[row * TILE..row * TILE + TILE];
            for t in 0..TILE {
                let xv = xs[t] as u64;
                for j in 0..LANES {
                    acc[t][j] += xv * w[j] as u64;
                }
            }
        }
        for a in acc.iter_mut() {
            for v in a.iter_mut() {
                *v = lazy_fold(*v, two32);
            }
        }
        mu = end;
    }
    acc
}

/// AVX2 path: [`AVX2_TILE`] tokens of a tile (`x_tile`, `[μ][TILE]`) from its token `first`
/// with `vpmuludq` (even columns from the low halves of the 64-bit lanes, odd columns after a
/// 32-bit shift), 2·[`AVX2_TILE`] accumulators held in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn panel_tile_avx2(
    panel: &[u32],
    x_tile: &[u32],
    first: usize,
    two32: u64,
) -> [[u64; LANES]; AVX2_TILE] {
    use std::arch::x86_64::*;
    let rows = panel.len() / LANES;
    assert!(x_tile.len() == rows * TILE && first + AVX2_TILE <= TILE);
    let zero = _mm256_setzero_si256();
    let mut even = [zero; AVX2_TILE];
    let mut odd = [zero; AVX2_TILE];
    let low = _mm256_set1_epi64x(0xFFFF_FFFF);
    let c = _mm256_set1_epi64x(two32 as i64);
    let pp = panel.as_ptr();
    // SAFETY: first + AVX2_TILE ≤ TILE ≤ x_tile.len().
    let xp = unsafe { x_tile.as_ptr().add(first) };
    let mut mu = 0;
    while mu < rows {
        let end = (mu + FOLD).min(rows);
        for row in mu..end {
            // SAFETY: row < rows, so the 8 lanes are inside `panel`; the tile is inside `x`.
            let w = unsafe { _mm256_loadu_si256(pp.add(row * LANES) as *const __m256i) };
            let w_odd = _mm256_srli_epi64::<32>(w);
            // SAFETY: row < rows and the tile holds rows·TILE values.
            let xr = unsafe { xp.add(row * TILE) };
            for t in 0..AVX2_TILE {
                // A 32-bit broadcast from memory is a pure load (no shuffle port);
                // vpmuludq reads only the low half of each 64-bit lane.
                let xv = _mm256_broadcastd_epi32(_mm_cvtsi32_si128(unsafe { *xr.add(t) } as i32));
                even[t] = _mm256_add_epi64(even[t], _mm256_mul_epu32(w, xv));
                odd[t] = _mm256_add_epi64(odd[t], _mm256_mul_epu32(w_odd, xv));
            }
        }
        for t in 0..AVX2_TILE {
            for a in [&mut even[t], &mut odd[t]] {
                let hi = _mm256_srli_epi64::<32>(*a);
                *a = _mm256_add_epi64(_mm256_and_si256(*a, low), _mm256_mul_epu32(hi, c));
            }
        }
        mu = end;
    }
    let mut acc = [[0u64; LANES]; AVX2_TILE];
    for t in 0..AVX2_TILE {
        let (mut e, mut o) = ([0u64; 4], [0u64; 4]);
        // SAFETY: 4 u64 each.
        unsafe {
            _mm256_storeu_si256(e.as_mut_ptr() as *mut __m256i, even[t]);
            _mm256_storeu_si256(o.as_mut_ptr() as *mut __m256i, odd[t]);
        }
        for j in 0..4 {
            acc[t][2 * j] = e[j];
            acc[t][2 * j + 1] = o[j];
        }
    }
    acc
}

/// AVX-512 path: the tile's [`TILE`] tokens, one accumulator of 8 columns (`u64` lanes) per
/// token: per panel row one zero-extending load, then per token a broadcast load, a
/// `vpmuludq` and a `vpaddq`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn panel_tile_avx512(panel: &[u32], x_tile: &[u32], two32: u64) -> [[u64; LANES]; TILE] {
    use std::arch::x86_64::*;
    let rows = panel.len() / LANES;
    assert_eq!(x_tile.len(), rows * TILE);
    let mut acc = [_mm512_setzero_si512(); TILE];
    let low = _mm512_set1_epi64(0xFFFF_FFFF);
    let c = _mm512_set1_epi64(two32 as i64);
    let pp = panel.as_ptr();
    let xp = x_tile.as_ptr();
    let mut mu = 0;
    while mu < rows {
        let end = (mu + FOLD).min(rows);
        for row in mu..end {
            // SAFETY: row < rows, so the 8 lanes are inside `panel`.
            let w = _mm512_cvtepu32_epi64(unsafe {
                _mm256_loadu_si256(pp.add(row * LANES) as *const __m256i)
            });
            // SAFETY: row < rows and the tile holds rows·TILE values.
            let xr = unsafe { xp.add(row * TILE) };
            for (t, a) in acc.iter_mut().enumerate() {
                // vpmuludq reads the low half of each 64-bit lane: a 32-bit broadcast is
                // enough (and is a pure load).
                let xv = _mm512_set1_epi32(unsafe { *xr.add(t) } as i32);
                *a = _mm512_add_epi64(*a, _mm512_mul_epu32(w, xv));
            }
        }
        for a in acc.iter_mut() {
            let hi = _mm512_srli_epi64::<32>(*a);
            *a = _mm512_add_epi64(_mm512_and_si512(*a, low), _mm512_mul_epu32(hi, c));
        }
        mu = end;
    }
    let mut out = [[0u64; LANES]; TILE];
    for (o, a) in out.iter_mut().zip(acc) {
        // SAFETY: 8 u64 each.
        unsafe { _mm512_storeu_si512(o.as_mut_ptr() as *mut __m512i, a) };
    }
    out
}

/// One tile of tokens (`x_tile`, `[μ][TILE]`) over one panel on `path` (which the CPU must
/// support).
fn panel_tile(path: KernelPath, panel: &[u32], x_tile: &[u32], two32: u64) -> [[u64; LANES]; TILE] {
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `path` is one of KernelPath::available(), so the CPU has AVX-512F.
        KernelPath::Avx512 => unsafe { panel_tile_avx512(panel, x_tile, two32) },
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2 => {
            let mut acc = [[0u64; LANES]; TILE];
            for (half, out) in acc.chunks_exact_mut(AVX2_TILE).enumerate() {
                let first = half * AVX2_TILE;
                // SAFETY: `path` is one of KernelPath::available(), so the CPU has AVX2.
                out.copy_from_slice(&unsafe { panel_tile_avx2(panel, x_tile, first, two32) });
            }
            acc
        }
        _ => panel_tile_portable(panel, x_tile, two32),
    }
}

/// Accumulates one column group: `panels` is `[block][μ][LANES]` (N/LANES blocks of m rows),
/// `x` is `[tile][μ][TILE]` (the client's share reduced mod p, tokens padded to a multiple of
/// [`TILE`]: [`x_index`] places them), `out` is `[r][N]` (k rows), on `path`.
///
/// The tile-major `x` makes every tile one contiguous slab of m·64 bytes, read in order, next
/// to its panel (m·32 bytes): with the token-major `[μ][k_pad]` layout used before, a tile's
/// rows lay k_pad·4 bytes apart (5 KB for Linear_h2's 1 280 virtual tokens), a page per few
/// rows, and the kernel ran at two thirds of its rate there.
///
/// # Panics
/// If `path` is not one of [`KernelPath::available`], or the shapes disagree.
pub fn accumulate_group_with(
    panels: &[u32],
    x: &[u32],
    k: usize,
    m: &Modulus,
    out: &mut [u32],
    path: KernelPath,
) {
    path.check();
    let k_pad = k.div_ceil(TILE) * TILE;
    assert!(
        k > 0 && x.len().is_multiple_of(k_pad),
        "x is not [tile][μ][TILE]"
    );
    let rows = x.len() / k_pad;
    assert!(
        rows > 0 && panels.len().is_multiple_of(rows * LANES),
        "panels are not [block][μ][8]"
    );
    let n = panels.len() / rows;
    assert_eq!(out.len(), k * n, "output is not [k][N]");
    for (b, panel) in panels.chunks_exact(rows * LANES).enumerate() {
        for (tile, x_tile) in x.chunks_exact(rows * TILE).enumerate() {
            let acc = panel_tile(path, panel, x_tile, m.two32);
            let mut reduced = [[0u32; LANES]; TILE];
            reduce_into(m, acc.as_flattened(), reduced.as_flattened_mut(), path);
            for (t, lanes) in reduced.iter().enumerate() {
                let r = tile * TILE + t;
                if r < k {
                    out[r * n + b * LANES..r * n + b * LANES + LANES].copy_from_slice(lanes);
                }
            }
        }
    }
}

/// Where token `r`'s value for row `mu` goes in the kernel's `x` of `rows` rows
/// (`[tile][μ][TILE]`).
pub fn x_index(mu: usize, r: usize, rows: usize) -> usize {
    (r / TILE * rows + mu) * TILE + r % TILE
}

/// [`accumulate_group_with`] on the fastest path the CPU supports.
pub fn accumulate_group(panels: &[u32], x: &[u32], k: usize, m: &Modulus, out: &mut [u32]) {
    accumulate_group_with(panels, x, k, m, out, KernelPath::detect())
}

/// Scatters row `mu` (N values) of a column group into its panels `[block][μ][LANES]`
/// (`panels` holds all `rows` rows).
pub fn scatter_row(row: &[u32], mu: usize, rows: usize, panels: &mut [u32]) {
    assert_eq!(panels.len(), rows * row.len());
    for (b, src) in row.chunks_exact(LANES).enumerate() {
        let at = (b * rows + mu) * LANES;
        panels[at..at + LANES].copy_from_slice(src);
    }
}

/// Rearranges row-major weights `[μ][N]` of one column group into panels `[block][μ][LANES]`.
pub fn to_panels(rows_major: &[u32], rows: usize, n: usize, out: &mut [u32]) {
    assert_eq!(rows_major.len(), rows * n);
    for (mu, row) in rows_major.chunks_exact(n).enumerate() {
        scatter_row(row, mu, rows, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rns::{ntt_primes, RnsContext};
    use mpc_core::{AesPrg, Seed};
    use rand_core::RngCore;

    #[test]
    fn matches_naive_modular_product_at_extremes() {
        let ctx = RnsContext::new(64, &ntt_primes(64, 1).unwrap()).unwrap();
        let m = &ctx.moduli()[0];
        let p = m.p;
        let mut rng = AesPrg::new(Seed([9; 16]));
        for (k, rows) in [
            (1usize, 1usize),
            (5, 13),
            (8, 40),
            (3, 100),
            (13, 30),
            (17, 7),
            (33, 50),
        ] {
            let n = 64;
            let k_pad = k.div_ceil(TILE) * TILE;
            // Mix of extremes (p − 1, 0) and random residues.
            let val = |rng: &mut AesPrg, i: usize| match i % 5 {
                0 => p - 1,
                1 => 0,
                _ => rng.next_u32() % p,
            };
            let w: Vec<u32> = (0..rows * n).map(|i| val(&mut rng, i)).collect();
            let mut x = vec![0u32; rows * k_pad];
            for mu in 0..rows {
                for r in 0..k {
                    x[x_index(mu, r, rows)] = val(&mut rng, mu + r);
                }
            }
            let mut panels = vec![0u32; rows * n];
            to_panels(&w, rows, n, &mut panels);
            let mut out = vec![0u32; k * n];
            accumulate_group(&panels, &x, k, m, &mut out);
            for path in KernelPath::available() {
                let mut other = vec![0u32; k * n];
                accumulate_group_with(&panels, &x, k, m, &mut other, path);
                assert_eq!(out, other, "{path:?}");
            }
            for r in 0..k {
                for c in 0..n {
                    let want = (0..rows).fold(0u64, |acc, mu| {
                        (acc + x[x_index(mu, r, rows)] as u64 * w[mu * n + c] as u64) % p as u64
                    });
                    assert_eq!(out[r * n + c] as u64, want, "k={k} rows={rows} r={r} c={c}");
                }
            }
        }
    }
}
