//! Inputs drawn like real activations (the distributions are in the parent module's comment).
use super::ops::LIN;
use super::Ctx;
use mpc_core::AesPrg;
use mpc_core::Ring;
use ot_nonlinear::Block;

/// Normal and Student-t draws from the bench generator (Box–Muller).
pub(super) struct Gauss<'a>(pub(super) &'a mut AesPrg);

impl Gauss<'_> {
    pub(super) fn uniform(&mut self) -> f64 {
        ((self.0.block().low_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub(super) fn normal(&mut self) -> f64 {
        let (a, b) = (self.uniform(), self.uniform());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }

    /// Student t with 5 degrees of freedom: a normal-like bulk with heavy tails.
    pub(super) fn student5(&mut self) -> f64 {
        let z = self.normal();
        let chi: f64 = (0..5).map(|_| self.normal().powi(2)).sum();
        z / (chi / 5.0).sqrt()
    }
}

/// The activation generator: n values in rows of `cols`, x = offset + scale·z with (offset,
/// scale) drawn once per row by `row` and z per element by `draw`, clamped to ±60 and encoded
/// in Z_2^64 with 18 fraction bits (the distributions are in the module comment).
pub(super) fn activations(
    c: &Ctx,
    prg: &mut AesPrg,
    cols: usize,
    row: fn(&mut Gauss) -> (f64, f64),
    draw: fn(&mut Gauss) -> f64,
) -> Vec<u64> {
    let mut g = Gauss(prg);
    let mut x = Vec::with_capacity(c.n);
    for _ in 0..c.n / cols {
        let (offset, scale) = row(&mut g);
        x.extend((0..cols).map(|_| {
            let v = (offset + scale * draw(&mut g)).clamp(-60.0, 60.0);
            LIN.encode(v).expect("clamped input")
        }));
    }
    x
}

pub(super) fn uniform(c: &Ctx, prg: &mut AesPrg) -> Vec<u64> {
    uniform_n(c.ring, c.n, prg)
}

pub(super) fn uniform_n(ring: Ring, n: usize, prg: &mut AesPrg) -> Vec<u64> {
    let mut blocks = vec![Block::ZERO; n];
    prg.fill_blocks(&mut blocks);
    blocks.iter().map(|b| ring.reduce(b.low_u64())).collect()
}

pub(super) fn as_u64(bits: Vec<bool>) -> Vec<u64> {
    bits.into_iter().map(u64::from).collect()
}
