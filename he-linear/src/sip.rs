//! SIP, the server-side inner-product baseline (Cheetah/BumbleBee style), and the engine it
//! shares with the secret × secret product: "A encrypted by its holder × B in plaintext at the
//! evaluator".
//!
//! Encoding (Cheetah): A (k×m) and B (m×n) are cut into blocks k_w × m_w and m_w × n_w with
//! k_w·m_w·n_w ≤ N. An A block becomes `â = Σ A[i][l]·X^{i·m_w·n_w + l}`, a B block
//! `b̂ = Σ B[l][j]·X^{j·m_w + m_w − 1 − l}`; in â·b̂ the coefficient i·m_w·n_w + j·m_w + m_w − 1
//! is `Σ_l A[i][l]·B[l][j]` (other products land elsewhere or wrap below m_w − 1).
//!
//! Flights: (1) the key holder sends its seeded encryptions of the A blocks, 16 + 4·L·N bytes
//! each, ⌈k/k_w⌉·⌈m/m_w⌉ of them; (2) the evaluator multiplies in the NTT domain, sums over the
//! m blocks, seals each of the ⌈k/k_w⌉·⌈n/n_w⌉ outputs (`response`, k_w·n_w coefficients
//! revealed) with its share R and sends them back. The key holder opens A·B − R. Rounds: 2.
//!
//! **Packed outputs** (parameters with `pack_levels` R > 0, the holder's Galois keys at the
//! evaluator): m_w is a power of two and B's block is encoded one step lower,
//! `b̂ = Σ B[l][j]·X^{j·m_w − l}` (negacyclic: X^{−l} = −X^{N−l}), so the sums land at
//! i·m_w·n_w + j·m_w, multiples of m_w, and every other product at a position that is not
//! (|offset| < m_w, and m_w divides N). Groups of G ≤ min(2^R, m_w) consecutive outputs then
//! merge into one ciphertext (`galois`), member t at offset t. One response then reveals G·k_w·n_w coefficients: ⌈blocks/G⌉ responses instead of
//! one per block, for G − 1 key switches per group.
//!
//! SIP as a linear layer: the client is the key holder with A = X_c, the server evaluates with
//! B = W and adds X_s·W locally.
use crate::galois::GaloisKeys;
use crate::matrix::{ProductShape, RingMatrix};
use crate::params::HeParams;
use crate::poly::{Repr, RnsPoly};
use crate::response::{self, Window};
use crate::rlwe::{encrypt_sk, expand_a, Ciphertext, PublicKey, SecretKey};
use mpc_core::{AesPrg, Channel, Error, Result, Ring, Seed};
use rayon::prelude::*;

/// Output cells (row, column) of A·B with the values revealed for them.
type Cells = (Vec<(usize, usize)>, Vec<u64>);

/// Block shape of one SIP product (both parties derive it from its shape and the parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipPlan {
    /// A (k×m) · B (m×n).
    pub shape: ProductShape,
    /// Block rows of A.
    pub kw: usize,
    /// Block inner width.
    pub mw: usize,
    /// Block columns of B.
    pub nw: usize,
    /// Output ciphertexts merged per response (1 without packing).
    pub group: usize,
    /// Whether outputs go through packing (the parameters' `pack_levels` > 0).
    pub packed: bool,
    /// The bits of each output the responses reveal (the whole plaintext unless
    /// [`SipPlan::with_window`]); outputs are shares modulo 2^{window.bits()}.
    pub window: Window,
}

/// Evaluator work per ring product (2·L·N modular multiply-adds, ≈ 0.3 ms on one core) in
/// byte equivalents at 3 Gbps, used to trade compute against communication when choosing blocks.
const PRODUCT_COST_BYTES: usize = 120_000;

/// Packed plans are there to cut bytes (the per-block communication budget): at this machine's
/// speed a merge (one key switch, ≈ 2 ms) costs more time than the ≈ 80 KB response it saves
/// even at 400 Mbps. Work is priced low so that bytes dominate, but high enough to break
/// near-ties towards fewer merges (BERT-base QKᵀ: 62 merges for +75 KB rather than 124):
/// per ring product and per merge, in byte equivalents.
const PACKED_PRODUCT_COST_BYTES: usize = 500;
const MERGE_COST_BYTES: usize = 2_000;

