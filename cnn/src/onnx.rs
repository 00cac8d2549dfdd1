//! ONNX loading: the protobuf messages this crate reads (a subset of `onnx.proto3`, field
//! numbers as in the standard, decoded by `prost`), and their translation into a [`Network`]:
//! one image (N = 1), NCHW, the ops Conv (groups = 1, dilations 1), BatchNormalization (folded
//! into the Conv before it), Relu, Add, MaxPool, AveragePool, GlobalAveragePool, Flatten,
//! Gemm and MatMul. Anything else, or an attribute this crate does not implement, is an error
//! naming the node.
use crate::graph::{Conv, Dense, Layer, Network, Op, ValueId};
use crate::{CnnError, Result};
use nn::conv::ConvShape;
use nn::pool::PoolShape;
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

/// `ModelProto` (fields read: graph).
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

/// `GraphProto`.
#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}

/// `NodeProto`.
#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}

/// `AttributeProto` (scalar, ints and floats kinds).
#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(float, tag = "2")]
    f: f32,
    #[prost(int64, tag = "3")]
    i: i64,
    #[prost(bytes = "vec", tag = "4")]
    s: Vec<u8>,
    #[prost(int64, repeated, tag = "8")]
    ints: Vec<i64>,
}

/// `TensorProto` (float tensors: `float_data` or `raw_data`).
#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
    #[prost(string, tag = "8")]
    name: String,
    #[prost(bytes = "vec", tag = "9")]
    raw_data: Vec<u8>,
}

/// `ValueInfoProto`.
#[derive(Clone, PartialEq, Message)]
struct ValueInfoProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}

/// `TypeProto` (tensor types only).
#[derive(Clone, PartialEq, Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TensorTypeProto>,
}

/// `TypeProto.Tensor`.
#[derive(Clone, PartialEq, Message)]
struct TensorTypeProto {
    #[prost(int32, tag = "1")]
    elem_type: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
}

/// `TensorShapeProto`.
#[derive(Clone, PartialEq, Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<Dimension>,
}

/// `TensorShapeProto.Dimension` (a value or a symbolic name).
#[derive(Clone, PartialEq, Message)]
struct Dimension {
    #[prost(int64, tag = "1")]
    dim_value: i64,
    #[prost(string, tag = "2")]
    dim_param: String,
}

/// ONNX's FLOAT element type.
const FLOAT: i32 = 1;
/// Largest initializer this loader accepts (elements).
const MAX_TENSOR: usize = 1 << 28;

/// A float tensor: dimensions and values.
#[derive(Clone, Debug)]
struct Tensor {
    dims: Vec<usize>,
    data: Vec<f32>,
}

fn tensor(t: &TensorProto, file: &str) -> Result<Tensor> {
    let bad = |reason: String| CnnError::Onnx {
        file: file.into(),
        reason: format!("initializer `{}`: {reason}", t.name),
    };
    if t.data_type != FLOAT {
        return Err(bad(format!("element type {} (only FLOAT)", t.data_type)));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("dimension {d}"))))
        .collect::<Result<_>>()?;
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| {
            a.checked_mul(d).filter(|&v| v <= MAX_TENSOR)
        })
        .ok_or_else(|| bad(format!("dimensions {dims:?} too large")))?;
    let data = if !t.raw_data.is_empty() {
        if t.raw_data.len() != 4 * n {
            return Err(bad(format!(
                "{} raw bytes for {n} floats",
                t.raw_data.len()
            )));
        }
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        if t.float_data.len() != n {
            return Err(bad(format!("{} floats for {n}", t.float_data.len())));
        }
        t.float_data.clone()
    };
    Ok(Tensor { dims, data })
}

/// A node's attributes, each to be taken once; leftovers are errors.
struct Attributes<'a> {
    node: &'a str,
    map: HashMap<&'a str, &'a AttributeProto>,
}

impl<'a> Attributes<'a> {
    fn new(node: &'a NodeProto, name: &'a str) -> Self {
        Attributes {
            node: name,
            map: node
                .attribute
                .iter()
                .map(|a| (a.name.as_str(), a))
                .collect(),
        }
    }

    fn bad(&self, attr: &str, reason: String) -> CnnError {
        CnnError::Attribute {
            node: self.node.into(),
            attribute: attr.into(),
            reason,
        }
    }

    fn ints(&mut self, name: &str) -> Result<Option<Vec<usize>>> {
        match self.map.remove(name) {
            None => Ok(None),
            Some(a) => a
                .ints
                .iter()
                .map(|&v| usize::try_from(v).map_err(|_| self.bad(name, format!("value {v}"))))
                .collect::<Result<Vec<_>>>()
                .map(Some),
        }
    }

