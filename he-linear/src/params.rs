//! Checked HE parameters: one builder derives the modulus from the stated needs (plaintext ring
//! width ℓ, largest number of terms summed into one coefficient, statistical security, and the
//! most coefficients revealed under one key in one inference) and refuses anything above the
//! HE-standard modulus for N or whose noise budget fails.
//!
//! **Statistical security is per inference, not per call.** Every decryption a key holder makes
//! in one inference, over every protocol and both parameter sets ([`HeParams::default_params`],
//! [`HeParams::packed_products`]), counts against one budget of K = 2^[`INFERENCE_REVEALED_LOG2`]
//! coefficients: each flood makes one coefficient's view 2^-(κ+1)/K close to a simulated one
//! and each tail bound fails with probability 2^-(κ+1)/K, so K coefficients stay within 2^-κ.
//! A model's plan must count its coefficients and refuse to run above K
//! ([`HeParams::check_inference_reveals`]).
use crate::noise;
use crate::rns::{ntt_primes, RnsContext};
use mpc_core::{Error, Result};
use std::sync::Arc;

/// Why a parameter set or a plan is refused, with the numbers that break the rule. It reaches
/// callers as [`Error::InsecureParams`], from which `downcast_ref::<ParamsError>()` recovers
/// it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamsError {
    /// The ring dimension is not one the HE standard tabulates.
    #[error("N = {n} is not a power of two between 1024 and 32768")]
    RingDegree {
        /// The requested N.
        n: usize,
    },
    /// Statistical security below the required level.
    #[error("statistical security {bits} bits is below the required {required}")]
    StatisticalSecurity {
        /// The requested κ.
        bits: u32,
        /// The least accepted κ.
        required: u32,
    },
    /// The modulus exceeds the HE-standard bound for 128-bit security at N.
    #[error(
        "log2 q = {log_q:.1} exceeds the HE-standard bound {max} for N = {n} (128-bit \
         security); this workload needs about {need:.0} bits"
    )]
    ModulusTooLarge {
        /// log2 of the modulus.
        log_q: f64,
        /// The HE-standard bound on log2 q at N.
        max: u32,
        /// The ring dimension.
        n: usize,
        /// log2 q the noise bound needs.
        need: f64,
    },
    /// The modulus is too small for the noise bound (flooding included).
    #[error(
        "log2 q = {log_q:.1} is below the {need:.1} bits the noise bound needs (flooding \
         2^{flood_bits} for {terms} terms at κ = {stat_bits})"
    )]
    ModulusTooSmall {
        /// log2 of the modulus.
        log_q: f64,
        /// log2 q the noise bound needs.
        need: f64,
        /// log2 of the flooding width.
        flood_bits: u32,
        /// Largest number of terms summed into one coefficient.
        terms: u64,
        /// Statistical security κ.
        stat_bits: u32,
    },
    /// No pair of response widths keeps the decryption noise within the torus budget, or the
    /// best one is wider than supported.
    #[error("response width {bits:?} bits: none fits the budget within the supported {max}")]
    ResponseWidth {
        /// The narrowest c1 width that fits, if any.
        bits: Option<u32>,
        /// The widest supported.
        max: u32,
    },
    /// The key holder's basis cannot decrypt the responses exactly.
    #[error("cannot decrypt {c1_bits}-bit responses exactly with this basis")]
    ExactDecryption {
        /// Width of the responses' c1.
        c1_bits: u32,
    },
    /// A plan reveals more coefficients under one key in one inference than the floods cover.
    #[error(
        "{what} reveals {revealed} coefficients under one key per inference; the floods cover \
         2^{budget_log2} at {stat_bits} bits of statistical security (shorten the sequence or \
         use a smaller model)"
    )]
    RevealBudget {
        /// The plan (model or layer) that asked.
        what: String,
        /// Coefficients it reveals.
        revealed: u64,
        /// log2 of the budget K.
        budget_log2: u32,
        /// Statistical security κ.
        stat_bits: u32,
    },
    /// Fewer NTT-friendly primes below 2^31 than needed.
    #[error("not enough NTT primes below 2^31 for N = {n}")]
    NotEnoughPrimes {
        /// The ring dimension.
        n: usize,
    },
}

impl From<ParamsError> for Error {
    fn from(e: ParamsError) -> Error {
        Error::InsecureParams(Box::new(e))
    }
}

