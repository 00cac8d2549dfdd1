//! Convolutions (direct and Winograd on the OT matrix product) and pooling on random shares
//! against plaintext, with edge values, padding, strides and odd channel counts, and their exact
//! costs.
mod common;
use common::*;
use mpc_core::{FixedPoint, Ring};
use nn::conv::{
    conv2d, conv2d_cost, conv2d_mirror, im2col, ConvParty, ConvProtocol, ConvShape, ConvWeights,
};
use nn::pool::{
    avg_pool, avg_pool_cost, avg_pool_mirror, max_pool, max_pool_cost, max_pool_mirror, PoolShape,
};
use nn::winograd;
use nn::SharedTensor;
use ot_nonlinear::mpc::matmul::{server_matmul_cost, server_matmul_cots};
use ot_nonlinear::mpc::{server_matmul, MatmulDims};

/// The CNN format the tests use: Z_2^37 with 12 fraction bits.
fn format() -> FixedPoint {
    FixedPoint::new(Ring::new(37).unwrap(), 12).unwrap()
}

/// Encodings of `n` values uniform in [−bound, bound), after the edge values ±bound (rounded
/// inside) and 0.
fn encoded(rng: &mut mpc_core::AesPrg, n: usize, bound: f64, fp: FixedPoint) -> Vec<u64> {
    let top = bound - 1.0 / fp.scale();
    let mut out: Vec<u64> = [-bound, top, 0.0, -1.0 / fp.scale()]
        .iter()
        .map(|&v| fp.encode(v).unwrap())
        .collect();
    while out.len() < n {
        let u = (rng.u64s(1)[0] >> 11) as f64 / (1u64 << 53) as f64;
        out.push(fp.encode(-bound + 2.0 * bound * u).unwrap());
    }
    out.truncate(n);
    out
}

fn shared(x: &[u64], shape: nn::Shape, seed: u64) -> (SharedTensor, SharedTensor) {
    let fp = format();
    let (s, c) = share(x, fp.ring(), &mut prg(seed ^ 0x77));
    (
        SharedTensor::new(shape.clone(), fp, s).unwrap(),
        SharedTensor::new(shape, fp, c).unwrap(),
    )
}

/// The secure result is the mirror's floor or one below it, element by element.
fn assert_floor_or_one_below(got: &[u64], want: &[u64], ring: Ring) {
    assert_at_most_below(got, want, ring, 1);
}

/// Every element of `got` is the mirror's or at most `units` below it.
fn assert_at_most_below(got: &[u64], want: &[u64], ring: Ring, units: i64) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = ring.to_signed(ring.sub(w, g));
        assert!(
            (0..=units).contains(&d),
            "element {i}: {g:#x} is {d} units below the mirror {w:#x}"
        );
    }
}

#[test]
fn ot_matmul_is_exact_and_costs_what_it_says() {
    let seed = seed(31);
    let ring = Ring::new(37).unwrap();
    let dims = MatmulDims {
        batch: 2,
        rows: 5,
        inner: 7,
        cols: 3,
    };
    let mut rng = prg(seed);
    let w: Vec<u64> = rng
        .u64s(2 * 5 * 7)
        .iter()
        .map(|&v| ring.reduce(v))
        .collect();
    let mut x: Vec<u64> = rng
        .u64s(2 * 7 * 3)
        .iter()
        .map(|&v| ring.reduce(v))
        .collect();
    x[0] = ring.mask();
    x[1] = 0;
    let (xs, xc) = share(&x, ring, &mut rng);
    let want: Vec<u64> = (0..2)
        .flat_map(|b| {
            let (w, x) = (&w, &x);
            (0..5).flat_map(move |k| {
                (0..3).map(move |p| {
                    (0..7).fold(0u64, |a, i| {
                        ring.add(a, ring.mul(w[(b * 5 + k) * 7 + i], x[(b * 7 + i) * 3 + p]))
                    })
                })
            })
        })
        .collect();
    let fx = Fixture::new(seed);
    let (ys, yc, cs, cc) = run(
        &fx,
        move |s, _| {
            s.reserve(server_matmul_cots(dims, ring)).unwrap();
            server_matmul(s, Some(&w), &xs, dims, ring).unwrap()
        },
        move |s, _| {
            s.reserve(server_matmul_cots(dims, ring)).unwrap();
            server_matmul(s, None, &xc, dims, ring).unwrap()
        },
    );
    assert_eq!(ring.reconstruct_vec(&ys, &yc).unwrap(), want);
    assert_cost("matmul_ot", &cs, &cc, server_matmul_cost(dims, ring));
}