impl SipPlan {
    /// The cheapest block shape (bytes plus evaluator work) within the noise analysis.
    pub fn new(params: &HeParams, shape: ProductShape) -> Result<SipPlan> {
        let ProductShape { k, m, n } = shape;
        if k == 0 || m == 0 || n == 0 {
            return Err(Error::shape(
                "product (rows × inner × outputs)",
                [k, m, n],
                "non-empty dimensions",
            ));
        }
        if (k * n) as u64 > params.max_revealed() {
            return Err(Error::out_of_range(
                format!("revealed coefficients of a {k}×{n} output (the flooding's bound)"),
                k * n,
                mpc_core::Dims::AtMost(params.max_revealed() as usize),
            ));
        }
        let poly_n = params.n();
        let in_bytes = 16 + 4 * poly_n * params.rns().len();
        let packed = params.pack_levels() > 0;
        let mut best: Option<(usize, SipPlan)> = None;
        for mw in 1..=m.min(poly_n) {
            if packed && !mw.is_power_of_two() {
                continue;
            }
            for nw in 1..=n.min(poly_n / mw) {
                let kw = k.min(poly_n / (mw * nw));
                // Terms per revealed coefficient: every nonzero of b̂ in every m block.
                if (m.div_ceil(mw) * mw * nw) as u64 > params.max_terms() {
                    break;
                }
                let (kb, mb, nb) = (k.div_ceil(kw), m.div_ceil(mw), n.div_ceil(nw));
                let group = if packed {
                    let most = (1usize << params.pack_levels()).min(mw);
                    most.min((kb * nb).next_power_of_two())
                } else {
                    1
                };
                let plan = SipPlan {
                    shape,
                    kw,
                    mw,
                    nw,
                    group,
                    packed,
                    window: Window::full(params),
                };
                let work = if packed {
                    kb * mb * nb * PACKED_PRODUCT_COST_BYTES + plan.merges() * MERGE_COST_BYTES
                } else {
                    kb * mb * nb * PRODUCT_COST_BYTES
                };
                let cost = kb * mb * in_bytes + plan.output_bytes(params) + work;
                if best.is_none_or(|(c, _)| cost < c) {
                    best = Some((cost, plan));
                }
            }
        }
        best.map(|(_, p)| p).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no block shape keeps {m}-wide products within {} terms",
                params.max_terms()
            ))
        })
    }

    fn blocks(&self) -> (usize, usize, usize) {
        (
            self.shape.k.div_ceil(self.kw),
            self.shape.m.div_ceil(self.mw),
            self.shape.n.div_ceil(self.nw),
        )
    }

    /// Encrypted A blocks sent by the key holder.
    pub fn input_cts(&self) -> usize {
        let (kb, mb, _) = self.blocks();
        kb * mb
    }

    /// Ciphertext × plaintext ring products the evaluator runs (one per block triple).
    pub fn ring_products(&self) -> usize {
        let (kb, mb, nb) = self.blocks();
        kb * mb * nb
    }

    /// Output ciphertexts returned by the evaluator (one per group of merged blocks).
    pub fn output_cts(&self) -> usize {
        let (kb, _, nb) = self.blocks();
        (kb * nb).div_ceil(self.group)
    }

    /// Key switches the evaluator runs (2^levels − 1 merges per full group, fewer when inputs
    /// are absent: merging two absent inputs is free).
    pub fn merges(&self) -> usize {
        let (kb, _, nb) = self.blocks();
        (0..self.output_cts())
            .map(|g| {
                let present = self.group.min(kb * nb - g * self.group);
                // At each level, the number of outputs with at least one present input.
                let mut merges = 0;
                let (mut width, mut live) = (self.group, present);
                while width > 1 {
                    width /= 2;
                    let pairs = live.min(width);
                    merges += pairs;
                    live = pairs;
                }
                merges
            })
            .sum()
    }

    /// Merge levels of a group (log2 of its size).
    fn levels(&self) -> u32 {
        self.group.trailing_zeros()
    }

    /// Output blocks (ib·nb + jb) of response `g`.
    fn group_blocks(&self, g: usize) -> std::ops::Range<usize> {
        let (kb, _, nb) = self.blocks();
        g * self.group..((g + 1) * self.group).min(kb * nb)
    }

    /// (row, col) of A·B at each revealed position of response `g`, and the positions.
    fn outputs(&self, g: usize) -> (Vec<(usize, usize)>, Vec<u32>) {
        let (_, _, nb) = self.blocks();
        let mut cells = Vec::new();
        let mut pos = Vec::new();
        for (t, blk) in self.group_blocks(g).enumerate() {
            let (ib, jb) = (blk / nb, blk % nb);
            let offset = if self.packed { t } else { self.mw - 1 };
            debug_assert!(t < self.mw);
            for i in 0..self.kw {
                for j in 0..self.nw {
                    let (r, c) = (ib * self.kw + i, jb * self.nw + j);
                    if r < self.shape.k && c < self.shape.n {
                        cells.push((r, c));
                        pos.push((i * self.mw * self.nw + j * self.mw + offset) as u32);
                    }
                }
            }
        }
        (cells, pos)
    }

    /// Bytes of flight 1 (key holder → evaluator).
    pub fn input_bytes(&self, params: &HeParams) -> usize {
        self.input_cts() * (16 + 4 * params.n() * params.rns().len())
    }

    /// Bytes of flight 2 (evaluator → key holder).
    pub fn output_bytes(&self, params: &HeParams) -> usize {
        (0..self.output_cts())
            .map(|g| self.window.response_bytes(params, self.revealed(g)))
            .sum()
    }

    /// The same plan with responses revealing only `window` of each output (the blocks stay
    /// those chosen for the full width).
    pub fn with_window(self, window: Window) -> SipPlan {
        SipPlan { window, ..self }
    }

    /// Coefficients response `g` reveals (the length of `outputs(g)`, without building it).
    fn revealed(&self, g: usize) -> usize {
        let (_, _, nb) = self.blocks();
        self.group_blocks(g)
            .map(|blk| {
                let (ib, jb) = (blk / nb, blk % nb);
                self.kw.min(self.shape.k - ib * self.kw) * self.nw.min(self.shape.n - jb * self.nw)
            })
            .sum()
    }
}

