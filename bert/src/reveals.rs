//! How many HE coefficients one secure inference reveals to each key holder, counted from the
//! public plan, and the check that the floods cover them all (`docs/security.md`, "Statistical
//! security per inference").
//!
//! The floods of both parameter sets are sized for one budget of
//! [`HeParams::max_revealed`] coefficients decrypted under one key in one inference
//! (`he_linear::params`); a plan that reveals more would fall below 40 bits of statistical
//! security, so [`check`] refuses it before setup. Per layer, with n tokens, hidden size d,
//! h heads and feed-forward width f:
//!
//! * **server's key** (the client seals, the server decrypts): the COP outputs
//!   n·(4d + d + (d + f) + d) (QKV with the residual block, output projection, FFN up with the
//!   residual block, FFN down); one cross term of every secret × secret product: QKᵀ h·n²,
//!   E·V n·d, the normalisation diag(r)·(E·V) n·d, and LayerNorm's row-scalar product n·d
//!   twice per layer and once for the embedding's (online with packed attention, offline on
//!   random operands with offline material; counted in every mode). Once per inference: the
//!   embedding lookup n·d (private embedding) and the head n·classes.
//! * **client's key**: the other cross term of the same products, and LayerNorm's square
//!   sums, whose whole n × n product per column chunk (⌈d / terms⌉ chunks) the client
//!   decrypts, twice per layer and once for the embedding's.
use crate::secure::{EmbeddingMode, PublicModel};
use he_linear::params::HeParams;
use mpc_core::{Error, Result};

/// Coefficients revealed under each party's key in one inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reveals {
    /// Decrypted by the server (COP, embedding, head, its cross terms).
    pub server_key: u64,
    /// Decrypted by the client (its cross terms, LayerNorm's square sums).
    pub client_key: u64,
}

impl Reveals {
    /// The larger of the two: what one budget must cover.
    pub fn max(&self) -> u64 {
        self.server_key.max(self.client_key)
    }
}

/// The counts of one inference of `public` (module docs); `None` if they overflow a `u64`.
/// `products` are the attention products' parameters (their terms per coefficient set the
/// square sums' chunks).
pub fn per_inference(public: &PublicModel, products: &HeParams) -> Option<Reveals> {
    let c = &public.config;
    let to = |v: usize| u64::try_from(v).ok();
    let (n, d, f, h) = (
        to(public.seq_len)?,
        to(c.hidden_size)?,
        to(c.intermediate_size)?,
        to(c.num_attention_heads)?,
    );
    let layers = to(c.num_hidden_layers)?;
    let nd = n.checked_mul(d)?;
    let cop_widths = d.checked_mul(7)?.checked_add(f)?;
    let cop = n.checked_mul(cop_widths)?;
    let attention = h
        .checked_mul(n.checked_mul(n)?)?
        .checked_add(nd.checked_mul(2)?)?;
    // LayerNorm's products (2·layers + 1 LayerNorms, the embedding's included) run on HE
    // online with packed attention, and offline on random operands in an inference on
    // offline material whatever the attention mode: counted always (an upper bound for an
    // unpacked single-phase inference, which runs them on COTs). Each reveals one cross term
    // n·d of the row-scalar product under each key, and the square sums' n × n product per
    // column chunk under the client's.
    let norms = layers.checked_mul(2)?.checked_add(1)?;
    let chunks = d.div_ceil(products.max_terms().max(1));
    let square_sums = n.checked_mul(n)?.checked_mul(chunks)?;
    let server_norms = norms.checked_mul(nd)?;
    let client_norms = norms.checked_mul(nd.checked_add(square_sums)?)?;
    let server_layer = cop.checked_add(attention)?;
    let embedding = if public.embedding == EmbeddingMode::Server {
        nd
    } else {
        0
    };
    let head = n.checked_mul(to(public.classes)?)?;
    Some(Reveals {
        server_key: server_layer
            .checked_mul(layers)?
            .checked_add(server_norms)?
            .checked_add(embedding)?
            .checked_add(head)?,
        client_key: attention.checked_mul(layers)?.checked_add(client_norms)?,
    })
}

/// Refuses a plan that reveals more coefficients under one key in one inference than the
/// floods of the linear layers' and the products' parameters cover.
pub fn check(public: &PublicModel) -> Result<()> {
    let linear = HeParams::default_params()?;
    let products = HeParams::packed_products()?;
    let what = format!(
        "a {}-layer model of hidden size {} at {} tokens",
        public.config.num_hidden_layers, public.config.hidden_size, public.seq_len
    );
    let reveals = per_inference(public, &products).ok_or_else(|| {
        Error::shape(
            format!("{what}: revealed coefficients"),
            "a count that overflows",
            "a count in 64 bits",
        )
    })?;
    for params in [&linear, &products] {
        params.check_inference_reveals(reveals.max(), &what)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure::AttentionMode;
    use crate::BertConfig;
    use ot_nonlinear::approx::ApproxSet;

    fn model(config: BertConfig, seq_len: usize) -> PublicModel {
        PublicModel {
            config,
            seq_len,
            classes: 2,
            embedding: EmbeddingMode::Server,
            attention: AttentionMode::Packed,
            approx: ApproxSet::nimbus(),
        }
    }

    #[test]
    fn bert_base_fits_the_per_inference_budget_and_bert_large_at_512_does_not() {
        let products = HeParams::packed_products().unwrap();
        let base = per_inference(&model(BertConfig::bert_base(), 128), &products).unwrap();
        // COP 12·128·8448 + embedding 128·768 + head 256 + attention 12·(12·128² + 2·128·768)
        // + 25 LayerNorms' row-scalar products 128·768.
        assert_eq!(
            base.server_key,
            12_976_128 + 98_304 + 256 + 12 * 393_216 + 25 * 98_304
        );
        // Attention's other cross terms, the 25 LayerNorms' (128·768 + 2 chunks × 128²).
        assert_eq!(base.client_key, 12 * 393_216 + 25 * (98_304 + 2 * 16_384));
        println!(
            "bert-base at 128 tokens: 2^{:.2} (server key), 2^{:.2} (client key)",
            (base.server_key as f64).log2(),
            (base.client_key as f64).log2()
        );
        for (config, n) in [
            (BertConfig::bert_base(), 128),
            (BertConfig::bert_base(), 512),
            (BertConfig::bert_large(), 128),
            (BertConfig::bert_tiny(), 128),
        ] {
            check(&model(config.clone(), n)).unwrap_or_else(|e| panic!("{config:?} {n}: {e}"));
        }
        let e = check(&model(BertConfig::bert_large(), 512)).unwrap_err();
        assert!(matches!(e, Error::InsecureParams(_)), "{e}");
    }
}
