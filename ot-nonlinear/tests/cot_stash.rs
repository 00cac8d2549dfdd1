//! COTs set aside for a later protocol (`Session::set_aside_cots` / `restore_cots`): the
//! protocols that run in between extend their own, the restored ones serve the later protocol
//! with no extension, and every product stays exact.
mod common;

use mpc_core::{AesPrg, Error, Ring};
use ot_nonlinear::mpc::product::mul_cots;
use ot_nonlinear::mpc::{mul, CotDemand, StashKey};
use ot_nonlinear::Block;

/// Element-wise products on Z_2^64 of `n` values each: more than one Ferret batch of COTs
/// (10^7) in each direction, so that both the set-aside and the product in between extend.
const N: usize = 170_000;

fn values(seed: u128) -> Vec<u64> {
    let mut prg = AesPrg::from_block(Block(seed));
    (0..N).map(|_| prg.block().low_u64()).collect()
}

#[test]
fn set_aside_cots_serve_the_later_protocol_without_extension() {
    let seed = common::seed(31);
    let ring = Ring::new(64).unwrap();
    let key = StashKey {
        scope: [7; 16],
        index: 3,
    };
    let demand = mul_cots(N, ring);
    let ((server, _), (client, _)) = common::both_sessions("mul", move |s| {
        let party = s.is_server() as u128;
        let share = |k: u128| values((seed as u128) << 8 | k << 1 | party);
        s.set_aside_cots(key, demand)?;
        let again = s.set_aside_cots(key, CotDemand::both(1));
        assert!(matches!(again, Err(Error::InvalidArgument(_))), "{again:?}");
        let unknown = StashKey { index: 4, ..key };
        assert_eq!(s.restore_cots(unknown), CotDemand::default());
        // In between: a product on what the pools hold after the set-aside, extending more.
        let before = common::extension_bytes(&s.ch);
        let first = mul(s, &share(0), &share(1), ring)?;
        let between = common::extension_bytes(&s.ch) - before;
        // Then the stash in front of the pools: the second product extends nothing.
        assert_eq!(s.restore_cots(key), demand);
        assert_eq!(s.restore_cots(key), CotDemand::default(), "used once");
        let drawn = s.cots_drawn();
        let ext = common::extension_bytes(&s.ch);
        let second = mul(s, &share(2), &share(3), ring)?;
        let after = common::extension_bytes(&s.ch);
        let used = s.cots_drawn();
        assert_eq!(after, ext, "no extension on restored COTs");
        assert_eq!(
            (used.server - drawn.server, used.client - drawn.client),
            (demand.server, demand.client)
        );
        Ok((first, second, between))
    });
    eprintln!("seed {seed}");
    let open = |k: u128| {
        let (s, c) = (
            values((seed as u128) << 8 | k << 1 | 1),
            values((seed as u128) << 8 | k << 1),
        );
        s.iter()
            .zip(&c)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect::<Vec<_>>()
    };
    for (i, (got_s, got_c)) in [(&server.0, &client.0), (&server.1, &client.1)]
        .into_iter()
        .enumerate()
    {
        let (x, y) = (open(2 * i as u128), open(2 * i as u128 + 1));
        for j in 0..N {
            let want = x[j].wrapping_mul(y[j]);
            assert_eq!(
                got_s[j].wrapping_add(got_c[j]),
                want,
                "product {i}, element {j}"
            );
        }
    }
    assert!(
        server.2 > 0 && client.2 > 0,
        "the product between extended its own COTs"
    );
}