/// Key holder, flight 1: encrypts and sends the A blocks.
pub fn send_encrypted_input(
    ch: &mut Channel,
    params: &HeParams,
    sk: &SecretKey,
    plan: &SipPlan,
    a: &RingMatrix,
    seed: Seed,
) -> Result<()> {
    if (a.rows(), a.cols()) != (plan.shape.k, plan.shape.m) {
        return Err(Error::shape(
            "A (the plan's)",
            [a.rows(), a.cols()],
            [plan.shape.k, plan.shape.m],
        ));
    }
    let (kb, mb, _) = plan.blocks();
    let base = seed;
    let cts: Vec<Result<(Seed, RnsPoly)>> = (0..kb * mb)
        .into_par_iter()
        .map(|blk| {
            let (ib, lb) = (blk / mb, blk % mb);
            let mut coeffs = vec![0u64; params.n()];
            for i in 0..plan.kw {
                for l in 0..plan.mw {
                    let (r, c) = (ib * plan.kw + i, lb * plan.mw + l);
                    if r < plan.shape.k && c < plan.shape.m {
                        coeffs[i * plan.mw * plan.nw + l] = a.get(r, c);
                    }
                }
            }
            let mut rng = AesPrg::new(base.derive(blk as u64));
            let seed = Seed::from_rng(&mut rng);
            encrypt_sk(params, sk, &coeffs, seed, &mut rng).map(|ct| (ct.seed, ct.b))
        })
        .collect();
    for ct in cts {
        let (seed, b) = ct?;
        ch.send(&seed.0)?;
        ch.send_pod(b.data())?;
    }
    Ok(())
}