#[test]
fn winograd_transforms_give_four_times_the_direct_product() {
    let seed = seed(32);
    let fp = format();
    let ring = fp.ring();
    let mut rng = prg(seed);
    for (c, k, h, w, pads) in [(3, 2, 5, 7, [1, 1, 1, 1]), (1, 4, 4, 4, [0, 2, 1, 0])] {
        let shape = ConvShape {
            in_channels: c,
            out_channels: k,
            height: h,
            width: w,
            kernel: (3, 3),
            stride: (1, 1),
            pads,
        };
        let kernel: Vec<u64> = rng
            .u64s(k * c * 9)
            .iter()
            .map(|&v| ring.reduce(v))
            .collect();
        let x: Vec<u64> = rng
            .u64s(c * h * w)
            .iter()
            .map(|&v| ring.reduce(v))
            .collect();
        let u = winograd::transform_kernel(&shape, &kernel, ring);
        let v = winograd::transform_input(&shape, &x, ring);
        let d = winograd::dims(&shape);
        let mut m = vec![0u64; d.batch * d.rows * d.cols];
        for b in 0..d.batch {
            for kk in 0..d.rows {
                for p in 0..d.cols {
                    m[(b * d.rows + kk) * d.cols + p] = (0..d.inner).fold(0, |a, i| {
                        ring.add(
                            a,
                            ring.mul(
                                u[(b * d.rows + kk) * d.inner + i],
                                v[(b * d.inner + i) * d.cols + p],
                            ),
                        )
                    });
                }
            }
        }
        let y = winograd::transform_output(&shape, &m, ring);
        let cols = im2col(&shape, &x);
        let p = shape.out_height() * shape.out_width();
        for kk in 0..k {
            for q in 0..p {
                let direct = (0..shape.patch()).fold(0u64, |a, i| {
                    ring.add(a, ring.mul(kernel[kk * shape.patch() + i], cols[i * p + q]))
                });
                assert_eq!(
                    y[kk * p + q],
                    ring.mul(4, direct),
                    "channel {kk}, output {q}"
                );
            }
        }
    }
}

/// A random convolution of `shape` (kernel entries in ±1, bias in ±4, inputs in ±8), the
/// input's two shares, and the mirror's output.
fn conv_case(
    shape: ConvShape,
    fp: FixedPoint,
    seed: u64,
) -> (ConvWeights, SharedTensor, SharedTensor, Vec<u64>) {
    let mut rng = prg(seed);
    let kernel = encoded(&mut rng, shape.out_channels * shape.patch(), 1.0, fp);
    let bias_fp = FixedPoint::new(fp.ring(), 2 * fp.frac_bits()).unwrap();
    let bias = encoded(&mut rng, shape.out_channels, 4.0, bias_fp);
    let weights = ConvWeights::new(shape, kernel, bias).unwrap();
    let x = encoded(
        &mut rng,
        shape.in_channels * shape.height * shape.width,
        8.0,
        fp,
    );
    let (xs, xc) = shared(&x, shape.input_shape(), seed);
    let want = conv2d_mirror(&weights, &x, fp);
    (weights, xs, xc, want)
}

fn run_conv(shape: ConvShape, protocol: ConvProtocol, seed: u64) {
    let fp = format();
    let (weights, xs, xc, want) = conv_case(shape, fp, seed);
    let fx = Fixture::new(seed);
    let (ys, yc, cs, cc) = run(
        &fx,
        move |s, _| conv2d(s, ConvParty::Server(&weights), &shape, protocol, &xs).unwrap(),
        move |s, _| conv2d(s, ConvParty::Client, &shape, protocol, &xc).unwrap(),
    );
    assert_eq!(ys.shape(), &shape.output_shape());
    assert_floor_or_one_below(&ys.reconstruct(&yc).unwrap(), &want, fp.ring());
    assert_cost("conv", &cs, &cc, conv2d_cost(&shape, protocol, fp).unwrap());
}

