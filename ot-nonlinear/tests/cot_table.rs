//! COTs per element of every primitive and function, measured on a run (the difference of
//! the sessions' COT counters around the call) and asserted equal to its `*_cots` function;
//! the test prints the table of docs/protocols/nonlinear.md ("COTs per element"): COTs and
//! bits per element (the protocol's own bytes plus its COTs at Ferret's 0.2141 bits each).
mod common;

use common::{both_sessions, edge_shares};
use mpc_core::AesPrg;
use mpc_core::{Result, Ring};
use ot_nonlinear::approx::{ApproxSet, ScoreMask};
use ot_nonlinear::functions::exp::{exp, exp_breakpoints, exp_cost, exp_cots};
use ot_nonlinear::functions::gelu::{gelu, gelu_cost, gelu_spec};
use ot_nonlinear::functions::layernorm::{layernorm, layernorm_cost, layernorm_cots};
use ot_nonlinear::functions::piecewise::{piecewise_cots, Output};
use ot_nonlinear::functions::softmax::{softmax, softmax_cost, softmax_cots};
use ot_nonlinear::mpc::and::{and_cost, and_cots};
use ot_nonlinear::mpc::b2a::{b2a_cost, b2a_cots};
use ot_nonlinear::mpc::drelu::{
    drelu_cost, drelu_cots, drelu_digit, drelu_digit_cost, drelu_digit_cots, drelu_lanes_cost,
    drelu_lanes_cots, lanes_minus, wrap_cost, wrap_cots,
};
use ot_nonlinear::mpc::lut::{lut_cost, lut_cots};
use ot_nonlinear::mpc::millionaire::{millionaire_cost, millionaire_cots};
use ot_nonlinear::mpc::mux::{mux_cost, mux_cots, mux_many, mux_many_cost};
use ot_nonlinear::mpc::product::{
    mul_cost, mul_cots, mul_narrow_cost, mul_narrow_cots, square_cost, square_cots,
    square_narrow_cost, square_narrow_cots,
};
use ot_nonlinear::mpc::relu::{relu_cost, relu_cots};
use ot_nonlinear::mpc::trunc::{trunc_cost, trunc_cots};
use ot_nonlinear::mpc::{
    and, b2a, drelu, drelu_lanes, lut, millionaire, mul_narrow, mux, relu, square, square_narrow,
    trunc_cast, wrap, Cost, CotDemand, Session, TruncKind,
};
use ot_nonlinear::{Block, LpnParams};

/// Elements per primitive run (functions use their own shapes below).
const N: usize = 1000;

/// One row of the table: what ran, on how many elements, the COTs it drew and announced, and
/// its exact message cost.
struct Row {
    name: String,
    elements: usize,
    drawn: CotDemand,
    announced: CotDemand,
    cost: Cost,
}

/// Runs `f` and returns the COTs it drew in each direction.
fn drawn(sess: &mut Session, f: impl FnOnce(&mut Session) -> Result<()>) -> Result<CotDemand> {
    let before = sess.cots_drawn();
    f(sess)?;
    let after = sess.cots_drawn();
    Ok(CotDemand {
        server: after.server - before.server,
        client: after.client - before.client,
    })
}

/// This party's shares of `n` pseudo-random values of `ring` (a fixed seed per party).
fn shares(sess: &Session, n: usize, ring: Ring, seed: u128) -> Vec<u64> {
    let mut prg = AesPrg::from_block(Block(seed * 2 + sess.is_server() as u128));
    let mut b = vec![Block::ZERO; n];
    prg.fill_blocks(&mut b);
    b.iter().map(|b| ring.reduce(b.low_u64())).collect()
}

/// This party's shares of `n` fixed-point values (18 fraction bits) spread over [−6, 6].
fn fixed_shares(sess: &Session, n: usize, seed: u128) -> Vec<u64> {
    let x: Vec<u64> = (0..n)
        .map(|i| ((i as f64 / n as f64 * 12.0 - 6.0) * (1u64 << 18) as f64) as i64 as u64)
        .collect();
    let (s, c) = edge_shares(&x, seed);
    if sess.is_server() {
        s
    } else {
        c
    }
}

