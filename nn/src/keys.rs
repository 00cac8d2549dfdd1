//! The HE context every HE-backed operator runs under: the parameters of the linear layers,
//! those of the secret × secret products, and this party's key with the peer's public keys.
use he_linear::params::HeParams;
use he_linear::secret_product::ProductKeys;

/// Parameters and keys of one party for the HE-backed operators.
#[derive(Clone, Copy, Debug)]
pub struct HeKeys<'a> {
    /// Parameters of the linear layers (COP) and the embedding lookup.
    pub params: &'a HeParams,
    /// Parameters of the secret × secret products (packed or not) and the row products.
    pub product_params: &'a HeParams,
    /// This party's secret key, the peer's public key and (packed products) Galois keys.
    pub keys: ProductKeys<'a>,
}
