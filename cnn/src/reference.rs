//! The float reference (f64 arithmetic on the float weights) and the fixed-point mirror: the
//! same network on Z_2^ℓ encodings with each `nn` operator's mirror, which the secure pass
//! reproduces up to truncation carries (each truncation may come out one unit low).
use crate::graph::{Network, Op, ValueId};
use crate::{CnnError, Result};
use mpc_core::FixedPoint;
use nn::activation::relu_mirror;
use nn::cast::truncate_mirror;
use nn::conv::{conv2d_mirror, ConvWeights};
use nn::pool::{avg_pool_mirror, max_pool_mirror, PoolShape};

/// The float forward pass of one image (C × H × W, row-major): the output value (logits).
pub fn float_forward(net: &Network, x: &[f32]) -> Result<Vec<f64>> {
    let input: usize = net.input_shape().iter().product();
    if x.len() != input {
        return Err(CnnError::Graph {
            node: net.input_name().into(),
            reason: format!("{} input values for shape {:?}", x.len(), net.input_shape()),
        });
    }
    let mut values: Vec<Vec<f64>> = vec![x.iter().map(|&v| v as f64).collect()];
    for layer in net.layers() {
        let a = &values[layer.inputs[0]];
        let y = match &layer.op {
            Op::Conv(c) => {
                let s = &c.shape;
                let (ho, wo) = (s.out_height(), s.out_width());
                let (kh, kw) = s.kernel;
                let mut y = vec![0.0; s.out_channels * ho * wo];
                for k in 0..s.out_channels {
                    for oy in 0..ho {
                        for ox in 0..wo {
                            let mut acc = c.bias[k] as f64;
                            for ch in 0..s.in_channels {
                                for dy in 0..kh {
                                    for dx in 0..kw {
                                        let r = (oy * s.stride.0 + dy).checked_sub(s.pads[0]);
                                        let q = (ox * s.stride.1 + dx).checked_sub(s.pads[1]);
                                        if let (Some(r), Some(q)) = (r, q) {
                                            if r < s.height && q < s.width {
                                                let w = c.kernel[((k * s.in_channels + ch) * kh
                                                    + dy)
                                                    * kw
                                                    + dx];
                                                acc +=
                                                    w as f64 * a[(ch * s.height + r) * s.width + q];
                                            }
                                        }
                                    }
                                }
                            }
                            y[(k * ho + oy) * wo + ox] = acc;
                        }
                    }
                }
                y
            }
            Op::Relu => a.iter().map(|&v| v.max(0.0)).collect(),
            Op::Add => a
                .iter()
                .zip(&values[layer.inputs[1]])
                .map(|(x, y)| x + y)
                .collect(),
            Op::MaxPool(p) => pool_float(p, a, true),
            Op::AvgPool(p) => pool_float(p, a, false),
            Op::Flatten => a.clone(),
            Op::Dense(d) => (0..d.outputs)
                .map(|o| {
                    let row = &d.weights[o * d.inputs..(o + 1) * d.inputs];
                    row.iter().zip(a).map(|(&w, x)| w as f64 * x).sum::<f64>() + d.bias[o] as f64
                })
                .collect(),
        };
        values.push(y);
    }
    Ok(values.swap_remove(net.output()))
}

fn pool_float(p: &PoolShape, x: &[f64], max: bool) -> Vec<f64> {
    let (ho, wo) = (p.out_height(), p.out_width());
    let mut y = Vec::with_capacity(p.channels * ho * wo);
    for c in 0..p.channels {
        for oy in 0..ho {
            for ox in 0..wo {
                let mut vals = Vec::new();
                for dy in 0..p.kernel.0 {
                    for dx in 0..p.kernel.1 {
                        let r = (oy * p.stride.0 + dy).checked_sub(p.pads[0]);
                        let q = (ox * p.stride.1 + dx).checked_sub(p.pads[1]);
                        if let (Some(r), Some(q)) = (r, q) {
                            if r < p.height && q < p.width {
                                vals.push(x[(c * p.height + r) * p.width + q]);
                            }
                        }
                    }
                }
                y.push(if max {
                    vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                } else {
                    vals.iter().sum::<f64>() / (p.kernel.0 * p.kernel.1) as f64
                });
            }
        }
    }
    y
}

/// The server's weights encoded in the activation format: kernels and dense weights with s
/// fraction bits, biases with 2s; one entry per layer (`None` for layers without weights).
#[derive(Clone, Debug)]
pub struct Quantized {
    format: FixedPoint,
    layers: Vec<Option<LayerWeights>>,
}

