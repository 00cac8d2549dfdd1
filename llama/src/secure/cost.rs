//! Exact bytes and rounds of a call (T new positions after p cached ones) as functions of the
//! shape, from the `nn` operators' own cost functions, per component; COT extension traffic
//! (Ferret, amortised over the session) excluded. `tests/secure.rs` checks the offline phase's
//! against the channel's counters; `bench generate` prints them next to the measured ones and
//! uses them for the LLaMA-7B estimate.
use super::offline::{product_triple, PROJECTIONS};
use super::public::DecoderShape;
use crate::calibrate::NormShifts;
use crate::fixed_model::Projection;
use he_linear::embedding::EmbeddingLayout;
use he_linear::params::HeParams;
use mpc_core::{Party, Result};
use nn::activation::{piecewise_cost, piecewise_cots};
use nn::argmax::{argmax_cost, argmax_cots};
use nn::attention::attention_cost;
use nn::attention_offline::{attention_prepared_cost, attention_prepared_cots, AttentionTriples};
use nn::linear::Rescale;
use nn::linear_offline::{linear_online_cost, linear_online_cots};
use nn::norm::{norm_prescaled_cost, norm_prescaled_cots, Norm};
use nn::product::{product_cost, product_prepared_cost, product_prepared_cots};
use nn::rotary::{rotary_cost, rotary_cots};
use nn::sip_linear::sip_linear_cost;
use nn::sip_offline::sip_offline_cost;
use nn::triple::generate_cost;
use nn::Component;
use ot_nonlinear::approx::ApproxSet;
use ot_nonlinear::mpc::{Cost, CotDemand, Side};
use std::collections::HashMap;

/// Bytes of the client's announcement of a call's length.
pub const ANNOUNCE_BYTES: u64 = 8;

/// Cost of each projection shape, computed once per (rows, m, n): the single-phase SIP, or
/// the online step of a layer prepared offline ([`nn::sip_offline`]).
#[derive(Debug, Default)]
struct Linears {
    prepared: bool,
    known: HashMap<(usize, usize, usize), Cost>,
}

impl Linears {
    fn get(&mut self, params: &HeParams, k: usize, (m, n): (usize, usize)) -> Result<Cost> {
        if let Some(c) = self.known.get(&(k, m, n)) {
            return Ok(*c);
        }
        let c = if self.prepared {
            linear_online_cost(params, k, m, n, Rescale::Truncate)?
        } else {
            sip_linear_cost(params, k, m, n, Rescale::Truncate)?
        };
        self.known.insert((k, m, n), c);
        Ok(c)
    }
}

/// Exact cost of the offline phase of a generation whose calls have `calls` rows: the session
/// id and the plan, each call's material ([`offline_call_cost`]), the server's end marker
/// (`params`: the projections', `product_params`: the triples').
pub fn offline_cost(
    shape: &DecoderShape,
    params: (&HeParams, &HeParams),
    calls: &[usize],
) -> Result<Cost> {
    let mut cost = Cost {
        server_bytes: 0,
        client_bytes: 16 + 8 * (1 + calls.len() as u64),
        rounds: 1,
        first: Side::Client,
        last: Side::Client,
    };
    let mut past = 0;
    for &rows in calls {
        cost = cost.then(offline_call_cost(shape, params, rows, past)?);
        past += rows;
    }
    Ok(cost.then(Cost {
        server_bytes: 1,
        client_bytes: 0,
        rounds: 1,
        first: Side::Server,
        last: Side::Server,
    }))
}

