//! The SVG chart of the end-to-end report (`--plot`): the online phase's seconds per layer by
//! component, and the two phases' totals (offline, online) side by side.
use super::report::{Report, Totals, COMPONENTS, MB};

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;")
}

/// A stacked bar per layer (seconds by component), self-contained SVG.
pub(super) fn svg_chart(r: &Report) -> String {
    const COLORS: [&str; 8] = [
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    ];
    let (w, h, left, bottom, top) = (900.0, 420.0, 60.0, 40.0, 30.0);
    let layers = r.per_layer.len().max(1);
    let max = r
        .per_layer
        .iter()
        .map(|l| l.iter().map(|c| c.wall_s).sum::<f64>())
        .fold(1e-9, f64::max);
    let plot_h = h - bottom - top;
    let bar_w = (w - left - 180.0) / layers as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <text x=\"{left}\" y=\"18\" font-size=\"13\">{} secure inference, {} tokens, net {}: seconds per layer by component</text>\n",
        xml_escape(&r.model), r.seq_len, r.net
    );
    for (l, comps) in r.per_layer.iter().enumerate() {
        let x = left + l as f64 * bar_w;
        let mut y = h - bottom;
        for (i, c) in comps.iter().enumerate() {
            let bh = c.wall_s / max * plot_h;
            y -= bh;
            s += &format!(
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>layer {l} {}: {:.3} s, {:.2} MB, {} rounds</title></rect>\n",
                x + 2.0,
                bar_w - 4.0,
                COLORS[i % COLORS.len()],
                xml_escape(&c.name),
                c.wall_s,
                c.bytes as f64 / MB,
                c.rounds
            );
        }
        s += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{l}</text>\n",
            x + bar_w / 2.0,
            h - bottom + 14.0
        );
    }
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let y = h - bottom - plot_h * k as f64 / 4.0;
        s += &format!(
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ccc\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.2} s</text>\n",
            left + bar_w * layers as f64,
            left - 4.0,
            y + 4.0
        );
    }
    for (i, (name, _)) in COMPONENTS.iter().enumerate() {
        let name = xml_escape(name);
        let y = top + 16.0 * i as f64;
        let x = w - 170.0;
        s += &format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{name}</text>\n",
            COLORS[i % COLORS.len()],
            x + 16.0,
            y + 10.0
        );
    }
    s += &phase_bars(r, w - 170.0, top + 16.0 * (COMPONENTS.len() as f64 + 1.0));
    s += &format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">layer</text>\n</svg>\n",
        left + bar_w * layers as f64 / 2.0,
        h - 6.0
    );
    s
}

/// The phases' totals as horizontal bars (seconds, to one scale) at (x, y), with their bytes
/// and rounds: what a query waits for (online) next to what runs before it (offline).
fn phase_bars(r: &Report, x: f64, y: f64) -> String {
    let phases: Vec<(&str, &Totals)> = [("offline", &r.offline), ("online", &r.online)]
        .into_iter()
        .filter_map(|(name, t)| t.as_ref().map(|t| (name, t)))
        .collect();
    let max = phases.iter().map(|(_, t)| t.wall_s).fold(1e-9, f64::max);
    let mut s = format!("<text x=\"{x}\" y=\"{y}\">phases (s)</text>\n");
    for (i, (name, t)) in phases.iter().enumerate() {
        let (by, bw) = (y + 8.0 + 34.0 * i as f64, 150.0 * t.wall_s / max);
        s += &format!(
            "<rect x=\"{x}\" y=\"{by:.1}\" width=\"{bw:.1}\" height=\"12\" fill=\"{}\"/>\n\
             <text x=\"{x}\" y=\"{:.1}\">{name}: {:.1} s, {:.1} MB, {} rounds</text>\n",
            if i == 0 { "#bab0ac" } else { "#4e79a7" },
            by + 24.0,
            t.wall_s,
            t.bytes as f64 / MB,
            t.rounds
        );
    }
    s
}
