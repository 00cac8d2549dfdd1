//! The two-party pass: the client's image enters as its own share (the server's is zero),
//! every layer runs one `nn` operator under the label `layerNN/<op>`, and the output is revealed
//! to the client alone (the server sends its share; it learns nothing).
//!
//! Convolutions run on the protocol the [`ConvPlan`] picks per layer: forced (`direct-ot`,
//! `winograd-ot`, `he`; Winograd needs 3×3 kernels with stride 1, other layers fall back to
//! `direct-ot`) or `auto`, the cheapest by the exact online cost formula (bytes). The HE
//! layers' encrypted kernels are sent once, in [`he_setup_server`] / [`he_setup_client`].
use crate::graph::{Network, Op};
use crate::reference::{value_frac_bits, LayerWeights, Quantized};
use crate::{CnnError, Result};
use he_linear::params::HeParams;
use he_linear::rlwe::PublicKey;
use mpc_core::{Channel, FixedPoint, Party, Seed};
use nn::cast::truncate;
use nn::conv::{conv2d, conv2d_cost, ConvParty, ConvProtocol, ConvShape};
use nn::conv_he::{conv_he_cost, ClientConvHe, ServerConvHe};
use nn::label::layer_prefix;
use nn::offline::OfflineStore;
use nn::pool::{avg_pool, max_pool};
use nn::HeKeys;
use nn::{CnnOp, Shape, SharedTensor};
use ot_nonlinear::mpc::matmul::server_matmul_cots;
use ot_nonlinear::mpc::{relu, server_matmul, MatmulDims, Session};
use std::path::Path;

/// A convolution protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerProtocol {
    /// On the OT matrix product: direct (im2col) or Winograd.
    Ot(ConvProtocol),
    /// On the HE linear layer (im2col; the kernel encrypted once, cached by the client).
    He,
}

impl LayerProtocol {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            LayerProtocol::Ot(p) => p.name(),
            LayerProtocol::He => "he",
        }
    }
}

/// How convolutions are assigned their protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvPlan {
    /// This protocol wherever it applies, `direct-ot` elsewhere.
    Forced(LayerProtocol),
    /// The cheapest online bytes (exact formula) per layer; HE only when HE parameters are
    /// given.
    Auto,
}

impl ConvPlan {
    /// Parses `auto`, `direct-ot`, `winograd-ot`, `he`; `winograd-he` is refused (it would not
    /// help: see docs/protocols/conv.md).
    pub fn parse(s: &str) -> Result<ConvPlan> {
        match s {
            "auto" => Ok(ConvPlan::Auto),
            "direct-ot" => Ok(ConvPlan::Forced(LayerProtocol::Ot(ConvProtocol::DirectOt))),
            "winograd-ot" => Ok(ConvPlan::Forced(LayerProtocol::Ot(
                ConvProtocol::WinogradOt,
            ))),
            "he" => Ok(ConvPlan::Forced(LayerProtocol::He)),
            "winograd-he" => Err(mpc_core::Error::Unavailable(
                "--conv winograd-he: not built; with coefficient-encoded HE the online bytes \
                 follow the outputs, which Winograd multiplies by 4 (docs/protocols/conv.md)"
                    .into(),
            )
            .into()),
            other => Err(mpc_core::Error::InvalidArgument(format!(
                "--conv {other}: expected auto, direct-ot, winograd-ot, he or winograd-he"
            ))
            .into()),
        }
    }

