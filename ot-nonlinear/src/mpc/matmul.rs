//! W·X in Z_2^ℓ where W (rows × inner) is the server's private matrix and X (inner × cols) is
//! shared: CrypTFlow2's OT-based matrix product, the one CoPriv runs its Winograd products on.
//!
//! `W·X = W·X_0 + W·X_1`; the server computes `W·X_0` alone. For the cross term, every element
//! `x = X_1[i, p]` of the client's share is a unit of ℓ additive COTs ([`super::acot`]) with
//! the bits `x_j` as the client's choices; COT j carries the column `W[·, i]` (one correlation
//! per output row k, `rows` of them) on ℓ − j bits, since `2^j·x_j·W[k, i]` is only needed mod
//! 2^ℓ. The receiver's outputs are shares of `Σ_j 2^j·x_j·W[k, i] = x·W[k, i]`, summed over i
//! locally. Nothing about W leaves the server but these masked messages; the client's choices
//! are hidden by the COTs.
//!
//! Who sends what (label `matmul_ot`, [`server_matmul_cost`]): flight 1, client → server, the
//! choice corrections, `⌈inner·cols·ℓ/8⌉` bytes; flight 2, server → client, the messages,
//! `⌈inner·cols·rows·ℓ(ℓ+1)/2/8⌉` bytes, sent in chunks of whole bytes (one flight: nothing is
//! received between them) so that no party ever holds all of them. 2 rounds. COTs:
//! `inner·cols·ℓ` with the server as sender ([`server_matmul_cots`]).
use super::{check_shares, Cost, CotDemand, Session};
use crate::adapters::{
    acot_messages, acot_outputs, apply_corrections, choice_corrections, recv_bitbuf, send_bitbuf,
    AcotLayout,
};
use crate::cot::{RandomCotReceiver, RandomCotSender};
use mpc_core::{Error, Result, Ring};

/// The dimensions of `batch` independent products W_b·X_b: each W_b is rows × inner, each X_b
/// inner × cols (Winograd's 16 tile positions run as one batch, in the same two flights).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    /// Independent products.
    pub batch: usize,
    /// Rows of W (and of the product).
    pub rows: usize,
    /// Columns of W, rows of X.
    pub inner: usize,
    /// Columns of X (and of the product).
    pub cols: usize,
}

impl MatmulDims {
    fn check(self) -> Result<()> {
        if self.batch == 0 || self.rows == 0 || self.inner == 0 || self.cols == 0 {
            return Err(Error::shape(
                "matmul_ot: batch × rows × inner × columns",
                [self.batch, self.rows, self.inner, self.cols],
                "non-empty dimensions",
            ));
        }
        Ok(())
    }

    /// Units of the COT batch: one per element of X.
    fn units(self) -> usize {
        self.batch * self.inner * self.cols
    }

    /// Elements of the product.
    fn outputs(self) -> usize {
        self.batch * self.rows * self.cols
    }

    /// Elements of W.
    fn weights(self) -> usize {
        self.batch * self.rows * self.inner
    }
}

/// Messages per chunk the server sends (bounded memory on both sides); a multiple of 8 units
/// so that every chunk but the last is whole bytes.
const CHUNK_CORRELATIONS: usize = 1 << 22;

fn chunk_units(dims: MatmulDims) -> usize {
    (CHUNK_CORRELATIONS / dims.rows).next_multiple_of(8).max(8)
}

fn layout(dims: MatmulDims, ring: Ring) -> AcotLayout {
    let l = ring.bits();
    AcotLayout {
        ring,
        widths: (0..l).map(|j| l - j).collect(),
        fanout: dims.rows,
    }
}

/// Shares of W_b·X_b for every b (batch × rows × cols, row-major). The server passes `Some(W)`
/// (batch × rows × inner, row-major) and its share of X (batch × inner × cols); the client
/// passes `None` and its share. Label `matmul_ot`.
///
/// ```
/// use mpc_core::{Channel, Party, Ring, Seed};
/// use ot_nonlinear::mpc::{server_matmul, MatmulDims, Session};
/// let ring = Ring::new(37)?;
/// let dims = MatmulDims { batch: 1, rows: 2, inner: 3, cols: 1 };
/// let (w, x) = (vec![1, 2, 3, 4, 5, 6], [7u64, 8, 9]);
/// let x_client = [100u64, 200, 300];
/// let x_server: Vec<u64> = x.iter().zip(&x_client).map(|(&v, &r)| ring.sub(v, r)).collect();
/// let (cs, cc) = Channel::mem_pair();
/// let server = std::thread::spawn(move || -> mpc_core::Result<Vec<u64>> {
///     let mut s = Session::new(cs, Party::Server, Seed([1; 16]))?;
///     server_matmul(&mut s, Some(&w), &x_server, dims, ring)
/// });
/// let mut c = Session::new(cc, Party::Client, Seed([2; 16]))?;
/// let yc = server_matmul(&mut c, None, &x_client, dims, ring)?;
/// let ys = server.join().unwrap()?;
/// assert_eq!(ring.reconstruct_vec(&ys, &yc)?, vec![50, 122]);
/// # Ok::<(), mpc_core::Error>(())
/// ```
pub fn server_matmul(
    sess: &mut Session,
    weights: Option<&[u64]>,
    x: &[u64],
    dims: MatmulDims,
    ring: Ring,
) -> Result<Vec<u64>> {
    dims.check()?;
    check_shares(x, ring, "matmul_ot input")?;
    if x.len() != dims.units() {
        return Err(Error::shape(
            "matmul_ot input elements",
            x.len(),
            [dims.batch, dims.inner, dims.cols],
        ));
    }
    let layout = layout(dims, ring);
    sess.scope("matmul_ot", |sess| match (sess.is_server(), weights) {
        (true, Some(w)) => {
            if w.len() != dims.weights() {
                return Err(Error::shape(
                    "matmul_ot weights",
                    w.len(),
                    [dims.batch, dims.rows, dims.inner],
                ));
            }
            check_shares(w, ring, "matmul_ot weights")?;
            server_side(sess, w, x, dims, &layout)
        }
        (false, None) => client_side(sess, x, dims, &layout),
        (true, None) => Err(Error::InvalidArgument(
            "matmul_ot: the weight holder passed no weights".into(),
        )),
        (false, Some(_)) => Err(Error::InvalidArgument(
            "matmul_ot: weights passed by the party that holds none".into(),
        )),
    })
}

