//! Tests of the fixed-point BERT: wrapping products, truncation, tracking the float model.
use super::*;
use crate::float_model::mean_pool;
use crate::FloatBert;

#[test]
fn matmul_wraps_and_linear_truncates() {
    // [[1, 2]] · [[3], [−4]] = −5 in the ring.
    let a = [1, 2];
    let b = [3, R.from_signed(-4)];
    assert_eq!(ring_matmul(&a, &b, 1, 2, 1), vec![R.from_signed(-5)]);
    // The 32-bit fast path and the 64-bit path agree with the ring definition.
    for big in [0u64, 1 << 40] {
        let a: Vec<u64> = (0..12u64)
            .map(|i| R.from_signed(i as i64 * 7919 - 40_000) ^ big)
            .collect();
        let b: Vec<u64> = (0..20u64)
            .map(|i| R.from_signed(30_011 - i as i64 * 3001))
            .collect();
        let want: Vec<u64> = (0..3 * 5)
            .map(|ij| {
                let (i, j) = (ij / 5, ij % 5);
                (0..4).fold(0u64, |s, t| {
                    s.wrapping_add(a[i * 4 + t].wrapping_mul(b[t * 5 + j]))
                })
            })
            .collect();
        assert_eq!(ring_matmul(&a, &b, 3, 4, 5), want);
    }
    let l = Linear {
        w: Array2::from_shape_vec((2, 1), vec![0.5, -0.25]).unwrap(),
        b: ndarray::Array1::from_vec(vec![0.125]),
    };
    let fl = FixedLinear::encode(&l, 1.0, 0, "t").unwrap();
    let x = LIN.encode_vec(&[2.0, 3.0]).unwrap();
    assert_eq!(LIN.decode(fl.forward(&x, 1)[0]), 1.0 - 0.75 + 0.125);
}

#[test]
fn tiny_model_tracks_float_and_is_deterministic() {
    let w = BertWeights::random(&BertConfig::tiny(), 3).unwrap();
    let float = FloatBert::new(w.clone());
    let ids = [2, 17, 99, 5, 3];
    let want = mean_pool(float.encode(&ids).unwrap().view());
    for set in [ApproxSet::nimbus(), ApproxSet::puma()] {
        let fixed = FixedBert::new(&w, set).unwrap();
        let h = fixed.encode(&ids).unwrap();
        assert_eq!(h, fixed.encode(&ids).unwrap());
        let got = fixed.embed(&ids).unwrap();
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, &b)| (a - b as f64).abs())
            .fold(0.0, f64::max);
        assert!(err < 0.1, "{}: {err}", fixed.set().name);
        assert_eq!(fixed.pooler(&h).len(), 32);
    }
    // Swapping every approximation for f64 brings the nimbus model closer to float.
    let err = |ab: Ablation| {
        let fixed = FixedBert::ablated(&w, ApproxSet::nimbus(), ab).unwrap();
        let got = fixed.embed(&ids).unwrap();
        got.iter()
            .zip(&want)
            .map(|(a, &b)| (a - b as f64).abs())
            .fold(0.0, f64::max)
    };
    let exact = Ablation {
        exact_gelu: true,
        exact_exp: true,
        exact_reciprocal: true,
        exact_layernorm: true,
        floor: false,
    };
    assert!(err(exact) < 1e-3 && err(exact) < err(Ablation::default()));
    // A set fitted for another depth is refused.
    let mut set = ApproxSet::nimbus();
    set.layers = vec![set.layers[0].clone(); 3];
    assert!(FixedBert::new(&w, set).is_err());
}