    /// The protocol for a convolution of `shape`; `he` holds the HE parameters when HE is
    /// available.
    pub fn choose(
        self,
        shape: &ConvShape,
        format: FixedPoint,
        he: Option<&HeParams>,
    ) -> Result<LayerProtocol> {
        match self {
            ConvPlan::Forced(LayerProtocol::He) if he.is_some() => Ok(LayerProtocol::He),
            ConvPlan::Forced(LayerProtocol::He) => {
                Err(mpc_core::Error::InvalidArgument("--conv he needs HE parameters".into()).into())
            }
            ConvPlan::Forced(LayerProtocol::Ot(p)) if p.supports(shape) => Ok(LayerProtocol::Ot(p)),
            ConvPlan::Forced(_) => Ok(LayerProtocol::Ot(ConvProtocol::DirectOt)),
            ConvPlan::Auto => {
                let mut best = (LayerProtocol::Ot(ConvProtocol::DirectOt), u64::MAX);
                for p in [ConvProtocol::DirectOt, ConvProtocol::WinogradOt] {
                    if p.supports(shape) {
                        let bytes = conv2d_cost(shape, p, format)?.bytes();
                        if bytes < best.1 {
                            best = (LayerProtocol::Ot(p), bytes);
                        }
                    }
                }
                if let Some(params) = he {
                    if conv_he_cost(params, shape, format)?.bytes() < best.1 {
                        best.0 = LayerProtocol::He;
                    }
                }
                Ok(best.0)
            }
        }
    }
}

/// One party's HE convolutions (set up) and keys.
#[derive(Debug)]
pub struct HeLayers<'a> {
    /// Parameters and keys.
    pub keys: HeKeys<'a>,
    pub(crate) layers: Vec<Option<HeConv>>,
}

#[derive(Debug)]
pub(crate) enum HeConv {
    Server(ServerConvHe),
    Client(ClientConvHe),
}

/// Coefficients one inference reveals under the server's key: every HE convolution's COP
/// outputs, Ho·Wo·K each (the CNN has no other HE step; the client's key reveals nothing).
pub fn he_reveals(
    net: &Network,
    plan: ConvPlan,
    format: FixedPoint,
    params: &HeParams,
) -> Result<u64> {
    let mut total = 0u64;
    for layer in net.layers() {
        if let Op::Conv(c) = &layer.op {
            if plan.choose(&c.shape, format, Some(params))? == LayerProtocol::He {
                total += c.shape.output_shape().len() as u64;
            }
        }
    }
    Ok(total)
}

/// Refuses a plan whose HE reveals exceed the floods' per-inference budget.
fn check_reveals(
    net: &Network,
    plan: ConvPlan,
    format: FixedPoint,
    params: &HeParams,
) -> Result<()> {
    let n = he_reveals(net, plan, format, params)?;
    Ok(params.check_inference_reveals(n, "this CNN")?)
}

/// The server's setup of the HE convolutions of `plan`: sends each encrypted kernel; `seed`
/// (fresh, secret) seeds the encryptions (layer i's from `seed.derive(i)`).
pub fn he_setup_server<'a>(
    ch: &mut Channel,
    net: &Network,
    q: &Quantized,
    plan: ConvPlan,
    keys: HeKeys<'a>,
    pk: &PublicKey,
    seed: Seed,
) -> Result<HeLayers<'a>> {
    let format = q.format();
    check_reveals(net, plan, format, keys.params)?;
    let mut layers = Vec::with_capacity(net.layers().len());
    for (i, layer) in net.layers().iter().enumerate() {
        let he = match (&layer.op, q.layer(i)) {
            (Op::Conv(c), Some(LayerWeights::Conv(w)))
                if plan.choose(&c.shape, format, Some(keys.params))? == LayerProtocol::He =>
            {
                let conv = ServerConvHe::new(w, format)?;
                conv.setup(ch, keys.params, keys.keys.my_sk, pk, seed.derive(i as u64))?;
                Some(HeConv::Server(conv))
            }
            _ => None,
        };
        layers.push(he);
    }
    ch.flush()?;
    Ok(HeLayers { keys, layers })
}

