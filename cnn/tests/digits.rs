//! The digits ResNet (ONNX): the float reference against onnxruntime's outputs, the
//! fixed-point mirror against the float predictions on all 360 test images, the secure pass
//! (direct and Winograd convolutions) against both on a few images, and the loader's errors.
use cnn::cost::{network_cost, offline_cost};
use cnn::offline::OfflineStore;
use cnn::reference::{
    argmax, decode_output, encode_image, fixed_forward, float_forward, value_frac_bits,
};
use cnn::secure::{
    he_setup_client, he_setup_server, infer, layer_label, ConvPlan, HeLayers, LayerProtocol, Role,
};
use cnn::{cnn_format, data, onnx, CnnError, Network, Quantized};
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
use mpc_core::{AesPrg, Seed};
use mpc_core::{Channel, Party};
use nn::conv::ConvProtocol;
use nn::HeKeys;
use ot_nonlinear::mpc::Session;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/digits-resnet")
}

fn model() -> Network {
    onnx::load(&dir().join("digits-resnet.onnx")).unwrap()
}

fn test_rows() -> Vec<data::Sample> {
    data::load(&dir().join("digits.csv"), "test", 64, 1.0 / 16.0).unwrap()
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(dir().join("reference-outputs.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn float_reference_matches_onnxruntime_and_the_mirror_matches_float() {
    let net = model();
    let rows = test_rows();
    assert_eq!(rows.len(), 360);
    let r = reference();
    let preds: Vec<usize> = r["test_predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    for (i, want) in r["first_test_logits"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let got = float_forward(&net, &rows[i].values).unwrap();
        for (g, w) in got.iter().zip(want.as_array().unwrap()) {
            assert!(
                (g - w.as_f64().unwrap()).abs() < 1e-4,
                "row {i}: {g} vs {w}"
            );
        }
    }
    let fp = cnn_format();
    let q = Quantized::new(&net, fp).unwrap();
    let frac = value_frac_bits(&net, net.output(), fp);
    let mut correct = 0;
    for (i, row) in rows.iter().enumerate() {
        let float = argmax(&float_forward(&net, &row.values).unwrap());
        assert_eq!(float, preds[i], "row {i}: float vs onnxruntime");
        let x = encode_image(&row.values, fp).unwrap();
        let fixed = decode_output(&fixed_forward(&net, &q, &x).unwrap(), fp, frac).unwrap();
        assert_eq!(
            argmax(&fixed),
            float,
            "row {i}: fixed-point mirror vs float"
        );
        correct += (float == row.label) as usize;
    }
    let accuracy = correct as f64 / 360.0;
    assert!((accuracy - r["test_accuracy"].as_f64().unwrap()).abs() < 1e-9);
}

struct Keys {
    params: HeParams,
    server: (SecretKey, PublicKey),
    client: (SecretKey, PublicKey),
}

fn keys() -> Arc<Keys> {
    let params = HeParams::default_params().unwrap();
    let pair = |t: u64| {
        let mut rng = AesPrg::new(Seed([0x19; 16]).derive(t));
        let sk = SecretKey::generate(&params, &mut rng);
        let pk = PublicKey::generate(&params, &sk, &mut rng);
        (sk, pk)
    };
    let (server, client) = (pair(1), pair(2));
    Arc::new(Keys {
        params,
        server,
        client,
    })
}

/// Runs the secure pass on one image (HE set up first; with `split`, the offline phase
/// before the image); returns the client's decoded logits and the online bytes of every
/// layer, both directions.
fn secure(
    net: &Network,
    q: &Quantized,
    image: &[f32],
    plan: ConvPlan,
    split: bool,
) -> (Vec<f64>, Vec<u64>) {
    let fp = cnn_format();
    let k = keys();
    let cache = tempfile::tempdir().unwrap();
    let (server_root, client_root) = (cache.path().join("off-s"), cache.path().join("off-c"));
    let (cs, cc) = Channel::mem_pair();
    let (server_net, server_q, ks) = (net.clone(), q.clone(), k.clone());
    let server = std::thread::spawn(move || {
        let mut s = Session::new(cs, Party::Server, Seed([0x51; 16])).unwrap();
        let keys = HeKeys::unpacked(&ks.params, &ks.server.0, &ks.client.1);
        let he = he_setup_server(
            &mut s.ch,
            &server_net,
            &server_q,
            plan,
            keys,
            &ks.server.1,
            Seed([0x53; 16]),
        )
        .unwrap();
        let store = split.then(|| prepared(&mut s, &he, &server_root));
        infer(
            &mut s,
            &server_net,
            fp,
            Role::Server(&server_q),
            plan,
            Some(&he),
            store.as_ref(),
        )
        .unwrap()
    });
    let public = net.public();
    let x = encode_image(image, fp).unwrap();
    let mut c = Session::new(cc, Party::Client, Seed([0x52; 16])).unwrap();
    let keys = HeKeys::unpacked(&k.params, &k.client.0, &k.server.1);
    let he = he_setup_client(&mut c.ch, &public, fp, plan, keys, cache.path()).unwrap();
    let store = split.then(|| prepared(&mut c, &he, &client_root));
    let y = infer(
        &mut c,
        &public,
        fp,
        Role::Client(&x),
        plan,
        Some(&he),
        store.as_ref(),
    )
    .unwrap()
    .unwrap();
    if split {
        let exact = offline_cost(net, plan, fp, &k.params).unwrap();
        let got = c.ch.stats_of("offline").unwrap();
        assert_eq!(got.bytes(), exact.server_bytes + exact.client_bytes);
        assert_eq!(got.rounds, exact.rounds);
    }
    assert!(server.join().unwrap().is_none());
    let bytes = (0..net.layers().len())
        .map(|i| {
            let label = format!("{}/{}", layer_label(i), net.layers()[i].op.kind().label());
            c.ch.stats_of(&label).unwrap_or_default().bytes()
        })
        .collect();
    let logits = decode_output(&y, fp, value_frac_bits(net, net.output(), fp)).unwrap();
    (logits, bytes)
}

/// One offline phase, and this party's checked store of it.
fn prepared(sess: &mut Session, he: &HeLayers<'_>, root: &Path) -> OfflineStore {
    let id = cnn::offline::offline(sess, he, root).unwrap();
    cnn::offline::open(he, root, id).unwrap()
}

#[test]
fn secure_predictions_equal_float_on_a_few_images() {
    let net = model();
    let fp = cnn_format();
    let q = Quantized::new(&net, fp).unwrap();
    let rows = test_rows();
    let frac = value_frac_bits(&net, net.output(), fp);
    for (i, plan, split) in [
        (
            0,
            ConvPlan::Forced(LayerProtocol::Ot(ConvProtocol::DirectOt)),
        ),
        (
            1,
            ConvPlan::Forced(LayerProtocol::Ot(ConvProtocol::WinogradOt)),
        ),
        (2, ConvPlan::Forced(LayerProtocol::He)),
        (3, ConvPlan::Auto),
    ]
    .into_iter()
    .flat_map(|(i, plan)| [(i, plan, false), (i + 4, plan, true)])
    .filter(|&(_, plan, split)| {
        !split || matches!(plan, ConvPlan::Forced(LayerProtocol::He) | ConvPlan::Auto)
    }) {
        let row = &rows[i];
        let (got, bytes) = secure(&net, &q, &row.values, plan, split);
        // Every operator sent exactly its predicted bytes.
        let params = HeParams::default_params().unwrap();
        let predicted = network_cost(&net, plan, fp, Some(&params), split).unwrap();
        for (l, (b, p)) in bytes.iter().zip(&predicted).enumerate() {
            if matches!(net.layers()[l].op, cnn::Op::Add | cnn::Op::Flatten) {
                continue;
            }
            assert_eq!(*b, p.cost.bytes(), "row {i}, {plan:?}: layer {l}");
        }
        let mirror = decode_output(
            &fixed_forward(&net, &q, &encode_image(&row.values, fp).unwrap()).unwrap(),
            fp,
            frac,
        )
        .unwrap();
        for (g, m) in got.iter().zip(&mirror) {
            // Truncation carries (one unit of 2^-12 each) spread through a few layers.
            assert!(
                (g - m).abs() < 0.05,
                "row {i}, {plan:?}, split {split}: {g} vs mirror {m}"
            );
        }
        let float = argmax(&float_forward(&net, &row.values).unwrap());
        assert_eq!(argmax(&got), float, "row {i}, {plan:?}, split {split}");
    }
}

fn patched(from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut bytes = std::fs::read(dir().join("digits-resnet.onnx")).unwrap();
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern in the model");
    bytes[at..at + to.len()].copy_from_slice(to);
    bytes
}

#[test]
fn loader_errors_name_the_node_or_file() {
    let err = onnx::parse(&patched(b"Relu", b"Relx"), "x.onnx").unwrap_err();
    assert!(
        matches!(&err, CnnError::UnsupportedOp { node, op } if node == "relu1" && op == "Relx"),
        "{err}"
    );
    let err = onnx::parse(&patched(b"strides", b"stridez"), "x.onnx").unwrap_err();
    assert!(
        matches!(&err, CnnError::Attribute { node, attribute, .. } if node == "conv1" && attribute == "stridez"),
        "{err}"
    );
    let bytes = std::fs::read(dir().join("digits-resnet.onnx")).unwrap();
    let err = onnx::parse(&bytes[..bytes.len() / 2], "half.onnx").unwrap_err();
    assert!(
        matches!(&err, CnnError::Onnx { file, .. } if file == "half.onnx"),
        "{err}"
    );
    let err = onnx::load(Path::new("/nonexistent/model.onnx")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/model.onnx"), "{err}");
}

#[test]
fn resnets_have_cifar100_shapes() {
    let r18 = cnn::resnet::resnet18_cifar100(1).unwrap();
    let r32 = cnn::resnet::resnet32_cifar100(1).unwrap();
    let convs = |n: &Network| {
        n.layers()
            .iter()
            .filter(|l| matches!(l.op, cnn::Op::Conv(_)))
            .count()
    };
    // 17 3×3 convolutions + 3 projections; 31 + 2.
    assert_eq!((convs(&r18), convs(&r32)), (20, 33));
    assert_eq!((r18.classes(), r32.classes()), (100, 100));
}
