//! Approximation tables as data: piecewise polynomials per function and per layer, the named
//! sets, and the fitted-tables file.
use super::piecewise_poly::{Piece, PiecewisePoly};
use super::plan::{PiecewisePlan, SetPlan};
use mpc_core::{Error, FixedPoint, Result, Ring};
use std::path::Path;

/// How exp(x), x ≤ 0, is approximated.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpMethod {
    /// A piecewise polynomial in the set's evaluation format (Nimbus: {0 below T; cubic}).
    Piecewise(PiecewisePoly),
    /// 0 below `lower`, else (1 + x/2^t)^(2^t) by t squarings on Z_2^64 with 18 bits (PUMA).
    Squaring {
        /// Number of squarings t.
        t: u32,
        /// Below this the result is 0.
        lower: f64,
    },
}

/// The tables of one Transformer layer.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerTables {
    /// GELU of the feed-forward block.
    pub gelu: PiecewisePoly,
    /// exp of the attention softmax.
    pub exp: ExpMethod,
}

/// A named approximation set: the precision of its stored constants, the per-layer tables and
/// the evaluation plans. Reciprocal, rsqrt and tanh are the same for every set (see
/// [`crate::approx::fixed`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApproxSet {
    /// `nimbus`, `puma`, or a fitted variant's name.
    pub name: String,
    /// Precision of the tables' constants (breakpoints and leading coefficients at f bits, the
    /// other coefficients at 2f bits; the fitter rounds to it). How the functions are evaluated
    /// on shares (rings, fraction bits) is [`ApproxSet::plan`].
    pub format: FixedPoint,
    /// One entry per layer, or a single entry that applies to every layer.
    pub layers: Vec<LayerTables>,
    /// Rings and fraction bits of the secure evaluation (and of the mirror). Files of format
    /// `approx-tables-v1` predate plans; they were only written for `nimbus` and read with
    /// [`SetPlan::nimbus`].
    #[serde(default = "SetPlan::nimbus")]
    pub plan: SetPlan,
}

/// PUMA's GELU (arXiv 2307.12533; constants in docs/protocols/approximations.md): 0 below −4, cubic on [−4, −1.95), degree 6 on [−1.95, 3], x above.
fn puma_gelu() -> PiecewisePoly {
    PiecewisePoly {
        breakpoints: vec![-4.0, -1.95, 3.0],
        pieces: vec![
            Piece::Zero,
            Piece::Poly(vec![
                -0.5054031199708174,
                -0.42226581151983866,
                -0.11807612951181953,
                -0.011034134030615728,
            ]),
            Piece::Poly(vec![
                0.008526321541038084,
                0.5,
                0.3603292692789629,
                0.0,
                -0.037688200365904236,
                0.0,
                0.0018067462606141187,
            ]),
            Piece::Identity,
        ],
    }
}

impl ApproxSet {
    /// Nimbus with the starting constants (arXiv 2411.15707, §5): GELU {0 for x < −2.1; quadratic on
    /// [−2.1, 0.2); x}, exp {0 below −4; cubic on [−4, 0]}, the polynomials fitted by uniform least
    /// squares on their intervals; Z_2^32 with 12 fraction bits. Per-layer fits replace them.
    pub fn nimbus() -> ApproxSet {
        ApproxSet {
            name: "nimbus".into(),
            format: const { FixedPoint::new_const(Ring::R32, 12) },
            layers: vec![LayerTables {
                gelu: PiecewisePoly {
                    breakpoints: vec![-2.1, 0.2],
                    pieces: vec![
                        Piece::Zero,
                        Piece::Poly(vec![
                            -0.011534966761819811,
                            0.30437430179035013,
                            0.1515930894849454,
                        ]),
                        Piece::Identity,
                    ],
                },
                exp: ExpMethod::Piecewise(PiecewisePoly {
                    breakpoints: vec![-4.0],
                    pieces: vec![
                        Piece::Zero,
                        Piece::Poly(vec![
                            0.968883377185289,
                            0.8242195332647799,
                            0.2575796002996162,
                            0.028048737912733594,
                        ]),
                    ],
                }),
            }],
            plan: SetPlan::nimbus(),
        }
    }