/// log2 of the most coefficients revealed under one key in one inference that the default
/// parameters cover: 27, the most for which the packed products' flood still fits the 218-bit
/// HE-standard modulus of N = 8192 (seven 31-bit primes; 2^28 needs 218.x bits, refused by
/// `params::tests`). BERT-base at 512 tokens reveals 2^26.8, BERT-large at 128 tokens 2^25.7.
pub const INFERENCE_REVEALED_LOG2: u32 = 27;

/// Widest supported response c1 (bits).
const MAX_RESPONSE_BITS: u32 = 96;

/// Bits of the largest RNS prime (every prime is below 2^31, `rns::PRIME_BOUND`).
const PRIME_BITS: u32 = crate::rns::PRIME_BOUND.trailing_zeros();

/// Ring degree N (a power of two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PolyDegree(pub usize);

/// Plaintext modulus t = 2^ℓ, given as ℓ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PlainBits(pub u32);

/// Largest log2 q at 128-bit security for a ternary secret and σ = 3.2 (HE standard, Table 1,
/// classical attacks), or `None` for an unsupported degree.
pub fn he_standard_max_log_q(n: PolyDegree) -> Option<u32> {
    match n.0 {
        1024 => Some(27),
        2048 => Some(54),
        4096 => Some(109),
        8192 => Some(218),
        16384 => Some(438),
        32768 => Some(881),
        _ => None,
    }
}

/// Builder for [`HeParams`].
#[derive(Clone, Debug)]
pub struct HeParamsBuilder {
    n: PolyDegree,
    plain: PlainBits,
    stat_bits: u32,
    max_terms: u64,
    revealed_log2: u32,
    pack_levels: u32,
    ks_digit_primes: usize,
    primes: Option<Vec<u32>>,
}

impl Default for HeParamsBuilder {
    fn default() -> Self {
        HeParamsBuilder {
            n: PolyDegree(8192),
            plain: PlainBits(64),
            stat_bits: 40,
            max_terms: 1 << 15,
            revealed_log2: INFERENCE_REVEALED_LOG2,
            pack_levels: 0,
            ks_digit_primes: 2,
            primes: None,
        }
    }
}

impl HeParamsBuilder {
    /// Ring degree N (default 8192).
    pub fn poly_degree(mut self, n: usize) -> Self {
        self.n = PolyDegree(n);
        self
    }

    /// Plaintext ring Z_{2^ℓ} (default ℓ = 64).
    pub fn plain_bits(mut self, bits: u32) -> Self {
        self.plain = PlainBits(bits);
        self
    }

    /// Statistical security κ of flooding (default 40; below 40 is refused).
    pub fn stat_bits(mut self, bits: u32) -> Self {
        self.stat_bits = bits;
        self
    }

    /// Largest number of (scalar × ciphertext) terms summed into one coefficient (default 2^15:
    /// inner width × packing factor; COP on 3072×768 packs 10 rows, 30 720 terms).
    pub fn max_terms(mut self, terms: u64) -> Self {
        self.max_terms = terms;
        self
    }

    /// log2 of the most coefficients revealed to one key holder in one inference, over all
    /// calls and parameter sets that share the key (default [`INFERENCE_REVEALED_LOG2`]).
    pub fn revealed_log2(mut self, bits: u32) -> Self {
        self.revealed_log2 = bits;
        self
    }

    /// Ciphertext packing levels R (default 0: none): outputs of up to 2^R ciphertexts merge
    /// into one with Galois keys (`galois`). Inputs are then encrypted at Δ' = q/2^{ℓ+R}, and
    /// the noise of every output coefficient becomes exactly 2^R times that of one input
    /// coefficient plus the key switches' (the bound grows by 2^R). At most 7 for N = 8192
    /// (2R ≤ log2 N + 1 keeps garbage off useful positions).
    pub fn pack_levels(mut self, levels: u32) -> Self {
        self.pack_levels = levels;
        self
    }

    /// Primes per key-switching digit (1 or 2, default 2): two halve the key switch's NTTs and
    /// key size; its noise grows from 2^43 to 2^73 (about the products' own), which the budget
    /// then covers.
    pub fn keyswitch_digit_primes(mut self, primes: usize) -> Self {
        self.ks_digit_primes = primes;
        self
    }

