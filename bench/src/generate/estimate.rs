//! `bench generate --estimate`: one generated token's exact cost per component, from the
//! cost formulas, for a named shape (LLaMA-7B, SmolLM2-135M) or a GGUF file's.
use super::{llama_err, mb, model_file, ComponentRow};
use he_linear::params::HeParams;
use llama::calibrate::{llama_set, NormShifts};
use llama::secure::cost::{call_cost, call_cots, offline_call_cost};
use llama::secure::DecoderShape;
use llama::Model;
use mpc_core::{Error, Result};
use std::path::Path;

/// The shape of a model named on the command line (LLaMA-7B as published: 32 blocks, width
/// 4096, 32 heads of 128, FFN 11 008, vocabulary 32 000).
fn named_shape(name: &str) -> Result<DecoderShape> {
    match name {
        "llama-7b" => Ok(DecoderShape {
            n_layers: 32,
            hidden: 4096,
            n_heads: 32,
            n_kv_heads: 32,
            head_dim: 128,
            ffn: 11008,
            vocab: 32000,
            rms_eps: 1e-6,
            rope_base: 10_000.0,
            context: 2048,
        }),
        "smollm2-135m" => Ok(DecoderShape {
            n_layers: 30,
            hidden: 576,
            n_heads: 9,
            n_kv_heads: 3,
            head_dim: 64,
            ffn: 1536,
            vocab: 49152,
            rms_eps: 1e-5,
            rope_base: 100_000.0,
            context: 8192,
        }),
        file => {
            let model = Model::load(&model_file(Path::new(file))?).map_err(llama_err)?;
            Ok(DecoderShape::from(&model.config))
        }
    }
}

/// `--estimate`: one generated token's exact cost per component at `context` positions.
pub(super) fn estimate(name: &str, context: usize, split: bool) -> Result<()> {
    let shape = named_shape(name)?;
    shape.check()?;
    if context == 0 || context > shape.context {
        return Err(Error::InvalidArgument(format!(
            "a context of {context} (the model's is {})",
            shape.context
        )));
    }
    let set = llama_set(None, shape.n_layers)?;
    let shifts = NormShifts::none(shape.n_layers);
    let (params, pp) = (HeParams::default_params()?, HeParams::packed_products()?);
    let (parts, total) = call_cost(&shape, &set, &shifts, &params, &pp, 1, context - 1, split)?;
    let mut rows: Vec<ComponentRow> = Vec::new();
    for (label, c) in &parts {
        // `layerNN/<component>` → `<component>`; `embedding`, `head` as they are.
        let component = match label.split_once('/') {
            Some((prefix, rest)) if prefix.starts_with("layer") => rest,
            _ => label.as_str(),
        };
        match rows.iter_mut().find(|r| r.component == component) {
            Some(r) => {
                r.bytes += c.bytes();
                r.rounds += c.rounds;
            }
            None => rows.push(ComponentRow {
                component: component.to_string(),
                bytes: c.bytes(),
                rounds: c.rounds,
                wall_s: 0.0,
            }),
        }
    }
    println!(
        "{name}: one generated token at a {context}-position context, from the cost formulas \
         (computed, not measured; COT extension traffic excluded; rounds per component are \
         standalone, the total merges adjacent flights)"
    );
    println!("{:<20} {:>14} {:>8}", "component", "MB", "rounds");
    for r in &rows {
        println!("{:<20} {:>14.3} {:>8}", r.component, mb(r.bytes), r.rounds);
    }
    println!(
        "{:<20} {:>14.3} {:>8}",
        "total",
        mb(total.bytes()),
        total.rounds
    );
    let cots = call_cots(&shape, &set, &shifts, &params, 1, context - 1)?;
    println!(
        "COTs drawn: {} with the server as sender, {} with the client as sender \
         ({:.1} MB of 16-byte blocks in each party's pools)",
        cots.server,
        cots.client,
        mb(16 * (cots.server + cots.client) as u64)
    );
    if split {
        let offline = offline_call_cost(&shape, (&params, &pp), 1, context - 1)?;
        println!(
            "the table is the online phase (--phase both); its offline phase (the projections' \
             and the head's SIP on R, attention's and SwiGLU's triples; COT extensions excluded) \
             is {:.3} MB in {} rounds per token",
            mb(offline.bytes()),
            offline.rounds
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_llama_7b_estimate_runs() {
        estimate("llama-7b", 128, false).unwrap();
        estimate("llama-7b", 128, true).unwrap();
        assert!(estimate("llama-7b", 0, true).is_err());
    }
}