/// Evaluator, flight 1 received: the A blocks as full ciphertexts (NTT form), validated.
pub fn recv_encrypted_input(
    ch: &mut Channel,
    params: &HeParams,
    plan: &SipPlan,
) -> Result<Vec<Ciphertext>> {
    let words = params.n() * params.rns().len();
    let mut raw = Vec::with_capacity(plan.input_cts());
    for _ in 0..plan.input_cts() {
        let mut seed = [0u8; 16];
        ch.recv(&mut seed)?;
        raw.push((Seed(seed), ch.recv_pod_vec::<u32>(words)?));
    }
    raw.into_par_iter()
        .map(|(seed, b)| {
            Ok(Ciphertext {
                c0: RnsPoly::from_residues(params.rns(), b, Repr::Ntt)?,
                c1: expand_a(params, seed),
            })
        })
        .collect()
}

/// Encodes B's blocks as NTT-form plaintexts b̂ (input independent: the server can do this
/// before the query).
pub fn encode_plain(params: &HeParams, plan: &SipPlan, b: &RingMatrix) -> Result<Vec<RnsPoly>> {
    if (b.rows(), b.cols()) != (plan.shape.m, plan.shape.n) {
        return Err(Error::shape(
            "B (the plan's)",
            [b.rows(), b.cols()],
            [plan.shape.m, plan.shape.n],
        ));
    }
    let ring = Ring::R64;
    let (_, mb, nb) = plan.blocks();
    let ctx = params.rns();
    Ok((0..mb * nb)
        .into_par_iter()
        .map(|blk| {
            let (lb, jb) = (blk / nb, blk % nb);
            let poly_n = params.n();
            let mut coeffs = vec![0i64; poly_n];
            for l in 0..plan.mw {
                for j in 0..plan.nw {
                    let (r, c) = (lb * plan.mw + l, jb * plan.nw + j);
                    if r < plan.shape.m && c < plan.shape.n {
                        let v = ring.to_signed(b.get(r, c));
                        if !plan.packed {
                            coeffs[j * plan.mw + plan.mw - 1 - l] = v;
                        } else if j * plan.mw >= l {
                            coeffs[j * plan.mw - l] = v;
                        } else {
                            // X^{−l} = −X^{N−l}; the signed view of −v wraps like the ring.
                            coeffs[poly_n - l] = v.wrapping_neg();
                        }
                    }
                }
            }
            let mut p = RnsPoly::from_signed(ctx, &coeffs);
            p.to_ntt(ctx);
            p
        })
        .collect())
}