fn primitives(sess: &mut Session) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut push = |name: String, drawn: CotDemand, announced: CotDemand, cost: Cost| {
        rows.push(Row {
            name,
            elements: N,
            drawn,
            announced,
            cost,
        })
    };
    let bits: Vec<bool> = shares(sess, N, Ring::new(1)?, 1)
        .iter()
        .map(|&v| v == 1)
        .collect();
    let d = drawn(sess, |s| and(s, &bits, &bits).map(drop))?;
    push("AND".into(), d, and_cots(N), and_cost(N, 1));
    for (l, m) in [(16u32, 4u32), (32, 4), (63, 4)] {
        let x = shares(sess, N, Ring::new(l)?, 2);
        let d = drawn(sess, |s| millionaire(s, &x, l, m).map(drop))?;
        let name = format!("millionaire, {l} bits, {m}-bit digits");
        push(
            name,
            d,
            millionaire_cots(N, l, m)?,
            millionaire_cost(N, l, m)?,
        );
    }
    for l in [16u32, 32, 64] {
        let ring = Ring::new(l)?;
        let x = shares(sess, N, ring, 3);
        let d = drawn(sess, |s| drelu(s, &x, ring).map(drop))?;
        push(
            format!("DReLU, Z_2^{l}"),
            d,
            drelu_cots(N, ring),
            drelu_cost(N, ring),
        );
        let d = drawn(sess, |s| wrap(s, &x, ring).map(drop))?;
        push(
            format!("wrap, Z_2^{l}"),
            d,
            wrap_cots(N, ring),
            wrap_cost(N, ring),
        );
        let d = drawn(sess, |s| mux(s, &bits, &x, ring).map(drop))?;
        push(format!("mux, Z_2^{l}"), d, mux_cots(N), mux_cost(N, ring));
        let d = drawn(sess, |s| b2a(s, &bits, ring, 0).map(drop))?;
        push(
            format!("B2A, Z_2^{l}"),
            d,
            b2a_cots(N, ring, 0),
            b2a_cost(N, ring, 0),
        );
        let d = drawn(sess, |s| ot_nonlinear::mpc::mul(s, &x, &x, ring).map(drop))?;
        push(
            format!("product x·y, Z_2^{l}"),
            d,
            mul_cots(N, ring),
            mul_cost(N, 1, ring),
        );
        let d = drawn(sess, |s| square(s, &x, ring).map(drop))?;
        push(
            format!("square, Z_2^{l}"),
            d,
            square_cots(N, ring),
            square_cost(N, ring),
        );
        let d = drawn(sess, |s| relu(s, &x, ring).map(drop))?;
        push(
            format!("ReLU, Z_2^{l}"),
            d,
            relu_cots(N, ring),
            relu_cost(N, ring),
        );
    }
    // The cuts: two comparisons sharing their leaves (GELU's), 31 (rsqrt's); the narrow
    // square and product at the k of GELU (Z_2^22), exp (Z_2^25) and LayerNorm (Z_2^38).
    // Per element of the client (lanes counted in the name).
    for (l, lanes) in [(17u32, 2usize), (34, 31)] {
        let ring = Ring::new(l)?;
        let x = shares(sess, N, ring, 5);
        let input = lanes_minus(sess.is_server(), &x, &vec![7; lanes], ring);
        let d = drawn(sess, |s| drelu_lanes(s, &input, ring, lanes).map(drop))?;
        push(
            format!("DReLU in {lanes} lanes, Z_2^{l}"),
            d,
            drelu_lanes_cots(N, lanes, ring),
            drelu_lanes_cost(N, lanes, ring),
        );
    }
    // The Softmax max's comparisons on 7-bit digits and its muxes of (x, y) on one COT.
    let r15 = Ring::new(15)?;
    let x = shares(sess, N, r15, 8);
    let d = drawn(sess, |s| drelu_digit(s, &x, r15, 7).map(drop))?;
    push(
        "DReLU, Z_2^15, 7-bit digits".into(),
        d,
        drelu_digit_cots(N, r15, 7)?,
        drelu_digit_cost(N, r15, 7)?,
    );
    let r35 = Ring::new(35)?;
    let x = shares(sess, 2 * N, r35, 9);
    let d = drawn(sess, |s| mux_many(s, &bits, &x, 2, r35).map(drop))?;
    push(
        "mux of 2 values, Z_2^35".into(),
        d,
        mux_cots(N),
        mux_many_cost(N, 2, r35),
    );
    for (l, k) in [(22u32, 13u32), (25, 15), (38, 20)] {
        let ring = Ring::new(l)?;
        let x = shares(sess, N, ring, 6);
        let d = drawn(sess, |s| square_narrow(s, &x, ring, k).map(drop))?;
        push(
            format!("square, Z_2^{l}, {k}-bit operand"),
            d,
            square_narrow_cots(N, ring, k),
            square_narrow_cost(N, ring, k),
        );
    }
    let r25 = Ring::new(25)?;
    let x = shares(sess, N, r25, 7);
    let d = drawn(sess, |s| mul_narrow(s, &x, &x, r25, 18).map(drop))?;
    push(
        "product x·y, Z_2^25, 18-bit operands".into(),
        d,
        mul_narrow_cots(N, r25, 18),
        mul_narrow_cost(N, r25, 18),
    );
    let (r22, r30, r64) = (Ring::new(22)?, Ring::new(30)?, Ring::new(64)?);
    for (from, to, shift, kind) in [
        (r22, r22, 8, TruncKind::KnownMsb),
        (r22, r30, 0, TruncKind::KnownMsb),
        (r30, r64, 0, TruncKind::KnownMsb),
        (r64, r64, 18, TruncKind::OneBitError),
        (r64, r64, 18, TruncKind::Faithful),
        (r64, r22, 12, TruncKind::KnownMsb),
    ] {
        let (Ok(announced), Ok(cost)) = (
            trunc_cots(N, from, to, shift, kind),
            trunc_cost(N, from, to, shift, kind),
        ) else {
            continue;
        };
        let x = shares(sess, N, from, 4);
        let d = drawn(sess, |s| trunc_cast(s, &x, from, to, shift, kind).map(drop))?;
        let name = format!(
            "truncation/cast {kind:?}, Z_2^{} → Z_2^{}, by {shift}",
            from.bits(),
            to.bits()
        );
        push(name, d, announced, cost);
    }
    let x = shares(sess, N, Ring::new(5)?, 5);
    let table: Vec<u64> = (0..32u64).map(|i| i * i).collect();
    let t = sess.is_server().then_some(&table[..]);
    let d = drawn(sess, |s| lut(s, &x, 5, t, 1, r64).map(drop))?;
    push(
        "LUT, 5-bit index, Z_2^64".into(),
        d,
        lut_cots(N, 5),
        lut_cost(N, 5, 1, r64),
    );
    Ok(rows)
}

