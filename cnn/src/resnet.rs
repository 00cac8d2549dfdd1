//! ResNet-18 and ResNet-32 with CIFAR-100 shapes (3 × 32 × 32 input, 100 classes) and
//! deterministic random weights (communication does not depend on the weights).
//!
//! * ResNet-18 (He et al., CIFAR variant): a 3×3 stem to 64 channels, four stages of two
//!   basic blocks (64, 128, 256, 512 channels; strides 1, 2, 2, 2), 1×1 projection shortcuts
//!   where the shape changes, global average pooling over 4×4, a dense layer 512 → 100.
//! * ResNet-32: a 3×3 stem to 16 channels, three stages of five basic blocks (16, 32, 64;
//!   strides 1, 2, 2), 1×1 projection shortcuts where the shape changes (option B), global
//!   average pooling over 8×8, a dense layer 64 → 100.
//!
//! Weights are uniform with variance 1/fan-in, the second convolution of each block scaled by
//! ½, so that activations stay well inside the fixed-point range over the residual stack.
use crate::graph::{Conv, Dense, Layer, Network, Op, ValueId};
use crate::Result;
use nn::conv::ConvShape;
use nn::pool::PoolShape;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

struct Builder {
    net: Network,
    rng: ChaCha20Rng,
    count: usize,
}

impl Builder {
    fn uniform(&mut self, n: usize, bound: f32) -> Vec<f32> {
        (0..n)
            .map(|_| self.rng.random_range(-bound..bound))
            .collect()
    }

    fn push(&mut self, kind: &str, op: Op, inputs: Vec<ValueId>) -> Result<ValueId> {
        self.count += 1;
        let name = format!("{kind}{}", self.count);
        Ok(self.net.push(Layer { name, op, inputs })?.0)
    }

    fn conv(
        &mut self,
        x: ValueId,
        k: usize,
        kernel: usize,
        stride: usize,
        gain: f32,
    ) -> Result<ValueId> {
        let s = self.net.shape(x).to_vec();
        let pad = kernel / 2;
        let shape = ConvShape {
            in_channels: s[0],
            out_channels: k,
            height: s[1],
            width: s[2],
            kernel: (kernel, kernel),
            stride: (stride, stride),
            pads: [pad; 4],
        };
        let bound = gain * (3.0 / shape.patch() as f32).sqrt();
        let kernel = self.uniform(k * shape.patch(), bound);
        let bias = self.uniform(k, 0.05);
        self.push(
            "conv",
            Op::Conv(Conv {
                shape,
                kernel,
                bias,
            }),
            vec![x],
        )
    }

    fn relu(&mut self, x: ValueId) -> Result<ValueId> {
        self.push("relu", Op::Relu, vec![x])
    }

    fn block(&mut self, x: ValueId, k: usize, stride: usize) -> Result<ValueId> {
        let h = self.conv(x, k, 3, stride, 1.0)?;
        let h = self.relu(h)?;
        let h = self.conv(h, k, 3, 1, 0.5)?;
        let short = if stride != 1 || self.net.shape(x)[0] != k {
            self.conv(x, k, 1, stride, 1.0)?
        } else {
            x
        };
        let y = self.push("add", Op::Add, vec![h, short])?;
        self.relu(y)
    }

    fn head(mut self, x: ValueId, classes: usize) -> Result<Network> {
        let s = self.net.shape(x).to_vec();
        let g = self.push(
            "gap",
            Op::AvgPool(PoolShape::global(s[0], s[1], s[2])),
            vec![x],
        )?;
        let f = self.push("flatten", Op::Flatten, vec![g])?;
        let bound = (3.0 / s[0] as f32).sqrt();
        let dense = Dense {
            inputs: s[0],
            outputs: classes,
            weights: self.uniform(classes * s[0], bound),
            bias: self.uniform(classes, 0.05),
        };
        self.push("fc", Op::Dense(dense), vec![f])?;
        Ok(self.net)
    }
}

fn resnet(name: &str, seed: u64, stem: usize, stages: &[(usize, usize, usize)]) -> Result<Network> {
    let mut b = Builder {
        net: Network::new(name, [3, 32, 32])?,
        rng: ChaCha20Rng::seed_from_u64(seed),
        count: 0,
    };
    let x = b.conv(0, stem, 3, 1, 1.0)?;
    let mut x = b.relu(x)?;
    for &(k, stride, blocks) in stages {
        for i in 0..blocks {
            x = b.block(x, k, if i == 0 { stride } else { 1 })?;
        }
    }
    b.head(x, 100)
}

/// ResNet-18 for CIFAR-100 with weights drawn from `seed`.
pub fn resnet18_cifar100(seed: u64) -> Result<Network> {
    resnet(
        "resnet18",
        seed,
        64,
        &[(64, 1, 2), (128, 2, 2), (256, 2, 2), (512, 2, 2)],
    )
}

/// ResNet-32 for CIFAR-100 with weights drawn from `seed`.
pub fn resnet32_cifar100(seed: u64) -> Result<Network> {
    resnet("resnet32", seed, 16, &[(16, 1, 5), (32, 2, 5), (64, 2, 5)])
}
