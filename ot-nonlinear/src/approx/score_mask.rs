//! Which Softmax scores are excluded, and who knows it: step 1 of [`super::SoftmaxPlan`].
//!
//! A private mask (the client's padding) can only act on the client's share: the client lowers
//! each excluded score by the plan's `mask_offset`, which excludes it only while the row's
//! scores span less than `mask_offset` minus the exp's cut-off (an encoder's do). A public mask
//! (causal) is known to both parties, so each party acts on its own share exactly:
//! - before the max, an excluded score takes the value of its row's first kept score (both
//!   parties copy their own share of it, so the copy is the same shared value and cannot
//!   change the row's max, whatever the scores' range);
//! - after the exp, both parties zero their shares of an excluded exp, so it is exactly 0.
//!
//! The secure protocol and the mirror run the same two local steps ([`ScoreMask::before_max`],
//! [`ScoreMask::after_exp`]) on shares and on plaintext rows respectively.
use mpc_core::{Error, Result, Ring};

/// The mask of `rows × cols` scores, row-major (`true` = kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreMask<'a> {
    /// Every score kept.
    None,
    /// The client's private padding mask: the client passes `Some`, the server `None`.
    Private(Option<&'a [bool]>),
    /// A mask both parties know and pass alike (e.g. causal); every row keeps a score.
    Public(&'a [bool]),
}

impl<'a> ScoreMask<'a> {
    /// Checks the length against `rows × cols`, that the server passes no private mask and
    /// that every row of a public mask keeps a score.
    pub fn check(&self, is_server: bool, rows: usize, cols: usize) -> Result<()> {
        let n = rows * cols;
        let bits = match *self {
            ScoreMask::None | ScoreMask::Private(None) => return Ok(()),
            ScoreMask::Private(Some(m)) => {
                if is_server {
                    return Err(Error::InvalidArgument(
                        "softmax: a private padding mask is the other party's input".into(),
                    ));
                }
                m
            }
            ScoreMask::Public(m) => m,
        };
        if bits.len() != n {
            return Err(Error::shape("softmax mask", bits.len(), [rows, cols]));
        }
        if let ScoreMask::Public(m) = self {
            if let Some(r) = m.chunks(cols.max(1)).position(|row| !row.contains(&true)) {
                return Err(Error::InvalidArgument(format!(
                    "softmax: row {r} of the public mask keeps no score"
                )));
            }
        }
        Ok(())
    }

    /// Row `r`'s part (rows of `cols`).
    pub fn row(&self, r: usize, cols: usize) -> ScoreMask<'a> {
        let part = |m: &'a [bool]| &m[r * cols..(r + 1) * cols];
        match *self {
            ScoreMask::None => ScoreMask::None,
            ScoreMask::Private(m) => ScoreMask::Private(m.map(part)),
            ScoreMask::Public(m) => ScoreMask::Public(part(m)),
        }
    }

    /// Step 1 on a share (or a plaintext row set) `x` of rows of `cols`, Z_2^64 at 18 bits:
    /// a private mask lowers the excluded scores by `offset` (the encoded `mask_offset`), a
    /// public one copies the row's first kept score into them.
    pub fn before_max(&self, x: &mut [u64], cols: usize, offset: u64) {
        match *self {
            ScoreMask::None | ScoreMask::Private(None) => {}
            ScoreMask::Private(Some(m)) => x
                .iter_mut()
                .zip(m)
                .filter(|(_, &keep)| !keep)
                .for_each(|(v, _)| *v = Ring::R64.sub(*v, offset)),
            ScoreMask::Public(m) => {
                for (row, keep) in x.chunks_exact_mut(cols).zip(m.chunks_exact(cols)) {
                    // `check` guarantees a kept score in every row.
                    let Some(first) = keep.iter().position(|&k| k) else {
                        continue;
                    };
                    let value = row[first];
                    row.iter_mut()
                        .zip(keep)
                        .filter(|(_, &k)| !k)
                        .for_each(|(v, _)| *v = value);
                }
            }
        }
    }

    /// Step 3's exps `e` (same layout): a public mask zeroes the excluded ones.
    pub fn after_exp(&self, e: &mut [u64]) {
        if let ScoreMask::Public(m) = *self {
            e.iter_mut()
                .zip(m)
                .filter(|(_, &keep)| !keep)
                .for_each(|(v, _)| *v = 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_mask_copies_the_first_kept_score_and_zeroes_its_exps() {
        let keep = [false, true, false, true, true, true];
        let mask = ScoreMask::Public(&keep);
        mask.check(true, 2, 3).unwrap();
        let mut x = vec![10, 20, 30, 40, 50, 60];
        mask.before_max(&mut x, 3, 7);
        assert_eq!(x, vec![20, 20, 20, 40, 50, 60]);
        let mut e = vec![1; 6];
        mask.after_exp(&mut e);
        assert_eq!(e, vec![0, 1, 0, 1, 1, 1]);
        assert_eq!(mask.row(1, 3), ScoreMask::Public(&keep[3..]));
    }

    #[test]
    fn a_private_mask_lowers_the_clients_share_and_is_refused_from_the_server() {
        let keep = [true, false];
        let mask = ScoreMask::Private(Some(&keep));
        let mut x = vec![5, 5];
        mask.before_max(&mut x, 2, 7);
        assert_eq!(x, vec![5, 5u64.wrapping_sub(7)]);
        let mut e = vec![3, 3];
        mask.after_exp(&mut e);
        assert_eq!(e, vec![3, 3]);
        assert!(mask.check(true, 1, 2).is_err());
        mask.check(false, 1, 2).unwrap();
        assert!(mask.check(false, 2, 2).is_err());
    }

    #[test]
    fn a_public_row_that_keeps_nothing_is_refused() {
        let keep = [true, false, false, false];
        let e = ScoreMask::Public(&keep).check(false, 2, 2).unwrap_err();
        assert!(e.to_string().contains("row 1"), "{e}");
    }
}
