//! Secure training of a logistic-regression model between two data holders, each holding some
//! of the training rows (iDASH 2019 Track IV's setting): mini-batch gradient descent
//! w ← w − (η/B)·Zᵀ·(cw ⊙ (σ̃(Z·w) − y)) on additive shares over Z_2^64, with the feature
//! standardisation and the class weights computed on shares, and only the trained model
//! opened at the end.
//!
//! * [`data`]: the CSV file (clear errors with line numbers) and the imbalanced variant;
//! * [`config`]: holders, row split, schedule, options, the raw-feature model;
//! * [`protocol`]: the training, written once on [`arith::Arith`];
//! * [`arith`]: that arithmetic, and the plaintext twin [`arith::Twin`];
//! * [`secure`]: the two-party evaluator and a holder's whole run;
//! * [`twin`], [`float`]: the twin's run and the f64 reference with the exact sigmoid;
//! * [`metrics`]: accuracy, balanced accuracy, AUC.
//!
//! A short training, twin and f64 side by side:
//!
//! ```
//! use train::config::{ClassWeight, RowSplit, TrainConfig};
//! use train::data::Dataset;
//! use nn::sigmoid::SigmoidApprox;
//!
//! let csv = "split,label,a,b\ntrain,1,2.0,1.0\ntrain,0,-1.0,0.5\ntrain,1,1.5,1.2\n\
//!            train,0,-2.0,0.1\ntest,1,1.8,0.9\ntest,0,-1.5,0.3\n";
//! let data = Dataset::parse(csv).unwrap();
//! let owners = RowSplit::Rows(2).owners(data.train.len())?;
//! let cfg = TrainConfig { epochs: 3, batch: 2, lr: 0.5, class_weight: ClassWeight::Balanced,
//!                         sigmoid: SigmoidApprox::Pl5, shuffle_seed: 1 };
//! let twin = train::twin::train_twin(&data.train, &owners, cfg)?;
//! let float = train::float::train_float(&data.train, &cfg);
//! let (t, f) = (&twin[2], &float[2]);
//! assert!(t.probability(&data.test[0].x) > 0.5 && f.probability(&data.test[0].x) > 0.5);
//! # Ok::<(), mpc_core::Error>(())
//! ```
#![warn(missing_docs)]

pub mod arith;
pub mod config;
pub mod data;
pub mod float;
pub mod metrics;
pub mod protocol;
pub mod secure;
pub mod twin;