/// The client's setup of the HE convolutions of `plan` (cache entries `layerNN` in
/// `cache_dir`).
pub fn he_setup_client<'a>(
    ch: &mut Channel,
    net: &Network,
    format: FixedPoint,
    plan: ConvPlan,
    keys: HeKeys<'a>,
    cache_dir: &Path,
) -> Result<HeLayers<'a>> {
    check_reveals(net, plan, format, keys.params)?;
    let mut layers = Vec::with_capacity(net.layers().len());
    for (i, layer) in net.layers().iter().enumerate() {
        let he = match &layer.op {
            Op::Conv(c)
                if plan.choose(&c.shape, format, Some(keys.params))? == LayerProtocol::He =>
            {
                Some(HeConv::Client(ClientConvHe::setup(
                    ch,
                    keys.params,
                    c.shape,
                    format,
                    cache_dir,
                    &layer_label(i),
                )?))
            }
            _ => None,
        };
        layers.push(he);
    }
    Ok(HeLayers { keys, layers })
}

/// What a party brings: the server its encoded weights, the client its encoded image.
#[derive(Clone, Copy, Debug)]
pub enum Role<'a> {
    /// The server.
    Server(&'a Quantized),
    /// The client with its image (C × H × W, encoded in the format).
    Client(&'a [u64]),
}

/// The label of layer `i`'s work: `layerNN`.
pub fn layer_label(i: usize) -> String {
    layer_prefix(i)
}

/// Runs the network; the client gets the output (encoded, [`value_frac_bits`] fraction bits),
/// the server `None`. Both parties pass the same network (the client's copy without weights),
/// format and plan; with `offline` (this party's store of one session,
/// [`crate::offline::open`]) the HE convolutions run on its material, with no HE.
pub fn infer(
    sess: &mut Session,
    net: &Network,
    format: FixedPoint,
    role: Role<'_>,
    plan: ConvPlan,
    he: Option<&HeLayers<'_>>,
    offline: Option<&OfflineStore>,
) -> Result<Option<Vec<u64>>> {
    let params = he.map(|h| h.keys.params);
    let input_shape = Shape::new(net.input_shape());
    let x = match role {
        Role::Server(q) => {
            if q.format() != format {
                return Err(
                    mpc_core::Error::ParamMismatch("weights in another format".into()).into(),
                );
            }
            SharedTensor::zeros(input_shape, format)
        }
        Role::Client(image) => SharedTensor::new(input_shape, format, image.to_vec())?,
    };
    let layers = net.layers();
    // The last layer reading each value, so that a value is dropped after it.
    let mut last_use = vec![0usize; layers.len() + 1];
    for (i, l) in layers.iter().enumerate() {
        l.inputs.iter().for_each(|&v| last_use[v] = i);
    }
    last_use[net.output()] = usize::MAX;
    let mut values: Vec<Option<SharedTensor>> = vec![Some(x)];
    for (i, layer) in layers.iter().enumerate() {
        let get = |v: usize| -> Result<&SharedTensor> {
            values[v].as_ref().ok_or_else(|| CnnError::Graph {
                node: layer.name.clone(),
                reason: format!("value {v} was dropped"),
            })
        };
        let a = get(layer.inputs[0])?;
        let weights = match role {
            Role::Server(q) => q.layer(i),
            Role::Client(_) => None,
        };
        let y = sess.scope(&layer_label(i), |sess| -> Result<SharedTensor> {
            Ok(match &layer.op {
                Op::Conv(c) => {
                    let party = match (role, weights) {
                        (Role::Server(_), Some(LayerWeights::Conv(w))) => ConvParty::Server(w),
                        (Role::Client(_), _) => ConvParty::Client,
                        _ => return Err(missing(&layer.name)),
                    };
                    match plan.choose(&c.shape, format, params)? {
                        LayerProtocol::Ot(p) => conv2d(sess, party, &c.shape, p, a)?,
                        LayerProtocol::He => {
                            let h = he.ok_or_else(|| missing(&layer.name))?;
                            let (keys, name) = (&h.keys, layer_label(i));
                            match (h.layers.get(i).and_then(Option::as_ref), offline) {
                                (Some(HeConv::Server(conv)), None) => conv.online(sess, keys, a)?,
                                (Some(HeConv::Client(conv)), None) => conv.online(sess, keys, a)?,
                                (Some(HeConv::Server(conv)), Some(store)) => {
                                    conv.online_prepared(sess, keys, a, store, &name)?
                                }
                                (Some(HeConv::Client(conv)), Some(store)) => {
                                    conv.online_prepared(sess, keys, a, store, &name)?
                                }
                                (None, _) => return Err(missing(&layer.name)),
                            }
                        }
                    }
                }
                Op::Relu => {
                    sess.reserve(ot_nonlinear::mpc::relu::relu_cots(
                        a.share().len(),
                        a.ring(),
                    ))?;
                    let y = relu(sess, a.share(), a.ring())?;
                    SharedTensor::new(a.shape().clone(), format, y)?
                }
                Op::Add => {
                    let b = get(layer.inputs[1])?;
                    sess.scope(CnnOp::Add.label(), |_| a.add(b))?
                }
                Op::MaxPool(p) => max_pool(sess, p, a)?,
                Op::AvgPool(p) => avg_pool(sess, p, a)?,
                Op::Flatten => a.clone().reshape(Shape::new(&[a.shape().len()]))?,
                Op::Dense(d) => {
                    let w = match (role, weights) {
                        (Role::Server(_), Some(LayerWeights::Dense { weights, bias })) => {
                            Some((weights, bias))
                        }
                        (Role::Client(_), _) => None,
                        _ => return Err(missing(&layer.name)),
                    };
                    dense(sess, d.inputs, d.outputs, w, a, i + 1 == net.output())?
                }
            })
        })?;
        values.push(Some(y));
        for &v in &layer.inputs {
            if last_use[v] == i {
                values[v] = None;
            }
        }
    }
    let out = values[net.output()].take().ok_or_else(|| CnnError::Graph {
        node: "graph output".into(),
        reason: "not computed".into(),
    })?;
    debug_assert_eq!(out.frac_bits(), value_frac_bits(net, net.output(), format));
    sess.scope(CnnOp::Reveal.label(), |sess| match sess.party {
        Party::Server => {
            sess.ch.send_u64s(out.share())?;
            sess.ch.flush()?;
            Ok(None)
        }
        Party::Client => {
            let theirs = sess.ch.recv_u64s(out.share().len())?;
            let ring = format.ring();
            ring.check_all(&theirs)?;
            Ok(Some(ring.reconstruct_vec(out.share(), &theirs)?))
        }
    })
}

fn missing(node: &str) -> CnnError {
    CnnError::Graph {
        node: node.into(),
        reason: "no weights (or HE setup) for this layer".into(),
    }
}

/// y = W·x + b on the OT matrix product; truncated to s fraction bits unless it is the output.
fn dense(
    sess: &mut Session,
    inputs: usize,
    outputs: usize,
    weights: Option<(&Vec<u64>, &Vec<u64>)>,
    x: &SharedTensor,
    is_output: bool,
) -> Result<SharedTensor> {
    let format = x.format();
    let ring = format.ring();
    let dims = MatmulDims {
        batch: 1,
        rows: outputs,
        inner: inputs,
        cols: 1,
    };
    sess.reserve(server_matmul_cots(dims, ring))?;
    sess.scope(CnnOp::Dense.label(), |sess| {
        let mut y = server_matmul(sess, weights.map(|(w, _)| &w[..]), x.share(), dims, ring)?;
        if let Some((_, b)) = weights {
            y.iter_mut().zip(b).for_each(|(v, &b)| *v = ring.add(*v, b));
        }
        let wide = FixedPoint::new(ring, 2 * format.frac_bits())?;
        let y = SharedTensor::new(Shape::new(&[outputs]), wide, y)?;
        if is_output {
            Ok(y)
        } else {
            Ok(truncate(sess, &y, format.frac_bits(), ring)?)
        }
    })
}