#[test]
fn convolutions_match_plaintext_and_cost_what_they_say() {
    let seed = seed(33);
    let same = ConvShape {
        in_channels: 5,
        out_channels: 3,
        height: 7,
        width: 6,
        kernel: (3, 3),
        stride: (1, 1),
        pads: [1, 1, 1, 1],
    };
    run_conv(same, ConvProtocol::DirectOt, seed);
    run_conv(same, ConvProtocol::WinogradOt, seed + 1);
    // Asymmetric padding, odd output sizes (Winograd tiles overhang).
    let odd = ConvShape {
        pads: [0, 1, 2, 0],
        height: 6,
        width: 5,
        ..same
    };
    run_conv(odd, ConvProtocol::WinogradOt, seed + 2);
    // Stride 2, a 1×1 shortcut, a non-square kernel: direct only.
    let strided = ConvShape {
        stride: (2, 2),
        pads: [1, 0, 1, 1],
        ..same
    };
    run_conv(strided, ConvProtocol::DirectOt, seed + 3);
    let pointwise = ConvShape {
        kernel: (1, 1),
        stride: (2, 1),
        pads: [0; 4],
        ..same
    };
    run_conv(pointwise, ConvProtocol::DirectOt, seed + 4);
    let wide = ConvShape {
        kernel: (2, 5),
        pads: [1, 2, 0, 2],
        ..same
    };
    run_conv(wide, ConvProtocol::DirectOt, seed + 5);
    assert!(!ConvProtocol::WinogradOt.supports(&strided));
}

#[test]
fn winograd_refuses_what_it_cannot_compute() {
    let shape = ConvShape {
        in_channels: 1,
        out_channels: 1,
        height: 4,
        width: 4,
        kernel: (3, 3),
        stride: (2, 2),
        pads: [0; 4],
    };
    let x = SharedTensor::zeros(shape.input_shape(), format());
    let fx = Fixture::new(34);
    let (s, c, _, _) = run(
        &fx,
        move |s, _| conv2d(s, ConvParty::Client, &shape, ConvProtocol::WinogradOt, &x).is_err(),
        |_, _| true,
    );
    assert!(s && c);
    let bad = ConvShape {
        kernel: (6, 3),
        ..shape
    };
    assert!(bad.validate().is_err());
}

#[test]
fn pooling_matches_plaintext_and_costs_what_it_says() {
    let seed = seed(35);
    let fp = format();
    let ring = fp.ring();
    let mut rng = prg(seed);
    let max = PoolShape {
        channels: 3,
        height: 5,
        width: 6,
        kernel: (3, 2),
        stride: (2, 2),
        pads: [1, 0, 1, 0],
    };
    let x = encoded(&mut rng, 3 * 5 * 6, 100.0, fp);
    let (xs, xc) = shared(&x, max.input_shape(), seed);
    let avg = PoolShape::global(3, 5, 6);
    let avg2 = PoolShape {
        kernel: (2, 2),
        stride: (2, 2),
        pads: [0; 4],
        ..avg
    };
    let fx = Fixture::new(seed);
    let (a, b, cs, cc) = run(
        &fx,
        move |s, _| {
            let m = s.scope("max", |s| max_pool(s, &max, &xs)).unwrap();
            let g = s.scope("avg", |s| avg_pool(s, &avg, &xs)).unwrap();
            let h = s.scope("avg2", |s| avg_pool(s, &avg2, &xs)).unwrap();
            (m, g, h)
        },
        move |s, _| {
            let m = s.scope("max", |s| max_pool(s, &max, &xc)).unwrap();
            let g = s.scope("avg", |s| avg_pool(s, &avg, &xc)).unwrap();
            let h = s.scope("avg2", |s| avg_pool(s, &avg2, &xc)).unwrap();
            (m, g, h)
        },
    );
    assert_eq!(
        a.0.reconstruct(&b.0).unwrap(),
        max_pool_mirror(&max, &x, ring)
    );
    assert_cost("max/maxpool", &cs, &cc, max_pool_cost(&max, ring));
    let want = avg_pool_mirror(&avg, &x, fp).unwrap();
    assert_floor_or_one_below(&a.1.reconstruct(&b.1).unwrap(), &want, ring);
    assert_cost("avg/avgpool", &cs, &cc, avg_pool_cost(&avg, fp).unwrap());
    let want = avg_pool_mirror(&avg2, &x, fp).unwrap();
    assert_floor_or_one_below(&a.2.reconstruct(&b.2).unwrap(), &want, ring);
    assert_cost("avg2/avgpool", &cs, &cc, avg_pool_cost(&avg2, fp).unwrap());
}

