//! Accounting labels, defined once: every producer scopes its work under these names and the
//! bench groups its tables by them. A label inside a layer is `layerNN/<component>`.

/// A component of a Transformer-style model whose traffic and time are reported separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    /// The embedding lookup (and its LayerNorm, where the family has one).
    Embedding,
    /// The fused Q, K, V projection (with the residual branch where the LayerNorm is folded).
    LinearQkv,
    /// Attention's output projection.
    LinearO,
    /// The FFN's first projection (up, or gate and up).
    LinearH1,
    /// The FFN's second projection (down).
    LinearH2,
    /// Rotary positions on the queries and keys (decoders).
    Rotary,
    /// Q·Kᵀ per head.
    AttentionQk,
    /// Softmax up to its normalisation (max, exp, reciprocal).
    AttentionSoftmax,
    /// E·V per head.
    AttentionPv,
    /// The normalisation diag(r)·(E·V).
    AttentionNormalize,
    /// The normalisation after attention (LayerNorm or RMSNorm).
    NormAttention,
    /// The normalisation after the FFN (or before it, in pre-norm models).
    NormFfn,
    /// The FFN's activation (GELU, SiLU·gate).
    Activation,
    /// The output head (logits, pooling, argmax).
    Head,
    /// One-time setup (keys, encrypted weights).
    Setup,
    /// The input-independent offline phase of one inference (`crate::linear_offline`).
    Offline,
}

impl Component {
    /// Every component, in the order of a layer's dataflow.
    pub const ALL: [Component; 16] = [
        Component::Setup,
        Component::Offline,
        Component::Embedding,
        Component::LinearQkv,
        Component::Rotary,
        Component::AttentionQk,
        Component::AttentionSoftmax,
        Component::AttentionPv,
        Component::AttentionNormalize,
        Component::LinearO,
        Component::NormAttention,
        Component::LinearH1,
        Component::Activation,
        Component::LinearH2,
        Component::NormFfn,
        Component::Head,
    ];

    /// The label under which the component's traffic is recorded.
    pub const fn label(self) -> &'static str {
        match self {
            Component::Embedding => "embedding",
            Component::LinearQkv => "linear_qkv",
            Component::LinearO => "linear_o",
            Component::LinearH1 => "linear_h1",
            Component::LinearH2 => "linear_h2",
            Component::Rotary => "rotary",
            Component::AttentionQk => "attention/qk",
            Component::AttentionSoftmax => "attention/softmax",
            Component::AttentionPv => "attention/pv",
            Component::AttentionNormalize => "attention/normalize",
            Component::NormAttention => "norm_attention",
            Component::NormFfn => "norm_ffn",
            Component::Activation => "activation",
            Component::Head => "head",
            Component::Setup => "setup",
            Component::Offline => "offline",
        }
    }

    /// The component's label inside layer `layer`: `layerNN/<label>`.
    pub fn in_layer(self, layer: usize) -> String {
        format!("{}/{}", layer_prefix(layer), self.label())
    }
}

/// An operation of a convolutional network whose traffic and time are reported per layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CnnOp {
    /// A convolution (its product and truncation).
    Conv,
    /// ReLU.
    Relu,
    /// Max pooling (comparison tree).
    MaxPool,
    /// Average pooling (sum and division).
    AvgPool,
    /// A residual addition (local).
    Add,
    /// The dense layer (Gemm / MatMul).
    Dense,
    /// Reshapes (Flatten; local).
    Flatten,
    /// The output's reveal to the client.
    Reveal,
}

impl CnnOp {
    /// Every operation.
    pub const ALL: [CnnOp; 8] = [
        CnnOp::Conv,
        CnnOp::Relu,
        CnnOp::MaxPool,
        CnnOp::AvgPool,
        CnnOp::Add,
        CnnOp::Dense,
        CnnOp::Flatten,
        CnnOp::Reveal,
    ];

    /// The operation's name, also its label.
    pub const fn label(self) -> &'static str {
        match self {
            CnnOp::Conv => "conv",
            CnnOp::Relu => "relu",
            CnnOp::MaxPool => "maxpool",
            CnnOp::AvgPool => "avgpool",
            CnnOp::Add => "add",
            CnnOp::Dense => "dense",
            CnnOp::Flatten => "flatten",
            CnnOp::Reveal => "reveal",
        }
    }

    /// The label of the operation as layer `layer` of a network: `layerNN/<op>`.
    pub fn in_layer(self, layer: usize) -> String {
        format!("{}/{}", layer_prefix(layer), self.label())
    }
}

/// `layerNN`, the prefix of every label of layer `layer`.
pub fn layer_prefix(layer: usize) -> String {
    format!("layer{layer:02}")
}

/// The layer of a label `layerNN/...`, if it is one.
pub fn layer_of(label: &str) -> Option<(usize, &str)> {
    let rest = label.strip_prefix("layer")?;
    let (num, tail) = rest.split_once('/')?;
    Some((num.parse().ok()?, tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_parse_back() {
        let labels: std::collections::HashSet<_> =
            Component::ALL.iter().map(|c| c.label()).collect();
        assert_eq!(labels.len(), Component::ALL.len());
        let l = Component::NormFfn.in_layer(7);
        assert_eq!(l, "layer07/norm_ffn");
        assert_eq!(layer_of(&l), Some((7, "norm_ffn")));
        assert_eq!(layer_of("head"), None);
        let ops: std::collections::HashSet<_> = CnnOp::ALL.iter().map(|c| c.label()).collect();
        assert_eq!(ops.len(), CnnOp::ALL.len());
        assert_eq!(layer_of(&CnnOp::Conv.in_layer(3)), Some((3, "conv")));
    }
}