/// The functions on small shapes (their `*_cots` scale linearly in elements and rows).
fn functions(sess: &mut Session) -> Result<Vec<Row>> {
    let set = ApproxSet::nimbus();
    let mut rows = Vec::new();
    let x = fixed_shares(sess, N, 6);
    let (spec, bp) = gelu_spec(&set, 0);
    let bp = sess.is_server().then_some(bp);
    let d = drawn(sess, |s| gelu(s, &spec, bp, &x).map(drop))?;
    rows.push(Row {
        name: "GELU (Nimbus)".into(),
        elements: N,
        drawn: d,
        announced: piecewise_cots(&spec, N, Output::Linear),
        cost: gelu_cost(&spec, N),
    });
    let neg: Vec<u64> = fixed_shares(sess, N, 7);
    let ebp = exp_breakpoints(&set, 0);
    let ebp = sess.is_server().then_some(&ebp[..]);
    let d = drawn(sess, |s| exp(s, &set, 0, ebp, &neg).map(drop))?;
    rows.push(Row {
        name: "exp (Nimbus)".into(),
        elements: N,
        drawn: d,
        announced: exp_cots(&set, 0, N),
        cost: exp_cost(&set, 0, N),
    });
    let (r, c) = (8, 128);
    let x = fixed_shares(sess, r * c, 8);
    let d = drawn(sess, |s| {
        softmax(s, &set, 0, r, c, &x, ebp, ScoreMask::None).map(drop)
    })?;
    rows.push(Row {
        name: format!("Softmax (Nimbus), rows of {c}"),
        elements: r * c,
        drawn: d,
        announced: softmax_cots(&set, 0, r, c),
        cost: softmax_cost(&set, 0, r, c),
    });
    let (r, c) = (4, 768);
    let x = fixed_shares(sess, r * c, 9);
    let d = drawn(sess, |s| layernorm(s, &x, c, 1e-12).map(drop))?;
    rows.push(Row {
        name: format!("LayerNorm, rows of {c}"),
        elements: r * c,
        drawn: d,
        announced: layernorm_cots(r, c),
        cost: layernorm_cost(r, c),
    });
    Ok(rows)
}