    /// Forces the RNS primes instead of deriving them (they are still checked).
    pub fn primes(mut self, primes: Vec<u32>) -> Self {
        self.primes = Some(primes);
        self
    }

    /// Derives and checks the parameters.
    pub fn build(self) -> Result<HeParams> {
        let n = self.n;
        let max_log_q = he_standard_max_log_q(n).ok_or(ParamsError::RingDegree { n: n.0 })?;
        let ell = self.plain.0;
        if !(2..=64).contains(&ell) {
            return Err(Error::out_of_range(
                "plaintext ring bits",
                ell as usize,
                mpc_core::Dims::within(2, 64),
            ));
        }
        if self.stat_bits < 40 {
            return Err(ParamsError::StatisticalSecurity {
                bits: self.stat_bits,
                required: 40,
            }
            .into());
        }
        if self.max_terms == 0 {
            return Err(Error::out_of_range(
                "max_terms",
                0,
                mpc_core::Dims::AtLeast(1),
            ));
        }
        if self.revealed_log2 > 40 {
            return Err(Error::out_of_range(
                "revealed_log2",
                self.revealed_log2 as usize,
                mpc_core::Dims::AtMost(40),
            ));
        }
        if !(1..=2).contains(&self.ks_digit_primes) {
            return Err(Error::out_of_range(
                "primes per key-switching digit",
                self.ks_digit_primes,
                mpc_core::Dims::within(1, 2),
            ));
        }
        if 2 * self.pack_levels > n.0.trailing_zeros() + 1 {
            return Err(Error::out_of_range(
                format!("packing levels for N = {}", n.0),
                self.pack_levels as usize,
                mpc_core::Dims::AtMost(n.0.trailing_zeros().div_ceil(2) as usize),
            ));
        }
        // Failure probability of each tail bound: 2^-(κ + 1 + log K), union-bounded over the K
        // coefficients of an inference: 2^-(κ+1); the floods' distance is the other 2^-(κ+1).
        let fail_bits = (self.stat_bits + self.revealed_log2 + 1) as f64;
        let mut acc = noise::accumulation_log2(ell, self.max_terms, fail_bits);
        if self.pack_levels > 0 {
            // The key holder encrypts at Δ' = q/2^{ℓ+R}; at output positions each merge level
            // doubles the noise of one input coefficient and adds a key switch's.
            // Digits: at most as many primes as the HE-standard modulus admits, grouped.
            let limbs = (max_log_q as f64 / (PRIME_BITS - 1) as f64).ceil() as usize;
            let digits = limbs.div_ceil(self.ks_digit_primes);
            let digit_bits = PRIME_BITS * self.ks_digit_primes as u32;
            let ks = noise::keyswitch_log2(n.0, digits, digit_bits, fail_bits);
            acc = noise::log2_add(acc, ks) + self.pack_levels as f64;
        }
        let flood_bits = noise::flood_log2(acc, self.stat_bits, self.revealed_log2);
        let q_noise = noise::log2_add(
            flood_bits as f64,
            noise::log2_add(acc, noise::rerandomize_log2(n.0, fail_bits)),
        );
        // Torus noise must stay below 2^-(ℓ+1); keep the q-level part at most 2^-(ℓ+3).
        let need_log_q = q_noise + ell as f64 + 3.0;
        let primes = match self.primes {
            Some(p) => p,
            None => {
                let count = (need_log_q / (PRIME_BITS as f64 - 0.01)).ceil() as usize;
                ntt_primes(n.0, count)?
            }
        };
        let rns = RnsContext::new(n.0, &primes)?;
        let log_q = rns.log_q();
        if log_q > max_log_q as f64 {
            return Err(ParamsError::ModulusTooLarge {
                log_q,
                max: max_log_q,
                n: n.0,
                need: need_log_q,
            }
            .into());
        }
        if log_q < need_log_q {
            return Err(ParamsError::ModulusTooSmall {
                log_q,
                need: need_log_q,
                flood_bits,
                terms: self.max_terms,
                stat_bits: self.stat_bits,
            }
            .into());
        }
        // Split the remaining torus budget between c0's and c1's switching roundings, choosing
        // the widths that minimise the response size (c1 is always full, c0 mostly full).
        let budget = (-(ell as f64 + 1.0)).exp2() - (q_noise - log_q).exp2();
        let c1_round = noise::c1_rounding_log2(n.0, fail_bits);
        let (c0_bits, c1_bits) = (ell + 1..ell + 24)
            .filter_map(|b0| {
                let rest = budget - (-(b0 as f64) - 1.0).exp2();
                (rest > 0.0).then(|| (b0, (c1_round - rest.log2()).ceil() as u32))
            })
            .min_by_key(|&(b0, b1)| b0 + b1)
            .ok_or(ParamsError::ResponseWidth {
                bits: None,
                max: MAX_RESPONSE_BITS,
            })?;
        if c1_bits > MAX_RESPONSE_BITS {
            return Err(ParamsError::ResponseWidth {
                bits: Some(c1_bits),
                max: MAX_RESPONSE_BITS,
            }
            .into());
        }
        // Primes for the key holder's exact c1·s: |ĉ1·s| < 2^{b1−1}·N.
        let need_dec = c1_bits as f64 + (n.0 as f64).log2() + 1.0;
        let mut dec_primes = 0;
        let mut acc_bits = 0.0;
        while acc_bits <= need_dec && dec_primes < rns.len() {
            acc_bits += (rns.moduli()[dec_primes].p as f64).log2();
            dec_primes += 1;
        }
        if acc_bits <= need_dec || acc_bits >= 124.0 {
            return Err(ParamsError::ExactDecryption { c1_bits }.into());
        }
        Ok(HeParams {
            inner: Arc::new(Inner {
                n,
                plain: self.plain,
                stat_bits: self.stat_bits,
                max_terms: self.max_terms,
                revealed_log2: self.revealed_log2,
                pack_levels: self.pack_levels,
                ks_digit_primes: self.ks_digit_primes,
                acc_log2: acc,
                flood_bits,
                c0_bits,
                c1_bits,
                dec_primes,
                rns,
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    n: PolyDegree,
    plain: PlainBits,
    stat_bits: u32,
    max_terms: u64,
    revealed_log2: u32,
    pack_levels: u32,
    ks_digit_primes: usize,
    acc_log2: f64,
    flood_bits: u32,
    c0_bits: u32,
    c1_bits: u32,
    dec_primes: usize,
    rns: RnsContext,
}

/// Validated HE parameters (cheap to clone).
#[derive(Clone, Debug)]
pub struct HeParams {
    inner: Arc<Inner>,
}

impl HeParams {
    /// A builder with the defaults (N = 8192, ℓ = 64, κ = 40, 2^15 terms, 2^27 coefficients per
    /// inference).
    pub fn builder() -> HeParamsBuilder {
        HeParamsBuilder::default()
    }

    /// The defaults, which cover every BERT-base and BERT-large linear layer.
    pub fn default_params() -> Result<HeParams> {
        HeParams::builder().build()
    }

    /// Parameters of the packed secret × secret products (attention's QKᵀ and P·V): seven merge
    /// levels (groups of up to 128 outputs), inner width up to 512 (sequence length), the same
    /// per-inference budget of 2^[`INFERENCE_REVEALED_LOG2`] coefficients. They keep the
    /// defaults' N and primes, so the same secret and public keys serve both.
    pub fn packed_products() -> Result<HeParams> {
        HeParams::builder().max_terms(512).pack_levels(7).build()
    }

    /// N.
    pub fn n(&self) -> usize {
        self.inner.n.0
    }

    /// ℓ (t = 2^ℓ).
    pub fn plain_bits(&self) -> u32 {
        self.inner.plain.0
    }

    /// κ.
    pub fn stat_bits(&self) -> u32 {
        self.inner.stat_bits
    }

    /// Largest supported number of terms per coefficient.
    pub fn max_terms(&self) -> u64 {
        self.inner.max_terms
    }

    /// Most coefficients revealed under one key in one inference (a call reveals at most
    /// this many too).
    pub fn max_revealed(&self) -> u64 {
        1 << self.inner.revealed_log2
    }

    /// Refuses an inference plan that reveals `revealed` coefficients under one key (`what`
    /// names the plan): above [`HeParams::max_revealed`] the floods no longer give κ bits of
    /// statistical security for the whole inference.
    ///
    /// ```
    /// let p = he_linear::params::HeParams::default_params()?;
    /// assert!(p.check_inference_reveals(1 << 24, "bert-base").is_ok());
    /// assert!(p.check_inference_reveals((1 << 27) + 1, "bert-large").is_err());
    /// # Ok::<(), mpc_core::Error>(())
    /// ```
    pub fn check_inference_reveals(&self, revealed: u64, what: &str) -> Result<()> {
        if revealed > self.max_revealed() {
            return Err(ParamsError::RevealBudget {
                what: what.to_string(),
                revealed,
                budget_log2: self.inner.revealed_log2,
                stat_bits: self.stat_bits(),
            }
            .into());
        }
        Ok(())
    }

    /// Ciphertext packing levels R (0: no packing).
    pub fn pack_levels(&self) -> u32 {
        self.inner.pack_levels
    }

    /// Primes per key-switching digit.
    pub fn keyswitch_digit_primes(&self) -> usize {
        self.inner.ks_digit_primes
    }

    /// Encryption scale bits: Δ' = q/2^{ℓ+R}, so that R merge levels bring a message to Δ.
    pub fn scale_bits(&self) -> u32 {
        self.inner.plain.0 + self.inner.pack_levels
    }

    /// log2 of the accumulated-noise bound the flooding covers.
    pub fn acc_log2(&self) -> f64 {
        self.inner.acc_log2
    }

    /// log2 of the flooding width F.
    pub fn flood_bits(&self) -> u32 {
        self.inner.flood_bits
    }

    /// Bits kept per c0 coefficient in a response (switch to 2^b0).
    pub fn c0_bits(&self) -> u32 {
        self.inner.c0_bits
    }

    /// Bits kept per c1 coefficient in a response (switch to 2^b1).
    pub fn c1_bits(&self) -> u32 {
        self.inner.c1_bits
    }

    /// Primes used by the key holder to compute ĉ1·s exactly.
    pub fn dec_primes(&self) -> usize {
        self.inner.dec_primes
    }

    /// The RNS basis.
    pub fn rns(&self) -> &RnsContext {
        &self.inner.rns
    }

    /// log2 q.
    pub fn log_q(&self) -> f64 {
        self.inner.rns.log_q()
    }

    /// Bytes of one response ciphertext revealing `used` coefficients.
    pub fn response_bytes(&self, used: usize) -> usize {
        crate::response::Window::full(self).response_bytes(self, used)
    }

    /// Checks a peer's fingerprint; `what` names the data it came with.
    pub fn check_fingerprint(&self, peer: &[u8; 8], what: &str) -> Result<()> {
        if *peer == self.fingerprint() {
            Ok(())
        } else {
            Err(Error::ParamMismatch(format!(
                "{what}: encrypted under other HE parameters"
            )))
        }
    }

    /// A digest of everything both parties must agree on (checked in every message header).
    pub fn fingerprint(&self) -> [u8; 8] {
        let i = &self.inner;
        let mut h = blake3::Hasher::new();
        h.update(b"he-linear params v1");
        for v in [
            i.n.0 as u64,
            i.plain.0 as u64,
            i.stat_bits as u64,
            i.max_terms,
            i.revealed_log2 as u64,
            i.flood_bits as u64,
            i.c0_bits as u64,
            i.c1_bits as u64,
        ] {
            h.update(&v.to_le_bytes());
        }
        for p in i.rns.primes() {
            h.update(&p.to_le_bytes());
        }
        // Absent from unpacked parameters, so their fingerprints (and caches) are unchanged.
        if i.pack_levels > 0 {
            h.update(b"pack");
            h.update(&i.pack_levels.to_le_bytes());
            h.update(&(i.ks_digit_primes as u32).to_le_bytes());
        }
        h.finalize().as_bytes()[..8].try_into().unwrap()
    }

    /// One-line description for reports.
    pub fn describe(&self) -> String {
        format!(
            "N={} log2q={:.1} ({} primes <2^31) t=2^{} κ={} flood=2^{} response c0/c1={}/{} bits{}",
            self.n(),
            self.log_q(),
            self.rns().len(),
            self.plain_bits(),
            self.stat_bits(),
            self.flood_bits(),
            self.c0_bits(),
            self.c1_bits(),
            if self.pack_levels() > 0 {
                format!(" packing {} levels", self.pack_levels())
            } else {
                String::new()
            }
        )
    }
}

#[cfg(test)]
mod tests;