/// The encoded weights of one layer.
#[derive(Clone, Debug)]
pub enum LayerWeights {
    /// A convolution's kernel and bias.
    Conv(ConvWeights),
    /// A dense layer's W (outputs × inputs) and b.
    Dense {
        /// W, row-major.
        weights: Vec<u64>,
        /// b (2s fraction bits).
        bias: Vec<u64>,
    },
}

impl Quantized {
    /// Encodes the float weights of `net` (the server's copy) in `format`.
    pub fn new(net: &Network, format: FixedPoint) -> Result<Quantized> {
        let wide = FixedPoint::new(format.ring(), 2 * format.frac_bits())?;
        let enc = |v: &[f32], fp: FixedPoint, node: &str| -> Result<Vec<u64>> {
            v.iter()
                .map(|&x| fp.encode(x as f64))
                .collect::<mpc_core::Result<_>>()
                .map_err(|e| CnnError::Graph {
                    node: node.into(),
                    reason: format!("weights do not fit the format: {e}"),
                })
        };
        let layers = net
            .layers()
            .iter()
            .map(|l| match &l.op {
                Op::Conv(c) => Ok(Some(LayerWeights::Conv(ConvWeights::new(
                    c.shape,
                    enc(&c.kernel, format, &l.name)?,
                    enc(&c.bias, wide, &l.name)?,
                )?))),
                Op::Dense(d) => Ok(Some(LayerWeights::Dense {
                    weights: enc(&d.weights, format, &l.name)?,
                    bias: enc(&d.bias, wide, &l.name)?,
                })),
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        Ok(Quantized { format, layers })
    }

    /// The activation format.
    pub fn format(&self) -> FixedPoint {
        self.format
    }

    /// The weights of layer `i`.
    pub fn layer(&self, i: usize) -> Option<&LayerWeights> {
        self.layers.get(i).and_then(Option::as_ref)
    }
}

/// The fraction bits of value `v`: s, or 2s for the output of a dense layer that is the
/// network's output (its logits are revealed without a truncation).
pub fn value_frac_bits(net: &Network, v: ValueId, format: FixedPoint) -> u32 {
    match v.checked_sub(1).map(|i| &net.layers()[i].op) {
        Some(Op::Dense(_)) if v == net.output() => 2 * format.frac_bits(),
        _ => format.frac_bits(),
    }
}

/// The fixed-point mirror of the secure pass on an encoded image: the encoded output.
pub fn fixed_forward(net: &Network, q: &Quantized, x: &[u64]) -> Result<Vec<u64>> {
    let fp = q.format();
    let ring = fp.ring();
    let mut values: Vec<Vec<u64>> = vec![x.to_vec()];
    for (i, layer) in net.layers().iter().enumerate() {
        let a = &values[layer.inputs[0]];
        let y = match (&layer.op, q.layer(i)) {
            (Op::Conv(_), Some(LayerWeights::Conv(w))) => conv2d_mirror(w, a, fp),
            (Op::Relu, _) => relu_mirror(a, ring),
            (Op::Add, _) => a
                .iter()
                .zip(&values[layer.inputs[1]])
                .map(|(&x, &y)| ring.add(x, y))
                .collect(),
            (Op::MaxPool(p), _) => max_pool_mirror(p, a, ring),
            (Op::AvgPool(p), _) => avg_pool_mirror(p, a, fp)?,
            (Op::Flatten, _) => a.clone(),
            (Op::Dense(d), Some(LayerWeights::Dense { weights, bias })) => {
                let y: Vec<u64> = (0..d.outputs)
                    .map(|o| {
                        let row = &weights[o * d.inputs..(o + 1) * d.inputs];
                        let dot = row
                            .iter()
                            .zip(a)
                            .fold(0u64, |s, (&w, &x)| s.wrapping_add(w.wrapping_mul(x)));
                        ring.add(ring.reduce(dot), bias[o])
                    })
                    .collect();
                if i + 1 == net.output() {
                    y
                } else {
                    truncate_mirror(&y, ring, ring, fp.frac_bits())
                }
            }
            _ => {
                return Err(CnnError::Graph {
                    node: layer.name.clone(),
                    reason: "no weights for this layer".into(),
                })
            }
        };
        values.push(y);
    }
    Ok(values.swap_remove(net.output()))
}

/// Encodes an image in `format` (an error names the first value out of range).
pub fn encode_image(x: &[f32], format: FixedPoint) -> Result<Vec<u64>> {
    Ok(x.iter()
        .map(|&v| format.encode(v as f64))
        .collect::<mpc_core::Result<_>>()?)
}

/// Decodes an output with `frac_bits` fraction bits.
pub fn decode_output(y: &[u64], format: FixedPoint, frac_bits: u32) -> Result<Vec<f64>> {
    let fp = FixedPoint::new(format.ring(), frac_bits)?;
    Ok(fp.decode_vec(y))
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}
