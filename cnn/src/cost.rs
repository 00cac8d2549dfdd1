//! The exact cost of every layer of the secure pass (its operator's own messages: bytes each
//! way and rounds; the Ferret extensions that supply its COTs are reported apart), from the
//! `nn` cost functions the operator tests check against the channel counters.
use crate::graph::{Network, Op};
use crate::secure::{ConvPlan, LayerProtocol};
use crate::Result;
use he_linear::params::HeParams;
use mpc_core::FixedPoint;
use nn::activation::relu_cost;
use nn::cast::truncate_cost;
use nn::conv::conv2d_cost;
use nn::conv_he::conv_he_cost;
use nn::conv_he_offline::{conv_he_offline_cost, conv_he_online_prepared_cost};
use nn::pool::{avg_pool_cost, max_pool_cost};
use ot_nonlinear::mpc::matmul::server_matmul_cost;
use ot_nonlinear::mpc::{Cost, MatmulDims, Side};

/// One layer's predicted cost and, for a convolution, its protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerCost {
    /// The convolution protocol (convolutions only).
    pub protocol: Option<LayerProtocol>,
    /// Bytes and rounds of the operator.
    pub cost: Cost,
}

/// The online cost of every layer of `net` under `plan` (HE available when `he` holds its
/// parameters), in layer order; `prepared`: the HE convolutions run on offline material.
pub fn network_cost(
    net: &Network,
    plan: ConvPlan,
    format: FixedPoint,
    he: Option<&HeParams>,
    prepared: bool,
) -> Result<Vec<LayerCost>> {
    let ring = format.ring();
    net.layers()
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            let n: usize = net.shape(layer.inputs[0]).iter().product();
            let (protocol, cost) = match &layer.op {
                Op::Conv(c) => {
                    let p = plan.choose(&c.shape, format, he)?;
                    let cost = match (p, he) {
                        (LayerProtocol::Ot(o), _) => conv2d_cost(&c.shape, o, format)?,
                        (LayerProtocol::He, Some(params)) if prepared => {
                            conv_he_online_prepared_cost(params, &c.shape, format)?
                        }
                        (LayerProtocol::He, Some(params)) => {
                            conv_he_cost(params, &c.shape, format)?
                        }
                        (LayerProtocol::He, None) => {
                            return Err(mpc_core::Error::InvalidArgument(
                                "an HE convolution without HE parameters".into(),
                            )
                            .into())
                        }
                    };
                    (Some(p), cost)
                }
                Op::Relu => (None, relu_cost(n, ring)),
                Op::Add | Op::Flatten => (None, Cost::default()),
                Op::MaxPool(p) => (None, max_pool_cost(p, ring)),
                Op::AvgPool(p) => (None, avg_pool_cost(p, format)?),
                Op::Dense(d) => {
                    let dims = MatmulDims {
                        batch: 1,
                        rows: d.outputs,
                        inner: d.inputs,
                        cols: 1,
                    };
                    let product = server_matmul_cost(dims, ring);
                    let cost = if i + 1 == net.output() {
                        product
                    } else {
                        product.then(truncate_cost(d.outputs, ring, ring, format.frac_bits())?)
                    };
                    (None, cost)
                }
            };
            Ok(LayerCost { protocol, cost })
        })
        .collect()
}

/// The exact cost of one inference's offline phase (label `offline`): the session id, every
/// HE convolution's COP on im2col(R), and the end marker.
pub fn offline_cost(
    net: &Network,
    plan: ConvPlan,
    format: FixedPoint,
    params: &HeParams,
) -> Result<Cost> {
    let flight = |client_bytes, server_bytes, first| Cost {
        server_bytes,
        client_bytes,
        rounds: 1,
        first,
        last: first,
    };
    let mut cost = flight(16, 0, Side::Client);
    for layer in net.layers() {
        if let Op::Conv(c) = &layer.op {
            if plan.choose(&c.shape, format, Some(params))? == LayerProtocol::He {
                cost = cost.then(conv_he_offline_cost(params, &c.shape)?);
            }
        }
    }
    Ok(cost.then(flight(0, 1, Side::Server)))
}