/// Exact cost of one call's offline material (`rows` positions after `past`): per block its
/// projections' SIP on R, its attention triples and its SwiGLU product's triple (COT
/// extensions excluded), then the head's SIP on R.
pub fn offline_call_cost(
    shape: &DecoderShape,
    (params, product_params): (&HeParams, &HeParams),
    rows: usize,
    past: usize,
) -> Result<Cost> {
    let linear =
        |k: usize, (m, n): (usize, usize)| sip_offline_cost(params, k, m, n, Rescale::Truncate);
    let triples = AttentionTriples::generate_cost(product_params, shape.attention(rows, past))?;
    let product = generate_cost(product_params, &[product_triple(shape, rows)])?;
    let mut cost = Cost::default();
    for _ in 0..shape.n_layers {
        for p in PROJECTIONS {
            cost = cost.then(linear(rows, shape.projection(p))?);
        }
        for step in triples {
            cost = cost.then(step);
        }
        cost = cost.then(product);
    }
    Ok(cost.then(linear(1, (shape.hidden, shape.vocab))?))
}

/// The cost of one call by label (`embedding`, `layerNN/<component>`, `head`), in dataflow
/// order, and the whole call's cost (the labels chained, plus the announcement); `prepared`:
/// the projections, attention's products and the head run on offline material.
#[allow(clippy::too_many_arguments)]
pub fn call_cost(
    shape: &DecoderShape,
    set: &ApproxSet,
    shifts: &NormShifts,
    params: &HeParams,
    product_params: &HeParams,
    rows: usize,
    past: usize,
    prepared: bool,
) -> Result<(Vec<(String, Cost)>, Cost)> {
    shifts.check(shape.n_layers)?;
    let norm = |pair: [i32; 2], rows: usize, past: usize| {
        norm_prescaled_cost(
            Norm::RmsNorm,
            shape.hidden,
            &NormShifts::rows(pair, rows, past),
        )
    };
    let mut parts = Vec::new();
    let mut lin = Linears {
        prepared,
        known: HashMap::new(),
    };
    let (d, qw, kvw) = (shape.hidden, shape.q_width(), shape.kv_width());
    let layout = EmbeddingLayout::densest(params, shape.vocab, d)?;
    parts.push((
        Component::Embedding.label().to_string(),
        Cost {
            server_bytes: 0,
            client_bytes: layout.online_bytes(params, rows) as u64,
            rounds: 1,
            first: Side::Client,
            last: Side::Client,
        },
    ));
    for l in 0..shape.n_layers {
        let tag = |c: Component| c.in_layer(l);
        let attention = shape.attention(rows, past);
        let [qk, softmax, pv, normalize] = if prepared {
            attention_prepared_cost(set, l, attention, false)?
        } else {
            attention_cost(product_params, set, l, attention)?
        };
        let table = &set.layer(l).gelu;
        let product = if prepared {
            product_prepared_cost(rows * shape.ffn)?
        } else {
            product_cost(rows * shape.ffn)?
        };
        let activation = piecewise_cost(table, &set.plan.gelu, rows * shape.ffn).then(product);
        let p = |p: Projection| shape.projection(p);
        parts.extend([
            (
                tag(Component::NormAttention),
                norm(shifts.attention[l], rows, past)?,
            ),
            (
                tag(Component::LinearQkv),
                lin.get(params, rows, p(Projection::Qkv))?,
            ),
            (tag(Component::Rotary), rotary_cost(rows * (qw + kvw))?),
            (tag(Component::AttentionQk), qk),
            (tag(Component::AttentionSoftmax), softmax),
            (tag(Component::AttentionPv), pv),
            (tag(Component::AttentionNormalize), normalize),
            (
                tag(Component::LinearO),
                lin.get(params, rows, p(Projection::O))?,
            ),
            (tag(Component::NormFfn), norm(shifts.ffn[l], rows, past)?),
            (
                tag(Component::LinearH1),
                lin.get(params, rows, p(Projection::GateUp))?,
            ),
            (tag(Component::Activation), activation),
            (
                tag(Component::LinearH2),
                lin.get(params, rows, p(Projection::Down))?,
            ),
        ]);
    }
    let head = norm(shifts.output, 1, past + rows - 1)?
        .then(lin.get(params, 1, (d, shape.vocab))?)
        .then(argmax_cost(1, shape.vocab, Party::Client));
    parts.push((Component::Head.label().to_string(), head));
    let announce = Cost {
        server_bytes: 0,
        client_bytes: ANNOUNCE_BYTES,
        rounds: 1,
        first: Side::Client,
        last: Side::Client,
    };
    let total = parts.iter().fold(announce, |acc, (_, c)| acc.then(*c));
    Ok((parts, total))
}

