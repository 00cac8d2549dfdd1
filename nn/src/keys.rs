//! The HE context every HE-backed operator runs under: the parameters of the linear layers,
//! those of the secret × secret products, and this party's key with the peer's public keys.
use he_linear::params::HeParams;
use he_linear::rlwe::{PublicKey, SecretKey};
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

impl<'a> HeKeys<'a> {
    /// One parameter set for every HE operator and no Galois keys: for models whose HE work
    /// is linear layers only (the convolutions of a CNN), which never merge packed responses.
    pub fn unpacked(params: &'a HeParams, my_sk: &'a SecretKey, peer_pk: &'a PublicKey) -> Self {
        HeKeys {
            params,
            product_params: params,
            keys: ProductKeys {
                my_sk,
                peer_pk,
                peer_galois: None,
            },
        }
    }
}