    /// PUMA: its GELU pieces and exp by t = 8 squarings (max error ≈ 0.0011 against ≈ 0.0085 for
    /// t = 5: softmax sums many exps, so the extra 3 squarings are worth it), all on Z_2^64 with
    /// 18 fraction bits (PUMA's ring; the degree-6 coefficient 0.0018 needs more than 12 bits).
    pub fn puma() -> ApproxSet {
        ApproxSet {
            name: "puma".into(),
            format: FixedPoint::LINEAR,
            layers: vec![LayerTables {
                gelu: puma_gelu(),
                exp: ExpMethod::Squaring { t: 8, lower: -14.0 },
            }],
            plan: SetPlan::puma(),
        }
    }

    /// The tables of layer `l`.
    pub fn layer(&self, l: usize) -> &LayerTables {
        &self.layers[l.min(self.layers.len() - 1)]
    }

    /// Checks the tables: a usable format (9 ≤ f, 2f < ℓ, at most 18 bits, ring ≤ 64), a valid
    /// softmax plan ([`SoftmaxPlan::validate`](super::plan::SoftmaxPlan::validate)), one or `num_layers` entries, every table valid
    /// in the format and its plan (every piece's powers and values fit the plan's rings on its
    /// interval).
    pub fn validate(&self, num_layers: usize) -> Result<()> {
        self.check(num_layers, true)
    }

    /// The set as the client receives it: the breakpoints are the server's inputs to the
    /// comparisons (it subtracts them from its share) and are replaced by placeholders
    /// (0, 1, 2, …), as is PUMA's exp lower bound (−1); the coefficients and plans are public
    /// (docs/security.md says what the coefficients reveal about the breakpoints).
    pub fn redacted(&self) -> ApproxSet {
        let placeholder = |b: &mut Vec<f64>| {
            for (i, v) in b.iter_mut().enumerate() {
                *v = i as f64;
            }
        };
        let mut out = self.clone();
        for t in &mut out.layers {
            placeholder(&mut t.gelu.breakpoints);
            match &mut t.exp {
                ExpMethod::Piecewise(pw) => placeholder(&mut pw.breakpoints),
                ExpMethod::Squaring { lower, .. } => *lower = -1.0,
            }
        }
        out
    }

    /// [`ApproxSet::validate`] for a copy whose breakpoints are placeholders (the client's: the
    /// breakpoints are the server's private inputs): every check that does not depend on where
    /// the pieces lie. The server validates the real set.
    pub fn validate_redacted(&self, num_layers: usize) -> Result<()> {
        self.check(num_layers, false)
    }