/// COTs one call on offline material draws (`rows` positions after `past`), both directions:
/// per block the two norms, the projections' up-casts, rotary, attention on triples and the
/// activation with its product, then the head's norm, up-cast and argmax. `tests/secure.rs`
/// checks it against the session's counters.
pub fn call_cots(
    shape: &DecoderShape,
    set: &ApproxSet,
    shifts: &NormShifts,
    params: &HeParams,
    rows: usize,
    past: usize,
) -> Result<CotDemand> {
    shifts.check(shape.n_layers)?;
    let norm = |pair: [i32; 2], rows: usize, past: usize| {
        norm_prescaled_cots(
            Norm::RmsNorm,
            shape.hidden,
            &NormShifts::rows(pair, rows, past),
        )
    };
    let linear = |rows: usize, p: Projection| {
        linear_online_cots(params, rows, shape.projection(p).1, Rescale::Truncate)
    };
    let (qw, kvw) = (shape.q_width(), shape.kv_width());
    let mut d = CotDemand::default();
    for l in 0..shape.n_layers {
        let n = rows * shape.ffn;
        d = d
            .plus(norm(shifts.attention[l], rows, past)?)
            .plus(linear(rows, Projection::Qkv)?)
            .plus(rotary_cots(rows * (qw + kvw))?)
            .plus(attention_prepared_cots(
                set,
                l,
                shape.attention(rows, past),
                false,
            )?)
            .plus(linear(rows, Projection::O)?)
            .plus(norm(shifts.ffn[l], rows, past)?)
            .plus(linear(rows, Projection::GateUp)?)
            .plus(piecewise_cots(&set.layer(l).gelu, &set.plan.gelu, n))
            .plus(product_prepared_cots(n)?)
            .plus(linear(rows, Projection::Down)?);
    }
    Ok(d.plus(norm(shifts.output, 1, past + rows - 1)?)
        .plus(linear_online_cots(
            params,
            1,
            shape.vocab,
            Rescale::Truncate,
        )?)
        .plus(argmax_cots(1, shape.vocab)))
}

/// COTs of each call of an offline plan ([`call_cots`] at each call's rows and past).
pub fn plan_call_cots(
    shape: &DecoderShape,
    set: &ApproxSet,
    shifts: &NormShifts,
    params: &HeParams,
    calls: &[usize],
) -> Result<Vec<CotDemand>> {
    let mut past = 0;
    calls
        .iter()
        .map(|&rows| {
            let d = call_cots(shape, set, shifts, params, rows, past);
            past += rows;
            d
        })
        .collect()
}

/// COTs of every call of an offline plan ([`plan_call_cots`] summed).
pub fn plan_cots(
    shape: &DecoderShape,
    set: &ApproxSet,
    shifts: &NormShifts,
    params: &HeParams,
    calls: &[usize],
) -> Result<CotDemand> {
    Ok(plan_call_cots(shape, set, shifts, params, calls)?
        .into_iter()
        .fold(CotDemand::default(), CotDemand::plus))
}

/// Coefficients decrypted under either key in a call (an upper bound for each key holder):
/// the projections' and the head's outputs, attention's products (scores, P·V, the
/// normalisation) and the embedding's rows.
pub fn revealed(shape: &DecoderShape, rows: usize, past: usize) -> u64 {
    let keys = (past + rows) as u64;
    let (rows, d) = (rows as u64, shape.hidden as u64);
    let (heads, dh) = (shape.n_heads as u64, shape.head_dim as u64);
    let projections =
        (shape.q_width() + 2 * shape.kv_width()) as u64 + d + 2 * shape.ffn as u64 + d;
    let attention = heads * (keys + 2 * dh);
    rows * (shape.n_layers as u64 * (projections + attention) + d) + shape.vocab as u64
}
