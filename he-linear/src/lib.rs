//! RLWE over an RNS modulus and the homomorphic matrix-multiplication protocols of secure
//! two-party Transformer inference.
//!
//! * [`cop`]: Nimbus's client-side outer product, Y = X·W with X shared and W the server's
//!   (encrypted weights cached by the client, several rows per ciphertext as [`layout`] packs
//!   them, one flight online).
//! * [`sip`]: the server-side inner-product baseline (Cheetah/BumbleBee style).
//! * [`secret_product`]: X·Y with both operands shared (attention's QKᵀ and P·V).
//! * [`row_products`]: row-scalar products and row sums of squares of shared matrices
//!   (LayerNorm).
//! * [`galois`]: automorphisms, Galois keys and ciphertext packing (compact product outputs).
//! * [`embedding`]: secure lookup of the client's private token ids in the server's private
//!   embedding table.
//!
//! Underneath: [`params`] (the checked parameter builder, refusing anything above the HE-standard
//! modulus for N or failing the noise bound), [`noise`] (every noise formula), [`rns`] / [`poly`]
//! (31-bit NTT primes on `tfhe-ntt`, polynomials that know their representation), [`rlwe`]
//! (ternary keys, seeded and public-key encryption with Δ = q/2^ℓ), [`response`] (circuit privacy:
//! re-randomization, flooding, modulus switching, masking), [`kernel`] (the packed
//! accumulation loop), [`simd`] (the run-time choice of AVX2 / AVX-512 paths, vectorised
//! reductions), [`weight_store`] (the client's on-disk cache).
//!
//! Shares are elements of Z_{2^64} held in `u64`; outputs reconstruct to the exact product.
//!
//! ```
//! use he_linear::{cop, matrix::RingMatrix, params::HeParams};
//! use he_linear::layout::{CopLayout, Packing};
//! use he_linear::response::Window;
//! use he_linear::rlwe::{PublicKey, SecretKey};
//! use mpc_core::{AesPrg, Channel, Seed};
//!
//! let params = HeParams::default_params()?;            // N = 8192, 7 primes, t = 2^64
//! let w = RingMatrix::new(3, 4, (0..12).collect())?;    // the server's weights (m×n)
//! let x = RingMatrix::new(2, 3, vec![1, 2, 3, 4, 5, u64::MAX])?; // the input (k×m), shared:
//! let x_c = RingMatrix::new(2, 3, vec![9, 8, 7, 6, 5, 4])?;
//! let x_s = x.sub(&x_c)?;
//! let full = Window::full(&params);                     // reveal the whole product
//! let want = x.matmul(&w)?;
//! let layout = CopLayout::choose(&params, w.dims(), Packing::Compact)?; // 3 rows per ciphertext
//!
//! let (mut server_ch, mut client_ch) = Channel::mem_pair();
//! let cache = std::env::temp_dir().join(format!("he-linear-doc-{}", std::process::id()));
//! let (sp, w2) = (params.clone(), w.clone());
//! let server = std::thread::spawn(move || -> mpc_core::Result<RingMatrix> {
//!     let mut rng = AesPrg::new(Seed::random());                // the caller's randomness
//!     let sk = SecretKey::generate(&sp, &mut rng);
//!     let pk = PublicKey::generate(&sp, &sk, &mut rng);
//!     pk.send(&mut server_ch, &sp)?;
//!     let setup_seed = Seed::from_rng(&mut rng);
//!     cop::server_setup(&mut server_ch, &sp, &sk, &pk, &layout, &w2, setup_seed)?; // once
//!     cop::server_online(&mut server_ch, &sp, &sk, &layout, &w2, &x_s, full)       // per query
//! });
//! let pk = PublicKey::recv(&mut client_ch, &params)?;
//! let layer = cop::client_setup(&mut client_ch, &params, &cache, "layer0")?.open(&params)?;
//! let query_seed = Seed::random();                               // fresh per query
//! let client_share =
//!     cop::client_online(&mut client_ch, &params, &pk, &layer, &x_c, full, query_seed)?;
//! let server_share = server.join().unwrap()?;
//! assert_eq!(client_share.add(&server_share)?, want);
//! std::fs::remove_dir_all(&cache)?;
//! # Ok::<(), mpc_core::Error>(())
//! ```
#![warn(missing_docs)]

pub mod bits;
pub mod cop;
pub mod embedding;
pub mod galois;
pub mod kernel;
pub mod key_file;
pub mod layout;
pub mod matrix;
pub mod noise;
pub mod params;
pub mod poly;
pub mod response;
pub mod rlwe;
pub mod rns;
pub mod row_products;
pub mod sampling;
pub mod secret_product;
pub mod simd;
pub mod sip;
pub mod weight_store;
