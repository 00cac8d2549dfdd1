//! Unit tests of the parameter checks.
use super::*;

#[test]
fn defaults_fit_n8192_at_128_bits() {
    let p = HeParams::default_params().unwrap();
    assert_eq!(p.n(), 8192);
    assert!(p.log_q() <= 218.0);
    assert!(p.c0_bits() > 64 && p.c1_bits() <= 80, "{}", p.describe());
    assert!(p.flood_bits() >= p.acc_log2() as u32 + 60);
    println!("{}", p.describe());
}

#[test]
fn floods_cover_every_coefficient_of_an_inference() {
    // One BERT-base inference at 128 tokens reveals 2^24.3 coefficients under the server's
    // key (bert::reveals); both parameter sets share that key and one budget.
    for p in [
        HeParams::default_params().unwrap(),
        HeParams::packed_products().unwrap(),
    ] {
        assert!(p.max_revealed() >= 1 << 25, "{}", p.describe());
        let need = p.acc_log2() + p.stat_bits() as f64 + (p.max_revealed() as f64).log2();
        assert!(p.flood_bits() as f64 >= need, "{}", p.describe());
        assert!(p.log_q() <= 218.0 && p.rns().len() == 7, "{}", p.describe());
        assert!(p.check_inference_reveals(p.max_revealed(), "max").is_ok());
        let e = p.check_inference_reveals(p.max_revealed() + 1, "max + 1");
        let Err(Error::InsecureParams(e)) = e else {
            panic!("{e:?}")
        };
        assert_eq!(
            e.downcast_ref::<ParamsError>(),
            Some(&ParamsError::RevealBudget {
                what: "max + 1".into(),
                revealed: p.max_revealed() + 1,
                budget_log2: INFERENCE_REVEALED_LOG2,
                stat_bits: p.stat_bits(),
            })
        );
    }
}

#[test]
fn insecure_or_unusable_parameters_are_refused() {
    // The refusal's fields, recovered from the workspace error.
    fn cause(r: Result<HeParams>) -> ParamsError {
        match r {
            Err(Error::InsecureParams(e)) => e.downcast_ref::<ParamsError>().unwrap().clone(),
            other => panic!("expected a parameter refusal, got {other:?}"),
        }
    }
    // N = 4096 allows 109 bits: far below what flooding a 64-bit ring needs (the builder
    // derives more primes than the standard allows).
    match cause(HeParams::builder().poly_degree(4096).build()) {
        ParamsError::ModulusTooLarge { max, n, need, .. } => {
            assert_eq!((max, n), (109, 4096));
            assert!(need > 109.0);
        }
        e => panic!("{e}"),
    }
    // Less than 40 bits of statistical security.
    assert_eq!(
        cause(HeParams::builder().stat_bits(30).build()),
        ParamsError::StatisticalSecurity {
            bits: 30,
            required: 40
        }
    );
    // Forcing too many primes for N = 8192 (8 × 30 = 240 > 218).
    let many = ntt_primes(8192, 8).unwrap();
    assert!(matches!(
        cause(HeParams::builder().primes(many).build()),
        ParamsError::ModulusTooLarge { max: 218, .. }
    ));
    // Forcing too few primes: the noise bound fails.
    let few = ntt_primes(8192, 5).unwrap();
    assert!(matches!(
        cause(HeParams::builder().primes(few).build()),
        ParamsError::ModulusTooSmall { .. }
    ));
    assert!(HeParams::builder().poly_degree(3000).build().is_err());
}

#[test]
fn packed_product_parameters_share_the_default_basis() {
    let a = HeParams::default_params().unwrap();
    let p = HeParams::packed_products().unwrap();
    assert_eq!(a.rns().primes(), p.rns().primes());
    assert_eq!(p.scale_bits(), 71);
    assert_ne!(a.fingerprint(), p.fingerprint());
    assert!(p.log_q() <= 218.0, "{}", p.describe());
    // Seven levels (the most N = 8192 allows) still fit seven primes; eight are refused,
    // and so is a packed workload whose noise needs more than 218 bits.
    assert!(HeParams::builder()
        .max_terms(512)
        .revealed_log2(INFERENCE_REVEALED_LOG2)
        .pack_levels(7)
        .build()
        .is_ok());
    // The per-inference budget is the most the 218-bit modulus admits for packing.
    assert!(matches!(
        HeParams::builder()
            .max_terms(512)
            .revealed_log2(INFERENCE_REVEALED_LOG2 + 1)
            .pack_levels(7)
            .build(),
        Err(Error::InsecureParams(_))
    ));
    assert!(matches!(
        HeParams::builder().pack_levels(8).build(),
        Err(Error::OutOfRange {
            want: mpc_core::Dims::AtMost(7),
            ..
        })
    ));
    assert!(matches!(
        HeParams::builder()
            .max_terms(1 << 20)
            .pack_levels(7)
            .build(),
        Err(Error::InsecureParams(_))
    ));
    println!("{}", p.describe());
}

#[test]
fn fingerprint_distinguishes_parameters() {
    let a = HeParams::default_params().unwrap();
    let b = HeParams::builder().max_terms(1 << 12).build().unwrap();
    assert_ne!(a.fingerprint(), b.fingerprint());
    assert_eq!(
        a.fingerprint(),
        HeParams::default_params().unwrap().fingerprint()
    );
}
