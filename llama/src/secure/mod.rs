//! Secure two-party text generation with a LLaMA-family decoder (PUMA's setting with two
//! parties): the server holds the model, the client its prompt; the client alone learns the
//! generated token ids, the server learns nothing but the number of positions of each call.
//!
//! Roles: [`Server`] (the weights in the clear, its HE key) and [`Client`] (the prompt, its HE
//! key, the server's encrypted embedding table in its cache). Both run the same sequence of
//! `nn` operators on a [`Session`](ot_nonlinear::mpc::Session), each on its own shares.
//!
//! **Setup** (once): the server sends the redacted description ([`public`]), the parties swap
//! public and Galois keys, and the server sends its encrypted embedding table (the client
//! caches it, ≈ 1.6 GB for SmolLM2-135M). No projection weight is sent: every projection runs
//! on the server-side inner product ([`nn::sip_linear`]), whose encoded blocks stay in the
//! server's memory.
//!
//! **Offline / online** ([`offline`]): the projections' and the head's SIP can run before the
//! prompt exists, on the client's random R, for a plan of calls; the online calls then send
//! X_c − R and run no HE in their linear layers ([`nn::sip_offline`]).
//!
//! **A call** (the prompt's T rows, then one row per generated token), all values shared over
//! Z_2^64 with 18 fraction bits:
//! * the client announces T (one word, merged with its next flight);
//! * embedding: the private lookup of the client's ids ([`nn::embedding`]);
//! * per block: RMSNorm (OT), [Q|K|V] (SIP, γ and 1/√d folded), rotary on [Q|K] at the public
//!   positions ([`nn::rotary`]), the new keys and values appended to the cache of shares
//!   ([`nn::kv_cache`]), grouped-query attention under the causal mask over the cache
//!   ([`nn::attention`]), output projection (SIP), residual; RMSNorm, [gate|up] (SIP), SiLU
//!   fitted for the layer ([`crate::calibrate`], OT) times up ([`nn::product`]), down (SIP),
//!   residual;
//! * head: RMSNorm of the last row, the tied head (SIP, 49 152 outputs for SmolLM2), argmax
//!   revealed to the client only ([`nn::argmax`]). The client then embeds that id privately
//!   in the next call.
//!
//! The mirror is [`crate::fixed_model::FixedDecoder`]; the secure run equals it up to the
//! truncation carries (a few units of 2^-18 per operator) and the RMSNorm's uncentred
//! carries, which can move a comparison; token ids agree unless two logits nearly tie.
//! Exact costs: [`cost`].
//!
//! ```
//! use llama::calibrate::NormShifts;
//! use llama::fixed_model::{FixedDecoder, FixedLlama};
//! use llama::secure::{Client, Server};
//! use llama::synthetic::{write_random_model, SyntheticSpec};
//! use llama::Model;
//! use mpc_core::{Channel, Party, Seed};
//! use ot_nonlinear::mpc::Session;
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("tiny.gguf");
//! write_random_model(&path, &SyntheticSpec::tiny(), 3)?;
//! let model = Model::load(&path)?;
//! let fixed = FixedLlama::with_default_set(&model)?;
//! let prompt = model.tokenizer.encode("hi")?;
//! let want = FixedDecoder::new(&fixed).generate_greedy(&prompt, 2)?;
//! let (cs, cc) = Channel::mem_pair();
//! let mut server = Server::new(&fixed, Seed([1; 16]), &|_, _| {})?;
//! let got = std::thread::scope(|scope| -> mpc_core::Result<Vec<u32>> {
//!     scope.spawn(move || -> mpc_core::Result<usize> {
//!         let mut sess = Session::new(cs, Party::Server, Seed([2; 16]))?;
//!         server.setup(&mut sess)?;
//!         server.serve(&mut sess)
//!     });
//!     let mut sess = Session::new(cc, Party::Client, Seed([3; 16]))?;
//!     let client = Client::setup(&mut sess, dir.path())?;
//!     let mut generation = client.generation();
//!     let first = generation.run(&mut sess, &prompt, &|_, _| {})?;
//!     let second = generation.run(&mut sess, &[first], &|_, _| {})?;
//!     generation.finish(&mut sess)?;
//!     Ok(vec![first, second])
//! })?;
//! assert_eq!(got, want);
//! # let _ = NormShifts::none(1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
pub mod client;
pub mod cost;
mod engine;
pub mod offline;
pub mod public;
pub mod server;

pub use client::{Client, Generation};
pub use public::{DecoderShape, PublicLlama};
pub use server::Server;

use engine::Sequence;
use he_linear::params::HeParams;
use mpc_core::{Error, Result};

/// The parameters of the projections (SIP) and of the embedding lookup.
pub(crate) fn he_params() -> Result<HeParams> {
    HeParams::default_params()
}

/// The parameters of attention's secret × secret products (packed outputs).
pub(crate) fn product_params() -> Result<HeParams> {
    HeParams::packed_products()
}

/// Coefficients decrypted under one key in one generation, checked against the parameters'
/// budget ([`HeParams::check_inference_reveals`]) before every call.
#[derive(Debug)]
pub(crate) struct RevealBudget {
    params: HeParams,
    spent: u64,
}

impl RevealBudget {
    pub fn new(params: &HeParams) -> RevealBudget {
        RevealBudget {
            params: params.clone(),
            spent: 0,
        }
    }
}

/// Checks a call of `rows` positions after the sequence's: within the context and within the
/// generation's reveal budget; returns `rows`.
pub(crate) fn check_call(
    public: &PublicLlama,
    seq: &Sequence,
    rows: u64,
    budget: &mut RevealBudget,
) -> Result<usize> {
    let past = seq.positions();
    let context = public.shape.context;
    let rows = usize::try_from(rows)
        .ok()
        .filter(|&r| r >= 1 && r <= context.saturating_sub(past))
        .ok_or_else(|| {
            Error::shape(
                format!("positions of a call after {past} (context {context})"),
                rows.to_string(),
                mpc_core::Dims::within(1, context.saturating_sub(past)),
            )
        })?;
    budget.spent += cost::revealed(&public.shape, rows, past);
    budget
        .params
        .check_inference_reveals(budget.spent, "this generation")?;
    Ok(rows)
}

/// Checks an offline plan's calls (after none) against the context and one generation's
/// reveal budget, as the online calls will be.
pub(crate) fn check_plan_budget(
    public: &PublicLlama,
    params: &HeParams,
    calls: &[usize],
) -> Result<()> {
    let mut budget = RevealBudget::new(params);
    let mut past = 0;
    for &rows in calls {
        budget.spent += cost::revealed(&public.shape, rows, past);
        past += rows;
    }
    budget
        .params
        .check_inference_reveals(budget.spent, "this generation's offline plan")
}