    fn check(&self, num_layers: usize, breakpoints_known: bool) -> Result<()> {
        let f = self.format.frac_bits();
        if !(9..=FixedPoint::LINEAR.frac_bits()).contains(&f) || 2 * f >= self.format.ring().bits()
        {
            return Err(Error::malformed(
                format!("set `{}`: evaluation format", self.name),
                format!("Z_2^{} with {f} fraction bits", self.format.ring().bits()),
                format!(
                    "9..={} fraction bits, fewer than half the ring's",
                    FixedPoint::LINEAR.frac_bits()
                ),
            ));
        }
        if self.layers.len() != 1 && self.layers.len() != num_layers {
            return Err(Error::ParamMismatch(format!(
                "set `{}` has tables for {} layers, the model has {num_layers}",
                self.name,
                self.layers.len()
            )));
        }
        self.plan.softmax.validate()?;
        for (l, t) in self.layers.iter().enumerate() {
            let ctx = |e: Error| {
                Error::malformed(
                    format!("set `{}` layer {l}", self.name),
                    e.to_string(),
                    "tables its plan evaluates",
                )
            };
            let against = |plan: &PiecewisePlan, pw: &PiecewisePoly| {
                pw.validate(self.format)?;
                if breakpoints_known {
                    plan.validate(pw)
                } else {
                    plan.validate_rings()
                }
            };
            against(&self.plan.gelu, &t.gelu).map_err(ctx)?;
            match &t.exp {
                ExpMethod::Piecewise(p) => against(&self.plan.exp, p).map_err(ctx)?,
                ExpMethod::Squaring { t, lower } => {
                    if *t == 0 || *t > 16 || *lower >= 0.0 {
                        return Err(Error::malformed(
                            format!("set `{}` layer {l}: squaring exp", self.name),
                            format!("t = {t}, lower = {lower}"),
                            "1 ≤ t ≤ 16 and a negative lower bound",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Format tag of a fitted-tables file written now (v2 adds the set's `plan`).
pub const TABLES_FORMAT: &str = "approx-tables-v2";
/// The earlier format tag, still read: no `plan`, which defaults to [`SetPlan::nimbus`].
pub const TABLES_FORMAT_V1: &str = "approx-tables-v1";

/// A fitted-tables file (JSON): the set, where it was fitted, and each fit's measured error.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TablesFile {
    /// [`TABLES_FORMAT`] (or [`TABLES_FORMAT_V1`] when read from an older file).
    pub format: String,
    /// The model the tables were fitted for (directory name).
    pub model: String,
    /// Calibration data description (file, sentences, tokens).
    pub calibration: String,
    /// The fitted set (one entry per layer).
    pub set: ApproxSet,
    /// Per layer and function, the measured errors of the fit.
    pub errors: Vec<FitReport>,
}

/// The error of one fitted function on its calibration inputs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitReport {
    /// Layer index.
    pub layer: usize,
    /// `gelu` or `exp`.
    pub function: String,
    /// Number of calibration inputs.
    pub samples: usize,
    /// Root-mean-square error over the calibration inputs (density-weighted).
    pub rmse: f64,
    /// Largest absolute error over the calibration inputs.
    pub max_error: f64,
}

impl TablesFile {
    /// Writes the file as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::malformed("tables file", e.to_string(), "serializable tables"))?;
        mpc_core::error::write_file(path, text + "\n")
    }

    /// Reads and validates a file for a model with `num_layers` layers.
    pub fn load(path: &Path, num_layers: usize) -> Result<TablesFile> {
        let text = mpc_core::error::read_file_text(path)?;
        let file: TablesFile = serde_json::from_str(&text).map_err(|e| {
            Error::malformed(path.display().to_string(), e.to_string(), "a tables file")
        })?;
        if file.format != TABLES_FORMAT && file.format != TABLES_FORMAT_V1 {
            return Err(Error::malformed(
                format!("{}: format", path.display()),
                format!("`{}`", file.format),
                format!("`{TABLES_FORMAT}`"),
            ));
        }
        file.set.validate(num_layers).map_err(|e| {
            Error::malformed(path.display().to_string(), e.to_string(), "valid tables")
        })?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16, item 4: a peer's set whose softmax plan would make a ring constructor or a
    /// shift fail is refused by both checks (the client only has the redacted one).
    #[test]
    fn hostile_softmax_plans_are_refused() {
        use super::super::plan::SoftmaxPlan;
        let good = SoftmaxPlan::standard();
        good.validate().unwrap();
        for bad in [
            SoftmaxPlan {
                max_drop: 64,
                ..good
            },
            SoftmaxPlan {
                max_drop: 60,
                ..good
            },
            SoftmaxPlan {
                recip_bits: Ring::new_const(1),
                ..good
            },
            SoftmaxPlan { s_frac: 19, ..good },
            SoftmaxPlan {
                e_frac: 1,
                r_frac: 1,
                ..good
            },
            SoftmaxPlan { r_frac: 40, ..good },
            SoftmaxPlan {
                r_frac: u32::MAX,
                ..good
            },
            SoftmaxPlan {
                mask_offset: f64::NAN,
                ..good
            },
            SoftmaxPlan {
                mask_offset: 1e300,
                ..good
            },
        ] {
            let mut set = ApproxSet::nimbus();
            set.plan.softmax = bad;
            assert!(
                matches!(set.validate(1), Err(Error::Malformed { .. })),
                "{bad:?}"
            );
            assert!(
                matches!(set.validate_redacted(1), Err(Error::Malformed { .. })),
                "{bad:?}"
            );
        }
        // Ring widths outside 1..=64 do not even decode.
        let json = serde_json::to_value(ApproxSet::nimbus()).unwrap();
        for (plan, field, bits) in [
            ("softmax", "max_keep", 0),
            ("softmax", "max_keep", 65),
            ("softmax", "recip_bits", 200),
            ("softmax", "prod_bits", 0),
            ("gelu", "poly_bits", 0),
            ("exp", "out_bits", 65),
        ] {
            let mut bad = json.clone();
            bad["plan"][plan][field] = bits.into();
            assert!(
                serde_json::from_value::<ApproxSet>(bad).is_err(),
                "{field}: {bits}"
            );
        }
        let mut same = json.clone();
        same["plan"]["softmax"]["max_keep"] = 15.into();
        assert_eq!(
            serde_json::from_value::<ApproxSet>(same).unwrap(),
            ApproxSet::nimbus()
        );
    }

    #[test]
    fn named_sets_are_valid_and_close_to_the_functions() {
        for set in [ApproxSet::nimbus(), ApproxSet::puma()] {
            set.validate(6).unwrap();
        }
        let puma = puma_gelu();
        let gelu = |x: f64| 0.5 * x * (1.0 + crate_erf(x / std::f64::consts::SQRT_2));
        for i in -60..=60 {
            let x = i as f64 / 10.0;
            assert!((puma.eval_f64(x) - gelu(x)).abs() < 0.021, "{x}");
        }
        assert_eq!(puma.piece_index(-1.95), 2);
        assert_eq!(puma.piece_index(-1.9500001), 1);
    }

    /// erf by its Taylor series (|x| ≤ 5 is plenty for the test).
    fn crate_erf(x: f64) -> f64 {
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn invalid_tables_are_refused() {
        let mut set = ApproxSet::nimbus();
        set.layers[0].gelu.breakpoints = vec![0.2, -2.1];
        assert!(set
            .validate(6)
            .unwrap_err()
            .to_string()
            .contains("not increasing"));
        let mut set = ApproxSet::nimbus();
        set.layers[0].gelu.pieces.pop();
        assert!(set.validate(6).is_err());
        let mut set = ApproxSet::nimbus();
        if let Piece::Poly(c) = &mut set.layers[0].gelu.pieces[1] {
            c[0] = 1000.0; // does not fit 24 fraction bits of Z_2^32
        }
        assert!(set.validate(6).is_err());
        let set = ApproxSet {
            layers: vec![ApproxSet::nimbus().layers[0].clone(); 2],
            ..ApproxSet::nimbus()
        };
        assert!(set
            .validate(6)
            .unwrap_err()
            .to_string()
            .contains("2 layers"));
    }

    #[test]
    fn committed_tables_and_v1_files_load_with_the_nimbus_plan() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../bert/tables/all-MiniLM-L6-v2.nimbus.json");
        let file = TablesFile::load(&path, 6).unwrap();
        // The file carries its own plan (validated against its tables by `load`).
        assert_eq!(file.set.plan.gelu, SetPlan::nimbus().gelu);
        // A v1 file has no `plan`: it reads as the Nimbus plan.
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        json["format"] = TABLES_FORMAT_V1.into();
        json["set"].as_object_mut().unwrap().remove("plan");
        let v1 = std::env::temp_dir().join(format!("approx-v1-{}.json", std::process::id()));
        std::fs::write(&v1, json.to_string()).unwrap();
        let old = TablesFile::load(&v1, 6).unwrap();
        std::fs::remove_file(&v1).unwrap();
        assert_eq!(
            (old.format.as_str(), old.set.plan),
            (TABLES_FORMAT_V1, SetPlan::nimbus())
        );
    }

    #[test]
    fn tables_file_round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("approx-tables-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.json");
        let file = TablesFile {
            format: TABLES_FORMAT.into(),
            model: "m".into(),
            calibration: "c".into(),
            set: ApproxSet::nimbus(),
            errors: vec![],
        };
        file.save(&path).unwrap();
        // JSON floats round-trip to within an ulp; the fixed-point encodings are what must agree.
        let back = TablesFile::load(&path, 6).unwrap();
        let coeffs = |f: &TablesFile| match &f.set.layers[0].gelu.pieces[1] {
            Piece::Poly(c) => c.clone(),
            other => panic!("{other:?}"),
        };
        for (a, b) in coeffs(&back).iter().zip(coeffs(&file)) {
            assert!((a - b).abs() <= 1e-15, "{a} vs {b}");
        }
        assert_eq!(
            back.set.layers[0].gelu.breakpoints,
            file.set.layers[0].gelu.breakpoints
        );
        std::fs::write(&path, "{").unwrap();
        assert!(TablesFile::load(&path, 6)
            .unwrap_err()
            .to_string()
            .contains("t.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