/// Evaluator, flight 2: multiplies, merges (packed plans, with the holder's Galois keys), seals
/// with its fresh share R, sends; returns its share of the window, ⌊R/2^lo⌋ (k×n).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_and_respond(
    ch: &mut Channel,
    params: &HeParams,
    holder_pk: &PublicKey,
    holder_galois: Option<&GaloisKeys>,
    plan: &SipPlan,
    inputs: &[Ciphertext],
    plain: &[RnsPoly],
    seed: Seed,
) -> Result<RingMatrix> {
    let (kb, mb, nb) = plan.blocks();
    if inputs.len() != kb * mb || plain.len() != mb * nb {
        return Err(Error::shape(
            "SIP input and plaintext blocks (the plan's)",
            [inputs.len(), plain.len()],
            [kb * mb, mb * nb],
        ));
    }
    let galois = match (plan.packed, holder_galois) {
        (false, _) => None,
        (true, Some(g)) => Some(g),
        (true, None) => {
            return Err(Error::InvalidArgument(
                "packed outputs need the key holder's Galois keys".into(),
            ))
        }
    };
    let ctx = params.rns();
    let product = |blk: usize| {
        let (ib, jb) = (blk / nb, blk % nb);
        let w: Vec<&RnsPoly> = (0..mb).map(|lb| &plain[lb * nb + jb]).collect();
        let row = &inputs[ib * mb..(ib + 1) * mb];
        let c0: Vec<&RnsPoly> = row.iter().map(|ct| &ct.c0).collect();
        let c1: Vec<&RnsPoly> = row.iter().map(|ct| &ct.c1).collect();
        Ciphertext {
            c0: RnsPoly::dot(ctx, &c0, &w),
            c1: RnsPoly::dot(ctx, &c1, &w),
        }
    };
    let base = seed;
    let sealed: Vec<Result<(Vec<u8>, Cells)>> = (0..plan.output_cts())
        .into_par_iter()
        .map(|g| {
            let acc = match galois {
                None => product(g),
                Some(keys) => {
                    let members = plan.group_blocks(g).map(|blk| Some(product(blk))).collect();
                    keys.pack(params, members, plan.levels())?
                }
            };
            let (cells, positions) = plan.outputs(g);
            let mut rng = AesPrg::new(base.derive(g as u64));
            let mask = rng.u64s(positions.len());
            let mut bytes = Vec::new();
            response::seal(
                params,
                holder_pk,
                acc,
                &positions,
                &mask,
                plan.window,
                &mut rng,
                &mut bytes,
            )?;
            let share = mask
                .iter()
                .map(|&r| plan.window.evaluator_share(r))
                .collect();
            Ok((bytes, (cells, share)))
        })
        .collect();
    let mut share = RingMatrix::zeros(plan.shape.k, plan.shape.n);
    for s in sealed {
        let (bytes, (cells, mask)) = s?;
        ch.send(&bytes)?;
        for ((r, c), v) in cells.into_iter().zip(mask) {
            share.data_mut()[r * plan.shape.n + c] = v;
        }
    }
    ch.flush()?;
    Ok(share)
}

/// Key holder, flight 2 received: opens the window of A·B − R.
pub fn recv_and_open(
    ch: &mut Channel,
    params: &HeParams,
    sk: &SecretKey,
    plan: &SipPlan,
) -> Result<RingMatrix> {
    let mut jobs = Vec::with_capacity(plan.output_cts());
    for g in 0..plan.output_cts() {
        let (cells, positions) = plan.outputs(g);
        let bytes = ch.recv_vec(plan.window.response_bytes(params, positions.len()))?;
        jobs.push((cells, positions, bytes));
    }
    let opened: Vec<Result<Cells>> = jobs
        .into_par_iter()
        .map(|(cells, positions, bytes)| {
            response::open(params, sk, &bytes, &positions, plan.window).map(|v| (cells, v))
        })
        .collect();
    let mut out = RingMatrix::zeros(plan.shape.k, plan.shape.n);
    for o in opened {
        let (cells, values) = o?;
        for ((r, c), v) in cells.into_iter().zip(values) {
            out.data_mut()[r * plan.shape.n + c] = v;
        }
    }
    Ok(out)
}

/// SIP linear layer, client side (key holder of X_c): returns its share X_c·W − R.
pub fn client_online(
    ch: &mut Channel,
    params: &HeParams,
    sk: &SecretKey,
    x_c: &RingMatrix,
    n: usize,
    seed: Seed,
) -> Result<RingMatrix> {
    let (k, m) = (x_c.rows(), x_c.cols());
    let plan = SipPlan::new(params, ProductShape { k, m, n })?;
    send_encrypted_input(ch, params, sk, &plan, x_c, seed)?;
    recv_and_open(ch, params, sk, &plan)
}

/// SIP linear layer, server side: `plain` from [`encode_plain`] (precomputed), returns
/// R + X_s·W.
pub fn server_online(
    ch: &mut Channel,
    params: &HeParams,
    client_pk: &PublicKey,
    w: &RingMatrix,
    plain: &[RnsPoly],
    x_s: &RingMatrix,
    seed: Seed,
) -> Result<RingMatrix> {
    let (k, m, n) = (x_s.rows(), x_s.cols(), w.cols());
    let plan = SipPlan::new(params, ProductShape { k, m, n })?;
    let inputs = recv_encrypted_input(ch, params, &plan)?;
    let r = evaluate_and_respond(ch, params, client_pk, None, &plan, &inputs, plain, seed)?;
    r.add(&x_s.matmul(w)?)
}