    fn int(&mut self, name: &str, default: i64) -> i64 {
        self.map.remove(name).map_or(default, |a| a.i)
    }

    fn float(&mut self, name: &str, default: f32) -> f32 {
        self.map.remove(name).map_or(default, |a| a.f)
    }

    /// `auto_pad`: only NOTSET (explicit pads) is implemented.
    fn no_auto_pad(&mut self) -> Result<()> {
        match self.map.remove("auto_pad") {
            Some(a) if a.s != b"NOTSET" => Err(self.bad(
                "auto_pad",
                format!("{} (only NOTSET)", String::from_utf8_lossy(&a.s)),
            )),
            _ => Ok(()),
        }
    }

    fn expect_int(&mut self, name: &str, default: i64, allowed: &[i64]) -> Result<()> {
        let v = self.int(name, default);
        if allowed.contains(&v) {
            Ok(())
        } else {
            Err(self.bad(name, format!("{v} (supported: {allowed:?})")))
        }
    }

    fn expect_float(&mut self, name: &str, want: f32) -> Result<()> {
        let v = self.float(name, want);
        if v == want {
            Ok(())
        } else {
            Err(self.bad(name, format!("{v} (supported: {want})")))
        }
    }

    fn pair(&mut self, name: &str, default: (usize, usize)) -> Result<(usize, usize)> {
        match self.ints(name)? {
            None => Ok(default),
            Some(v) if v.len() == 2 => Ok((v[0], v[1])),
            Some(v) => Err(self.bad(name, format!("{v:?} (two values for 2-D)"))),
        }
    }

    fn pads(&mut self) -> Result<[usize; 4]> {
        match self.ints("pads")? {
            None => Ok([0; 4]),
            // ONNX order: [top, left, bottom, right] for 2-D (x1_begin, x2_begin, x1_end, x2_end).
            Some(v) if v.len() == 4 => Ok([v[0], v[1], v[2], v[3]]),
            Some(v) => Err(self.bad("pads", format!("{v:?} (four values for 2-D)"))),
        }
    }

    fn ones(&mut self, name: &str) -> Result<()> {
        match self.ints(name)? {
            Some(v) if v.iter().any(|&d| d != 1) => Err(self.bad(name, format!("{v:?} (only 1)"))),
            _ => Ok(()),
        }
    }

    fn finish(self) -> Result<()> {
        match self.map.keys().next() {
            Some(name) => Err(self.bad(name, "not supported by this loader".into())),
            None => Ok(()),
        }
    }
}

