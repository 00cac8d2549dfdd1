//! The digits ResNet (ONNX): the float reference against onnxruntime's outputs, the
//! fixed-point mirror against the float predictions on all 360 test images, the secure pass
//! (direct and Winograd convolutions) against both on a few images, and the loader's errors.
use cnn::reference::{
    argmax, decode_output, encode_image, fixed_forward, float_forward, value_frac_bits,
};
use cnn::secure::{infer, ConvPlan, Role};
use cnn::{cnn_format, data, onnx, CnnError, Network, Quantized};
use mpc_core::{Channel, Party};
use nn::conv::ConvProtocol;
use ot_nonlinear::mpc::Session;
use std::path::{Path, PathBuf};

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
    for (i, want) in r["first_test_logits"].as_array().unwrap().iter().enumerate() {
        let got = float_forward(&net, &rows[i].values).unwrap();
        for (g, w) in got.iter().zip(want.as_array().unwrap()) {
            assert!((g - w.as_f64().unwrap()).abs() < 1e-4, "row {i}: {g} vs {w}");
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
        assert_eq!(argmax(&fixed), float, "row {i}: fixed-point mirror vs float");
        correct += (float == row.label) as usize;
    }
    let accuracy = correct as f64 / 360.0;
    assert!((accuracy - r["test_accuracy"].as_f64().unwrap()).abs() < 1e-9);
}

/// Runs the secure pass on one image; returns the client's decoded logits.
fn secure(net: &Network, q: &Quantized, image: &[f32], plan: ConvPlan) -> Vec<f64> {
    let fp = cnn_format();
    let (cs, cc) = Channel::mem_pair();
    let (server_net, server_q) = (net.clone(), q.clone());
    let server = std::thread::spawn(move || {
        let mut s = Session::new(cs, Party::Server).unwrap();
        infer(&mut s, &server_net, fp, Role::Server(&server_q), plan).unwrap()
    });
    let public = net.public();
    let x = encode_image(image, fp).unwrap();
    let mut c = Session::new(cc, Party::Client).unwrap();
    let y = infer(&mut c, &public, fp, Role::Client(&x), plan).unwrap().unwrap();
    assert!(server.join().unwrap().is_none());
    decode_output(&y, fp, value_frac_bits(net, net.output(), fp)).unwrap()
}

#[test]
fn secure_predictions_equal_float_on_a_few_images() {
    let net = model();
    let fp = cnn_format();
    let q = Quantized::new(&net, fp).unwrap();
    let rows = test_rows();
    let frac = value_frac_bits(&net, net.output(), fp);
    for (i, plan) in [
        (0, ConvPlan::Forced(ConvProtocol::DirectOt)),
        (1, ConvPlan::Forced(ConvProtocol::WinogradOt)),
        (2, ConvPlan::Auto),
    ] {
        let row = &rows[i];
        let got = secure(&net, &q, &row.values, plan);
        let mirror = decode_output(
            &fixed_forward(&net, &q, &encode_image(&row.values, fp).unwrap()).unwrap(),
            fp,
            frac,
        )
        .unwrap();
        for (g, m) in got.iter().zip(&mirror) {
            // Truncation carries (one unit of 2^-12 each) spread through a few layers.
            assert!((g - m).abs() < 0.05, "row {i}, {plan:?}: {g} vs mirror {m}");
        }
        let float = argmax(&float_forward(&net, &row.values).unwrap());
        assert_eq!(argmax(&got), float, "row {i}, {plan:?}");
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
    assert!(matches!(&err, CnnError::Onnx { file, .. } if file == "half.onnx"), "{err}");
    let err = onnx::load(Path::new("/nonexistent/model.onnx")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/model.onnx"), "{err}");
}

#[test]
fn resnets_have_cifar100_shapes() {
    let r18 = cnn::resnet::resnet18_cifar100(1).unwrap();
    let r32 = cnn::resnet::resnet32_cifar100(1).unwrap();
    let convs = |n: &Network| n.layers().iter().filter(|l| matches!(l.op, cnn::Op::Conv(_))).count();
    // 17 3×3 convolutions + 3 projections; 31 + 2.
    assert_eq!((convs(&r18), convs(&r32)), (20, 33));
    assert_eq!((r18.classes(), r32.classes()), (100, 100));
}
