//! Argmax over each row of a shared tensor (a decoder's next token), the index revealed to
//! one chosen party only.
//!
//! A binary tournament: at each level the rows' survivors are paired (a, b) (a earlier in the
//! row); c = [a − b ≥ 0] by DReLU on Z_2^64 (values with |a − b| < 2^63), then one multiplexer
//! batch on Z_2^64 carries both the value b + c·(a − b) and the index i_b + c·(i_a − i_b). An
//! odd survivor passes to the next level unchanged. Ties go to the earlier index, so the
//! result is the first maximum, as the mirror's. Finally the other party sends its shares of
//! the indices to the chosen party (8 bytes per row, one flight).
//!
//! Cost per level with p pairs in all rows: DReLU on p elements and a multiplexer on 2p
//! ([`argmax_cost`], exact); ⌈log2 n⌉ levels.
use crate::tensor::SharedTensor;
use mpc_core::{Error, Party, Result, Ring};
use ot_nonlinear::mpc::drelu::{drelu, drelu_cost, drelu_cots};
use ot_nonlinear::mpc::mux::{mux_cost, mux_cots};
use ot_nonlinear::mpc::{mux, Cost, CotDemand, Session, Side};

const R: Ring = Ring::R64;

/// Pairs at each level of a tournament over rows of `n`.
fn level_pairs(n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut alive = n;
    while alive > 1 {
        out.push(alive / 2);
        alive = alive.div_ceil(2);
    }
    out
}

/// COTs [`argmax`] draws on `rows` rows of `n` (it reserves them itself).
pub fn argmax_cots(rows: usize, n: usize) -> CotDemand {
    level_pairs(n)
        .into_iter()
        .fold(CotDemand::default(), |d, p| {
            d.plus(drelu_cots(rows * p, R)).plus(mux_cots(2 * rows * p))
        })
}

/// Exact cost of [`argmax`] on `rows` rows of `n` (label `argmax`, the COT reservation
/// excluded), the indices revealed to `to`.
pub fn argmax_cost(rows: usize, n: usize, to: Party) -> Cost {
    let tree = level_pairs(n).into_iter().fold(Cost::default(), |c, p| {
        c.then(drelu_cost(rows * p, R))
            .then(mux_cost(2 * rows * p, R))
    });
    let (side, bytes) = match to {
        Party::Client => (Side::Server, (8 * rows) as u64),
        Party::Server => (Side::Client, (8 * rows) as u64),
    };
    tree.then(Cost {
        server_bytes: if side == Side::Server { bytes } else { 0 },
        client_bytes: if side == Side::Client { bytes } else { 0 },
        rounds: 1,
        first: side,
        last: side,
    })
}

/// The index of each row's first maximum (signed values), revealed to `to`: `to` gets
/// `Some(indices)`, the other party `None`.
pub fn argmax(sess: &mut Session, x: &SharedTensor, to: Party) -> Result<Option<Vec<usize>>> {
    if x.ring() != R {
        return Err(Error::shape(
            "argmax input ring bits",
            x.ring().bits() as usize,
            64,
        ));
    }
    let (rows, n) = (x.rows(), x.cols());
    if n == 0 {
        return Err(Error::shape(
            "argmax row length",
            0,
            mpc_core::Dims::AtLeast(1),
        ));
    }
    sess.reserve(argmax_cots(rows, n))?;
    let server = sess.is_server();
    sess.scope("argmax", |sess| {
        // Survivors per row: (value share, index share); the server holds the public indices.
        let mut rows_alive: Vec<Vec<(u64, u64)>> = (0..rows)
            .map(|r| {
                x.row(r)
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (v, if server { i as u64 } else { 0 }))
                    .collect()
            })
            .collect();
        while rows_alive[0].len() > 1 {
            let mut diffs = Vec::new();
            let mut idiffs = Vec::new();
            for row in &rows_alive {
                for pair in row.chunks_exact(2) {
                    diffs.push(R.sub(pair[0].0, pair[1].0));
                    idiffs.push(R.sub(pair[0].1, pair[1].1));
                }
            }
            let c = drelu(sess, &diffs, R)?;
            let bits: Vec<bool> = c.iter().chain(&c).copied().collect();
            let both: Vec<u64> = diffs.iter().chain(&idiffs).copied().collect();
            let chosen = mux(sess, &bits, &both, R)?;
            let p = diffs.len();
            let mut at = 0;
            for row in rows_alive.iter_mut() {
                let next: Vec<(u64, u64)> = row
                    .chunks(2)
                    .map(|pair| match pair {
                        [_, b] => {
                            let v = (R.add(b.0, chosen[at]), R.add(b.1, chosen[p + at]));
                            at += 1;
                            v
                        }
                        [a] => *a,
                        _ => unreachable!("chunks of at most 2"),
                    })
                    .collect();
                *row = next;
            }
        }
        let mine: Vec<u64> = rows_alive.iter().map(|r| r[0].1).collect();
        if sess.party == to {
            let theirs = sess.ch.recv_u64s(rows)?;
            let idx = mine
                .iter()
                .zip(&theirs)
                .map(|(&a, &b)| {
                    let i = R.add(a, b) as usize;
                    if i < n {
                        Ok(i)
                    } else {
                        Err(Error::malformed(
                            "revealed argmax index",
                            i,
                            mpc_core::Dims::Below(n),
                        ))
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Some(idx))
        } else {
            sess.ch.send_u64s(&mine)?;
            sess.ch.flush()?;
            Ok(None)
        }
    })
}

/// The mirror: the index of each row's first maximum (signed view of Z_2^64).
pub fn argmax_mirror(x: &[u64], n: usize) -> Vec<usize> {
    x.chunks_exact(n)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if (v as i64) > (row[best] as i64) {
                    best = i;
                }
            }
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::level_pairs;

    #[test]
    fn the_tournament_halves_until_one_survivor() {
        assert_eq!(level_pairs(1), Vec::<usize>::new());
        assert_eq!(level_pairs(2), vec![1]);
        assert_eq!(level_pairs(5), vec![2, 1, 1]);
        assert_eq!(level_pairs(49152).len(), 16);
    }
}