fn server_side(
    sess: &mut Session,
    w: &[u64],
    x: &[u64],
    dims: MatmulDims,
    layout: &AcotLayout,
) -> Result<Vec<u64>> {
    let ring = layout.ring;
    let MatmulDims {
        batch,
        rows,
        inner,
        cols,
    } = dims;
    let per_unit = layout.cots_per_unit();
    let delta = sess.ot.sender.delta();
    let (start, mut q) = sess
        .ot
        .sender
        .next_n(&mut sess.ch, dims.units() * per_unit)?;
    let d = recv_bitbuf(&mut sess.ch, q.len())?;
    apply_corrections(&mut q, delta, &d);
    // Own term W·X_0, then minus the COT sums chunk by chunk (unit u = (b·inner + i)·cols + p).
    let mut out = vec![0u64; dims.outputs()];
    for b in 0..batch {
        for k in 0..rows {
            let row = &mut out[(b * rows + k) * cols..(b * rows + k + 1) * cols];
            for i in 0..inner {
                let wk = w[(b * rows + k) * inner + i];
                let xi = &x[(b * inner + i) * cols..(b * inner + i + 1) * cols];
                for (o, &xv) in row.iter_mut().zip(xi) {
                    *o = o.wrapping_add(wk.wrapping_mul(xv));
                }
            }
        }
    }
    let chunk = chunk_units(dims);
    for first in (0..dims.units()).step_by(chunk) {
        let count = chunk.min(dims.units() - first);
        let (a, y) = acot_messages(
            start + (first * per_unit) as u64,
            &q[first * per_unit..(first + count) * per_unit],
            delta,
            layout,
            |u, _, k| {
                let (b, i) = ((first + u) / cols / inner, (first + u) / cols % inner);
                w[(b * rows + k) * inner + i]
            },
        )?;
        send_bitbuf(&mut sess.ch, &y)?;
        accumulate(&mut out, &a, first, dims, |o, v| o.wrapping_sub(v));
    }
    Ok(out.into_iter().map(|v| ring.reduce(v)).collect())
}

fn client_side(
    sess: &mut Session,
    x: &[u64],
    dims: MatmulDims,
    layout: &AcotLayout,
) -> Result<Vec<u64>> {
    let ring = layout.ring;
    let per_unit = layout.cots_per_unit();
    let choices: Vec<bool> = x
        .iter()
        .flat_map(|&v| (0..per_unit).map(move |j| (v >> j) & 1 == 1))
        .collect();
    let (start, t) = sess.ot.receiver.next_n(&mut sess.ch, choices.len())?;
    send_bitbuf(&mut sess.ch, &choice_corrections(&t, &choices))?;
    let mut out = vec![0u64; dims.outputs()];
    let chunk = chunk_units(dims);
    for first in (0..dims.units()).step_by(chunk) {
        let count = chunk.min(dims.units() - first);
        let y = recv_bitbuf(&mut sess.ch, count * layout.unit_bits())?;
        let range = first * per_unit..(first + count) * per_unit;
        let b = acot_outputs(
            start + range.start as u64,
            &t[range.clone()],
            &choices[range],
            layout,
            &y,
        )?;
        accumulate(&mut out, &b, first, dims, |o, v| o.wrapping_add(v));
    }
    Ok(out.into_iter().map(|v| ring.reduce(v)).collect())
}

/// Folds a chunk of COT sums (unit-major, `rows` per unit, unit `first + u` = (b, i, p)) into
/// the batch × rows × cols product.
fn accumulate(
    out: &mut [u64],
    sums: &[u64],
    first: usize,
    dims: MatmulDims,
    op: impl Fn(u64, u64) -> u64,
) {
    for (u, unit) in sums.chunks_exact(dims.rows).enumerate() {
        let (p, b) = (
            (first + u) % dims.cols,
            (first + u) / dims.cols / dims.inner,
        );
        for (k, &v) in unit.iter().enumerate() {
            let o = &mut out[(b * dims.rows + k) * dims.cols + p];
            *o = op(*o, v);
        }
    }
}

/// COTs drawn by [`server_matmul`] (all with the server as sender).
pub fn server_matmul_cots(dims: MatmulDims, ring: Ring) -> CotDemand {
    CotDemand {
        server: dims.units() * ring.bits() as usize,
        client: 0,
    }
}

/// Exact cost of [`server_matmul`].
pub fn server_matmul_cost(dims: MatmulDims, ring: Ring) -> Cost {
    let l = ring.bits() as usize;
    let units = dims.units();
    Cost::flight(0, units * l).then(Cost::flight(units * dims.rows * l * (l + 1) / 2, 0))
}