#[test]
fn he_convolution_matches_plaintext_and_costs_what_it_says() {
    use nn::conv_he::{conv_he_cost, ClientConvHe, ServerConvHe};
    let seed = seed(36);
    let fp = format();
    let shape = ConvShape {
        in_channels: 5,
        out_channels: 3,
        height: 7,
        width: 6,
        kernel: (3, 3),
        stride: (2, 1),
        pads: [1, 0, 1, 1],
    };
    let (weights, xs, xc, want) = conv_case(shape, fp, seed);
    let fx = Fixture::new(seed);
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().to_path_buf();
    let fxs = fx.clone();
    let (ys, yc, cs, cc) = run(
        &fx,
        move |s, he| {
            let layer = ServerConvHe::new(&weights, fp).unwrap();
            layer
                .setup(
                    &mut s.ch,
                    &fxs.params,
                    &fxs.server.sk,
                    &fxs.server.pk,
                    mpc_core::Seed([0x36; 16]),
                )
                .unwrap();
            s.ch.flush().unwrap();
            s.scope("op", |s| layer.online(s, he, &xs)).unwrap()
        },
        move |s, he| {
            let layer = ClientConvHe::setup(&mut s.ch, he.params, shape, fp, &dir, "c").unwrap();
            s.scope("op", |s| layer.online(s, he, &xc)).unwrap()
        },
    );
    assert_at_most_below(&ys.reconstruct(&yc).unwrap(), &want, fp.ring(), 2);
    assert_cost(
        "op/conv",
        &cs,
        &cc,
        conv_he_cost(&fx.params, &shape, fp).unwrap(),
    );
}

#[test]
fn he_convolution_split_offline_matches_plaintext_and_costs_what_it_says() {
    use nn::conv_he::{ClientConvHe, ServerConvHe};
    use nn::conv_he_offline::{conv_he_offline_cost, conv_he_online_prepared_cost};
    use nn::offline::{OfflineStore, SessionId};
    const MODEL: [u8; 32] = [0x43; 32];
    const SESSION: SessionId = SessionId([0x37; 16]);
    let seed = seed(37);
    let fp = format();
    let shape = ConvShape {
        in_channels: 4,
        out_channels: 5,
        height: 6,
        width: 7,
        kernel: (3, 3),
        stride: (1, 2),
        pads: [1, 1, 0, 1],
    };
    let (weights, xs, xc, want) = conv_case(shape, fp, seed);
    let fx = Fixture::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dirs = tmp.path().to_path_buf();
    let (cache, sdir, cdir) = (dirs.join("cache"), dirs.join("server"), dirs.join("client"));
    let fxs = fx.clone();
    let (ys, (yc, second), cs, cc) = run(
        &fx,
        move |s, he| {
            let layer = ServerConvHe::new(&weights, fp).unwrap();
            let (sk, pk) = (&fxs.server.sk, &fxs.server.pk);
            layer
                .setup(&mut s.ch, &fxs.params, sk, pk, mpc_core::Seed([0x37; 16]))
                .unwrap();
            let store = OfflineStore::create(&sdir, MODEL, SESSION).unwrap();
            s.scope("offline", |s| layer.offline(s, he, &store, "c"))
                .unwrap();
            s.scope("op", |s| layer.online_prepared(s, he, &xs, &store, "c"))
                .unwrap()
        },
        move |s, he| {
            let layer = ClientConvHe::setup(&mut s.ch, he.params, shape, fp, &cache, "c").unwrap();
            let store = OfflineStore::create(&cdir, MODEL, SESSION).unwrap();
            s.scope("offline", |s| layer.offline(s, he, &store, "c"))
                .unwrap();
            let y = s
                .scope("op", |s| layer.online_prepared(s, he, &xc, &store, "c"))
                .unwrap();
            // A second use of the same material is refused before anything is sent.
            let again = layer.online_prepared(s, he, &xc, &store, "c");
            (y, again.map(|_| ()).unwrap_err().to_string())
        },
    );
    assert!(second.contains("already used"), "{second}");
    assert_at_most_below(&ys.reconstruct(&yc).unwrap(), &want, fp.ring(), 2);
    assert_cost(
        "offline",
        &cs,
        &cc,
        conv_he_offline_cost(&fx.params, &shape).unwrap(),
    );
    assert_cost(
        "op/conv",
        &cs,
        &cc,
        conv_he_online_prepared_cost(&fx.params, &shape, fp).unwrap(),
    );
}