fn print_table(rows: &[Row]) {
    println!("| operation | COTs per element (server → client + client → server) | bits per element (messages + COTs) |");
    println!("|---|---|---|");
    for r in rows {
        let n = r.elements as f64;
        let cots = (r.drawn.server + r.drawn.client) as f64;
        let bits = 8.0 * r.cost.bytes() as f64 / n + cots / n * LpnParams::MAIN.bits_per_cot();
        println!(
            "| {} | {:.2} ({:.2} + {:.2}) | {:.1} |",
            r.name,
            cots / n,
            r.drawn.server as f64 / n,
            r.drawn.client as f64 / n,
            bits
        );
    }
}

/// Runs `rows` as both parties, asserts that both count the same COTs and that they are the
/// announced ones, and prints the table.
fn check(rows: fn(&mut Session) -> Result<Vec<Row>>) {
    let ((server, _), (client, _)) = both_sessions("none", rows);
    assert_eq!(server.len(), client.len());
    for (r, c) in server.iter().zip(&client) {
        assert_eq!(r.drawn, c.drawn, "{}: both parties count the same", r.name);
        assert_eq!(r.drawn, r.announced, "{}: drawn vs *_cots", r.name);
    }
    print_table(&server);
}

#[test]
fn every_primitive_draws_the_cots_it_announces() {
    check(primitives);
}

#[test]
fn every_function_draws_the_cots_it_announces() {
    check(functions);
}

/// COTs of one BERT-base block (sequence 128: GELU on 128 × 3 072, Softmax on 12 heads × 128
/// rows of 128, two LayerNorms on 128 rows of 768) under both approximation sets, from the
/// `*_cots` functions the tests above check against runs, against the baseline before the cuts
/// of issue 21 item 2 (docs/protocols/nonlinear.md, "COTs per element"): comparisons in lanes
/// sharing their leaf OTs, the narrow square and product, the Softmax max's tournament
/// reshaped (pairs first, 7-bit digits, one-hot sums, one mux COT per (x, y)).
#[test]
fn bert_base_block_cots() {
    let (seq, hidden, inter, heads) = (128, 768, 3072, 12);
    let total = |d: CotDemand| d.server + d.client;
    let mut got = Vec::new();
    for (name, set) in [("nimbus", ApproxSet::nimbus()), ("puma", ApproxSet::puma())] {
        let (spec, _) = gelu_spec(&set, 0);
        let gelu = total(piecewise_cots(&spec, seq * inter, Output::Linear));
        let softmax = total(softmax_cots(&set, 0, heads * seq, seq));
        let layernorm = 2 * total(layernorm_cots(seq, hidden));
        println!("{name}: GELU {gelu}, Softmax {softmax}, LayerNorm {layernorm} COTs per block");
        got.push((name, gelu, softmax, layernorm));
    }
    let baseline = [
        ("nimbus", 28_311_552, 30_908_928, 8_136_192),
        ("puma", 124_256_256, 117_613_056, 8_136_192),
    ];
    for (g, b) in got.iter().zip(&baseline) {
        let (now, before) = (g.1 + g.2 + g.3, b.1 + b.2 + b.3);
        println!(
            "{}: {now} COTs per block, {before} before: {:.1} % fewer",
            g.0,
            100.0 * (1.0 - now as f64 / before as f64)
        );
    }
    assert_eq!(
        got,
        vec![
            ("nimbus", 19_267_584, 20_540_928, 4_753_152),
            ("puma", 87_293_952, 111_177_216, 4_753_152)
        ]
    );
}
