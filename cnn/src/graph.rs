//! The network as both parties see it: layers in dataflow order over values (value 0 is the
//! image, value i + 1 the output of layer i), each value's shape (C × H × W or a flat vector),
//! and on the server the float weights (BatchNormalization already folded into its Conv).
use crate::{CnnError, Result};
use nn::conv::ConvShape;
use nn::pool::PoolShape;
use nn::CnnOp;

/// The index of a value (0: the input image; i + 1: the output of layer i).
pub type ValueId = usize;

/// A convolution with its float kernel (K × C × kh × kw) and bias (K).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    /// The geometry.
    pub shape: ConvShape,
    /// The kernel, row-major (empty in the client's copy).
    pub kernel: Vec<f32>,
    /// The bias (empty in the client's copy).
    pub bias: Vec<f32>,
}

/// A dense layer y = W·x + b with W outputs × inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// Input length.
    pub inputs: usize,
    /// Output length.
    pub outputs: usize,
    /// W, row-major outputs × inputs (empty in the client's copy).
    pub weights: Vec<f32>,
    /// b (empty in the client's copy).
    pub bias: Vec<f32>,
}

/// A layer's operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// 2-D convolution (bias and folded BatchNormalization included).
    Conv(Conv),
    /// max(x, 0).
    Relu,
    /// The sum of its two inputs (a residual connection).
    Add,
    /// Max pooling.
    MaxPool(PoolShape),
    /// Average pooling (global average pooling is the whole-map window).
    AvgPool(PoolShape),
    /// C × H × W → a vector.
    Flatten,
    /// Gemm / MatMul with a constant weight matrix.
    Dense(Dense),
}

impl Op {
    /// The accounting label of the operation.
    pub fn kind(&self) -> CnnOp {
        match self {
            Op::Conv(_) => CnnOp::Conv,
            Op::Relu => CnnOp::Relu,
            Op::Add => CnnOp::Add,
            Op::MaxPool(_) => CnnOp::MaxPool,
            Op::AvgPool(_) => CnnOp::AvgPool,
            Op::Flatten => CnnOp::Flatten,
            Op::Dense(_) => CnnOp::Dense,
        }
    }
}

/// One layer: a name (the ONNX node's), its operation and its input values.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// The node name (errors and tables).
    pub name: String,
    /// The operation.
    pub op: Op,
    /// Input values (one, two for Add).
    pub inputs: Vec<ValueId>,
}

/// A CNN for one image.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    input_name: String,
    layers: Vec<Layer>,
    shapes: Vec<Vec<usize>>,
    output: ValueId,
}

/// Largest number of layers accepted.
const MAX_LAYERS: usize = 10_000;

impl Network {
    /// An empty network on an image of `shape` (C, H, W).
    pub fn new(input_name: &str, shape: [usize; 3]) -> Result<Network> {
        if shape.contains(&0) || shape.iter().product::<usize>() > nn::conv::MAX_ELEMENTS {
            return Err(CnnError::Graph {
                node: input_name.into(),
                reason: format!("input shape {shape:?}"),
            });
        }
        Ok(Network {
            input_name: input_name.into(),
            layers: Vec::new(),
            shapes: vec![shape.to_vec()],
            output: 0,
        })
    }

    /// The input value.
    pub fn input(&self) -> ValueId {
        0
    }

    /// The input's name.
    pub fn input_name(&self) -> &str {
        &self.input_name
    }

    /// The input's (C, H, W).
    pub fn input_shape(&self) -> &[usize] {
        &self.shapes[0]
    }

    /// The layers in dataflow order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The shape of value `v`.
    pub fn shape(&self, v: ValueId) -> &[usize] {
        &self.shapes[v]
    }

    /// The output value.
    pub fn output(&self) -> ValueId {
        self.output
    }

    /// Number of classes (the output's length).
    pub fn classes(&self) -> usize {
        self.shapes[self.output].iter().product()
    }