/// Loads an ONNX CNN from `path`.
pub fn load(path: &Path) -> Result<Network> {
    let bytes = std::fs::read(path).map_err(|e| CnnError::Io {
        file: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse(&bytes, &path.display().to_string())
}

/// Parses ONNX bytes; `file` names them in errors.
pub fn parse(bytes: &[u8], file: &str) -> Result<Network> {
    let model = ModelProto::decode(bytes).map_err(|e| CnnError::Onnx {
        file: file.into(),
        reason: format!("not a valid ONNX protobuf (truncated or corrupt?): {e}"),
    })?;
    let graph = model.graph.ok_or_else(|| CnnError::Onnx {
        file: file.into(),
        reason: "no graph".into(),
    })?;
    Builder::new(&graph, file)?.build(&graph)
}

/// Translates nodes into layers, tracking each value's shape.
struct Builder<'a> {
    file: &'a str,
    inits: HashMap<&'a str, Tensor>,
    values: HashMap<String, (ValueId, Vec<usize>)>,
    net: Network,
}

impl<'a> Builder<'a> {
    fn new(graph: &'a GraphProto, file: &'a str) -> Result<Self> {
        let inits = graph
            .initializer
            .iter()
            .map(|t| Ok((t.name.as_str(), tensor(t, file)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let onnx_err = |reason: String| CnnError::Onnx {
            file: file.into(),
            reason,
        };
        let inputs: Vec<&ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !inits.contains_key(i.name.as_str()))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(onnx_err(format!(
                "{} graph inputs (one image input expected)",
                inputs.len()
            )));
        };
        let dims: Vec<i64> = input
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .and_then(|t| t.shape.as_ref())
            .map(|s| s.dim.iter().map(|d| d.dim_value).collect())
            .unwrap_or_default();
        let shape = match dims.as_slice() {
            [_, c, h, w] if *c > 0 && *h > 0 && *w > 0 => [*c as usize, *h as usize, *w as usize],
            _ => {
                return Err(onnx_err(format!(
                    "input `{}` has shape {dims:?}, expected [N, C, H, W]",
                    input.name
                )))
            }
        };
        let net = Network::new(&input.name, shape)?;
        let mut values = HashMap::new();
        values.insert(input.name.clone(), (net.input(), shape.to_vec()));
        Ok(Builder {
            file,
            inits,
            values,
            net,
        })
    }

    fn build(mut self, graph: &GraphProto) -> Result<Network> {
        for (i, node) in graph.node.iter().enumerate() {
            // Unnamed nodes (common in exporters) go by their first output.
            let name = match (node.name.is_empty(), node.output.first()) {
                (false, _) => node.name.clone(),
                (true, Some(out)) if !out.is_empty() => out.clone(),
                _ => format!("#{i} ({})", node.op_type),
            };
            self.node(node, &name)?;
        }
        let out = graph.output.first().ok_or_else(|| CnnError::Onnx {
            file: self.file.into(),
            reason: "no graph output".into(),
        })?;
        let (id, _) = self.value(&out.name, "graph output")?;
        self.net.set_output(id)?;
        Ok(self.net)
    }

    fn value(&self, name: &str, node: &str) -> Result<(ValueId, Vec<usize>)> {
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| CnnError::Graph {
                node: node.into(),
                reason: format!("input `{name}` is not computed by an earlier node"),
            })
    }

    fn init(&self, node: &str, names: &[String], i: usize, what: &str) -> Result<&Tensor> {
        names
            .get(i)
            .and_then(|n| self.inits.get(n.as_str()))
            .ok_or_else(|| CnnError::Graph {
                node: node.into(),
                reason: format!("input {i} ({what}) must be an initializer"),
            })
    }

    fn push(&mut self, node: &NodeProto, name: &str, op: Op, inputs: Vec<ValueId>) -> Result<()> {
        let out = node.output.first().ok_or_else(|| CnnError::Graph {
            node: name.into(),
            reason: "no output".into(),
        })?;
        let (id, shape) = self.net.push(Layer {
            name: name.into(),
            op,
            inputs,
        })?;
        self.values.insert(out.clone(), (id, shape));
        Ok(())
    }

    fn node(&mut self, node: &NodeProto, name: &str) -> Result<()> {
        let mut attrs = Attributes::new(node, name);
        let graph_err = |reason: String| CnnError::Graph {
            node: name.into(),
            reason,
        };
        let first = node
            .input
            .first()
            .ok_or_else(|| graph_err("no input".into()))?;
        match node.op_type.as_str() {
            "Conv" => {
                let (x, shape) = self.value(first, name)?;
                let w = self.init(name, &node.input, 1, "weights")?;
                let [k, c, kh, kw] = w.dims[..] else {
                    return Err(graph_err(format!("weights of shape {:?}", w.dims)));
                };
                let kernel = attrs.pair("kernel_shape", (kh, kw))?;
                attrs.expect_int("group", 1, &[1])?;
                attrs.ones("dilations")?;
                attrs.no_auto_pad()?;
                let stride = attrs.pair("strides", (1, 1))?;
                let pads = attrs.pads()?;
                attrs.finish()?;
                if kernel != (kh, kw) || shape.len() != 3 || shape[0] != c {
                    return Err(graph_err(format!(
                        "weights {:?} do not fit input {shape:?}",
                        w.dims
                    )));
                }
                let bias = match node.input.get(2) {
                    Some(_) => self.init(name, &node.input, 2, "bias")?.data.clone(),
                    None => vec![0.0; k],
                };
                if bias.len() != k {
                    return Err(graph_err(format!("{} biases for {k} channels", bias.len())));
                }
                let shape = ConvShape {
                    in_channels: c,
                    out_channels: k,
                    height: shape[1],
                    width: shape[2],
                    kernel,
                    stride,
                    pads,
                };
                shape.validate().map_err(|e| graph_err(e.to_string()))?;
                let conv = Conv {
                    shape,
                    kernel: w.data.clone(),
                    bias,
                };
                self.push(node, name, Op::Conv(conv), vec![x])
            }
            "BatchNormalization" => {
                let (x, _) = self.value(first, name)?;
                let eps = attrs.float("epsilon", 1e-5);
                attrs.float("momentum", 0.9);
                attrs.expect_int("training_mode", 0, &[0])?;
                attrs.finish()?;
                let p: Vec<Vec<f32>> = (1..5)
                    .map(|i| Ok(self.init(name, &node.input, i, "parameter")?.data.clone()))
                    .collect::<Result<_>>()?;
                self.net
                    .fold_batch_norm(x, name, &p[0], &p[1], &p[2], &p[3], eps)?;
                let out = node
                    .output
                    .first()
                    .ok_or_else(|| graph_err("no output".into()))?;
                let v = self.value(first, name)?;
                self.values.insert(out.clone(), v);
                Ok(())
            }
            "Relu" => {
                attrs.finish()?;
                let (x, _) = self.value(first, name)?;
                self.push(node, name, Op::Relu, vec![x])
            }
            "Add" => {
                attrs.finish()?;
                let (a, _) = self.value(first, name)?;
                let second = node
                    .input
                    .get(1)
                    .ok_or_else(|| graph_err("one input".into()))?;
                let (b, _) = self.value(second, name)?;
                self.push(node, name, Op::Add, vec![a, b])
            }
            "MaxPool" | "AveragePool" => {
                let (x, shape) = self.value(first, name)?;
                let kernel = attrs.pair("kernel_shape", (0, 0))?;
                attrs.no_auto_pad()?;
                attrs.expect_int("ceil_mode", 0, &[0])?;
                attrs.ones("dilations")?;
                let max = node.op_type == "MaxPool";
                if max {
                    attrs.expect_int("storage_order", 0, &[0])?;
                } else {
                    attrs.int("count_include_pad", 0);
                }
                let stride = attrs.pair("strides", (1, 1))?;
                let pads = attrs.pads()?;
                attrs.finish()?;
                let [c, h, w] = shape[..] else {
                    return Err(graph_err(format!("input of shape {shape:?}")));
                };
                let pool = PoolShape {
                    channels: c,
                    height: h,
                    width: w,
                    kernel,
                    stride,
                    pads,
                };
                pool.validate().map_err(|e| graph_err(e.to_string()))?;
                if !max && pads != [0; 4] {
                    return Err(attrs_err(name, "pads", "average pooling with padding"));
                }
                let op = if max {
                    Op::MaxPool(pool)
                } else {
                    Op::AvgPool(pool)
                };
                self.push(node, name, op, vec![x])
            }
            "GlobalAveragePool" => {
                attrs.finish()?;
                let (x, shape) = self.value(first, name)?;
                let [c, h, w] = shape[..] else {
                    return Err(graph_err(format!("input of shape {shape:?}")));
                };
                self.push(node, name, Op::AvgPool(PoolShape::global(c, h, w)), vec![x])
            }
            "Flatten" => {
                attrs.expect_int("axis", 1, &[1])?;
                attrs.finish()?;
                let (x, _) = self.value(first, name)?;
                self.push(node, name, Op::Flatten, vec![x])
            }
            "Gemm" | "MatMul" => {
                let (x, shape) = self.value(first, name)?;
                let gemm = node.op_type == "Gemm";
                let trans_b = if gemm {
                    attrs.expect_float("alpha", 1.0)?;
                    attrs.expect_float("beta", 1.0)?;
                    attrs.expect_int("transA", 0, &[0])?;
                    attrs.int("transB", 0)
                } else {
                    0
                };
                attrs.finish()?;
                if !(0..=1).contains(&trans_b) {
                    return Err(attrs_err(name, "transB", "not 0 or 1"));
                }
                let w = self.init(name, &node.input, 1, "weights")?;
                let [a, b] = w.dims[..] else {
                    return Err(graph_err(format!("weights of shape {:?}", w.dims)));
                };
                let (outputs, inputs) = if trans_b == 1 { (a, b) } else { (b, a) };
                if shape != [inputs] {
                    return Err(graph_err(format!(
                        "input of shape {shape:?} for {inputs} weights rows"
                    )));
                }
                // Row-major outputs × inputs.
                let weights: Vec<f32> = if trans_b == 1 {
                    w.data.clone()
                } else {
                    (0..outputs)
                        .flat_map(|o| (0..inputs).map(move |i| (o, i)))
                        .map(|(o, i)| w.data[i * outputs + o])
                        .collect()
                };
                let bias = match node.input.get(2).filter(|_| gemm) {
                    Some(_) => self.init(name, &node.input, 2, "bias")?.data.clone(),
                    None => vec![0.0; outputs],
                };
                if bias.len() != outputs {
                    return Err(graph_err(format!("{} biases for {outputs}", bias.len())));
                }
                let dense = Dense {
                    inputs,
                    outputs,
                    weights,
                    bias,
                };
                self.push(node, name, Op::Dense(dense), vec![x])
            }
            other => Err(CnnError::UnsupportedOp {
                node: name.into(),
                op: other.into(),
            }),
        }
    }
}

fn attrs_err(node: &str, attribute: &str, reason: &str) -> CnnError {
    CnnError::Attribute {
        node: node.into(),
        attribute: attribute.into(),
        reason: reason.into(),
    }
}