    /// Appends a layer after checking its inputs and shapes; returns its output value and shape.
    pub fn push(&mut self, layer: Layer) -> Result<(ValueId, Vec<usize>)> {
        let err = |reason: String| CnnError::Graph {
            node: layer.name.clone(),
            reason,
        };
        if self.layers.len() >= MAX_LAYERS {
            return Err(err(format!("more than {MAX_LAYERS} layers")));
        }
        if let Some(&v) = layer.inputs.iter().find(|&&v| v >= self.shapes.len()) {
            return Err(err(format!("input value {v} does not exist yet")));
        }
        let arity = if layer.op == Op::Add { 2 } else { 1 };
        if layer.inputs.len() != arity {
            return Err(err(format!(
                "{} inputs, expected {arity}",
                layer.inputs.len()
            )));
        }
        let x = &self.shapes[layer.inputs[0]];
        let map = |c: usize, h: usize, w: usize| vec![c, h, w];
        let out = match &layer.op {
            Op::Conv(c) => {
                if x[..] != c.shape.input_shape().dims()[..] {
                    return Err(err(format!("input {x:?} for {:?}", c.shape)));
                }
                c.shape.output_shape().dims().to_vec()
            }
            Op::Relu => x.clone(),
            Op::Add => {
                let y = &self.shapes[layer.inputs[1]];
                if x != y {
                    return Err(err(format!("adding shapes {x:?} and {y:?}")));
                }
                x.clone()
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                if x[..] != p.input_shape().dims()[..] {
                    return Err(err(format!("input {x:?} for {p:?}")));
                }
                map(p.channels, p.out_height(), p.out_width())
            }
            Op::Flatten => vec![x.iter().product()],
            Op::Dense(d) => {
                if x[..] != [d.inputs] {
                    return Err(err(format!("input {x:?} for {} inputs", d.inputs)));
                }
                vec![d.outputs]
            }
        };
        self.layers.push(layer);
        self.shapes.push(out.clone());
        self.output = self.shapes.len() - 1;
        Ok((self.output, out))
    }

    /// Sets the output value.
    pub fn set_output(&mut self, v: ValueId) -> Result<()> {
        if v >= self.shapes.len() {
            return Err(CnnError::Graph {
                node: "graph output".into(),
                reason: format!("value {v} does not exist"),
            });
        }
        self.output = v;
        Ok(())
    }

    /// Folds y = γ·(x − μ)/√(σ² + ε) + β into the convolution that produced `x` (which no other
    /// layer may read yet); `node` names the BatchNormalization in errors.
    pub fn fold_batch_norm(
        &mut self,
        x: ValueId,
        node: &str,
        gamma: &[f32],
        beta: &[f32],
        mean: &[f32],
        var: &[f32],
        eps: f32,
    ) -> Result<()> {
        let err = |reason: String| CnnError::Graph {
            node: node.into(),
            reason,
        };
        if self.layers.iter().any(|l| l.inputs.contains(&x)) {
            return Err(err("its input is also read by another layer".into()));
        }
        let Some(Layer {
            op: Op::Conv(conv), ..
        }) = x.checked_sub(1).and_then(|i| self.layers.get_mut(i))
        else {
            return Err(err(
                "BatchNormalization is supported only right after a Conv".into(),
            ));
        };
        let k = conv.shape.out_channels;
        if [gamma, beta, mean, var].iter().any(|p| p.len() != k) {
            return Err(err(format!("parameters not of length {k}")));
        }
        let patch = conv.shape.patch();
        for c in 0..k {
            let scale = gamma[c] as f64 / (var[c] as f64 + eps as f64).sqrt();
            conv.kernel[c * patch..(c + 1) * patch]
                .iter_mut()
                .for_each(|w| *w = (*w as f64 * scale) as f32);
            conv.bias[c] = ((conv.bias[c] as f64 - mean[c] as f64) * scale + beta[c] as f64) as f32;
        }
        Ok(())
    }

    /// The client's copy: the same layers without weights.
    pub fn public(&self) -> Network {
        let mut net = self.clone();
        for l in &mut net.layers {
            match &mut l.op {
                Op::Conv(c) => {
                    c.kernel = Vec::new();
                    c.bias = Vec::new();
                }
                Op::Dense(d) => {
                    d.weights = Vec::new();
                    d.bias = Vec::new();
                }
                _ => {}
            }
        }
        net
    }
}
