//! `bench ot`: random-COT throughput of IKNP and Ferret, over the in-memory channel and over
//! TCP loopback, both parties in one process on one thread each.
//!
//! For each protocol and transport: the AES path the CPU runs (VAES-512 or portable), setup
//! time and bytes (both directions), the steady-state rate (COTs per second once set up), the
//! rate including setup, and the bits per COT of the steady state (both directions). `--json FILE` writes the rows as a JSON array.
//!
//! The machine may be shared, so wall-clock rates understate the protocols when other work
//! runs. Each row also reports the CPU time of each party's thread during the steady state
//! (Linux `/proc/thread-self/stat`) and `cot_per_cpu_s` = n / the larger of the two: the rate
//! with a core per party and nothing else running (waits for the peer are not CPU time).
use crate::seed::RunSeed;
use mpc_core::{AesPrg, Channel, Error, Party, Result};
use ot_nonlinear::block::huge_vec_faulted;
use ot_nonlinear::{
    Block, FerretReceiver, FerretSender, IknpReceiver, IknpSender, RandomCotReceiver,
    RandomCotSender,
};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Arguments of `bench ot`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Ferret random COTs to generate after setup.
    #[arg(long, default_value_t = 10_000_000)]
    n: usize,
    /// IKNP random COTs to generate after setup.
    #[arg(long, default_value_t = 4_000_000)]
    iknp_n: usize,
    /// COTs requested per `fill` call (the buffer is allocated and faulted in before the
    /// clock starts). The default, 2^25, is what emp-ot's Ferret benchmark asks per call;
    /// a call for at least a whole Ferret iteration (10 002 085) is produced in place.
    #[arg(long, default_value_t = 1 << 25)]
    chunk: usize,
    /// Transports to run: mem, tcp or both.
    #[arg(long, default_value = "both")]
    transport: String,
    /// Write the rows as a JSON array to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// One measured row.
#[derive(serde::Serialize, Debug)]
struct Row {
    protocol: &'static str,
    transport: &'static str,
    /// The AES path of this run: `vaes512` or `portable` (see `ot_nonlinear::aes_batch`).
    aes: &'static str,
    n: usize,
    setup_s: f64,
    setup_bytes: u64,
    cot_per_s: f64,
    cot_per_s_with_setup: f64,
    bits_per_cot: f64,
    cpu_s_sender: f64,
    cpu_s_receiver: f64,
    cot_per_cpu_s: f64,
}

/// CPU seconds (user + system) of the calling thread, from `/proc/thread-self/stat` (clock
/// ticks of 1/100 s, the Linux `USER_HZ`); 0 where unavailable.
fn thread_cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name start at field 3 (state).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0 // utime (field 14) + stime (field 15)
}

fn channels(transport: &str) -> Result<(Channel, Channel)> {
    match transport {
        "mem" => Ok(Channel::mem_pair()),
        "tcp" => {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let accept = std::thread::spawn(move || Channel::tcp_accept(&listener));
            let a = Channel::tcp_connect(addr, Duration::from_secs(5))?;
            let b = accept
                .join()
                .map_err(|_| Error::Unavailable("TCP accept thread panicked".into()))??;
            Ok((a, b))
        }
        other => Err(Error::InvalidArgument(format!(
            "unknown transport {other:?} (mem, tcp)"
        ))),
    }
}

/// Largest call size (COTs): the two parties' buffers then take 16 GB of this 24 GB machine.
const MAX_CALL: usize = 1 << 29;

/// Draws `n` COTs from a source, given as `fill(channel, buffer)`, by calls of at most
/// `buf.len()`.
fn drain(
    ch: &mut Channel,
    n: usize,
    buf: &mut [Block],
    mut fill: impl FnMut(&mut Channel, &mut [Block]) -> Result<u64>,
) -> Result<()> {
    let mut left = n;
    while left > 0 {
        let take = left.min(buf.len());
        fill(ch, &mut buf[..take])?;
        left -= take;
    }
    ch.flush()
}

/// Runs one protocol: `recv_side` on a thread, the sender here; times and counts on the sender.
fn measure<S: RandomCotSender, R: RandomCotReceiver + 'static>(
    protocol: &'static str,
    transport: &'static str,
    n: usize,
    chunk: usize,
    setup_send: fn(&mut Channel, &mut AesPrg) -> Result<S>,
    setup_recv: fn(&mut Channel, &mut AesPrg) -> Result<R>,
    seed: RunSeed,
) -> Result<Row> {
    let (mut cs, mut cr) = channels(transport)?;
    let name = format!("ot/{protocol}/{transport}");
    let mut send_rng = AesPrg::new(seed.party(&name, Party::Server));
    let mut recv_rng = AesPrg::new(seed.party(&name, Party::Client));
    // Both callers' buffers are faulted in before any clock starts, as the warm-up call of
    // emp-ot's benchmark does for its buffer.
    let mut send_buf = huge_vec_faulted(chunk.min(n));
    let mut recv_buf = huge_vec_faulted(chunk.min(n));
    let receiver = std::thread::spawn(move || -> Result<f64> {
        let mut r = setup_recv(&mut cr, &mut recv_rng)?;
        let c0 = thread_cpu_s();
        drain(&mut cr, n, &mut recv_buf, |ch, buf| r.fill(ch, buf))?;
        Ok(thread_cpu_s() - c0)
    });
    let t0 = Instant::now();
    let mut s = setup_send(&mut cs, &mut send_rng)?;
    let setup_s = t0.elapsed().as_secs_f64();
    let setup = cs.totals();
    let (t1, c1) = (Instant::now(), thread_cpu_s());
    drain(&mut cs, n, &mut send_buf, |ch, buf| s.fill(ch, buf))?;
    let cpu_s_sender = thread_cpu_s() - c1;
    let cpu_s_receiver = receiver
        .join()
        .map_err(|_| Error::Unavailable("receiver thread panicked".into()))??;
    let steady_s = t1.elapsed().as_secs_f64();
    let total = cs.totals();
    let steady_bytes = total.bytes() - setup.bytes();
    Ok(Row {
        protocol,
        transport,
        aes: if mpc_core::aes_batch::has_vaes() {
            "vaes512"
        } else {
            "portable"
        },
        n,
        setup_s,
        setup_bytes: setup.bytes(),
        cot_per_s: n as f64 / steady_s,
        cot_per_s_with_setup: n as f64 / (setup_s + steady_s),
        bits_per_cot: 8.0 * steady_bytes as f64 / n as f64,
        cpu_s_sender,
        cpu_s_receiver,
        cot_per_cpu_s: n as f64 / cpu_s_sender.max(cpu_s_receiver),
    })
}

/// Runs `bench ot`.
pub fn run(args: Args, seed: RunSeed) -> Result<()> {
    let transports: &[&'static str] = match args.transport.as_str() {
        "both" => &["mem", "tcp"],
        "mem" => &["mem"],
        "tcp" => &["tcp"],
        other => {
            return Err(Error::InvalidArgument(format!(
                "--transport {other:?}: expected mem, tcp or both"
            )))
        }
    };
    if args.chunk == 0 {
        return Err(Error::InvalidArgument(
            "--chunk 0: each call must ask for at least one COT".into(),
        ));
    }
    let call = args.chunk.min(args.n.max(args.iknp_n));
    if call > MAX_CALL {
        return Err(Error::InvalidArgument(format!(
            "--chunk {}: the two callers' buffers of {call} COTs would take {} GB; at most {MAX_CALL} COTs per call",
            args.chunk,
            (call as u128 * 32) >> 30
        )));
    }
    let mut rows = Vec::new();
    for &transport in transports {
        rows.push(measure(
            "iknp",
            transport,
            args.iknp_n,
            args.chunk,
            IknpSender::setup,
            IknpReceiver::setup,
            seed,
        )?);
        rows.push(measure(
            "ferret",
            transport,
            args.n,
            args.chunk,
            FerretSender::setup,
            FerretReceiver::setup,
            seed,
        )?);
    }
    println!(
        "| protocol | transport | aes | n | setup_s | setup_bytes | cot_per_s (steady) | cot_per_s (incl. setup) | bits_per_cot | cpu_s sender / receiver | cot_per_cpu_s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.3} | {} | {:.2} M | {:.2} M | {:.3} | {:.2} / {:.2} | {:.2} M |",
            r.protocol,
            r.transport,
            r.aes,
            r.n,
            r.setup_s,
            r.setup_bytes,
            r.cot_per_s / 1e6,
            r.cot_per_s_with_setup / 1e6,
            r.bits_per_cot,
            r.cpu_s_sender,
            r.cpu_s_receiver,
            r.cot_per_cpu_s / 1e6
        );
    }
    if let Some(path) = args.json {
        let json = serde_json::to_string_pretty(&rows)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode JSON: {e}")))?;
        std::fs::write(&path, json)?;
    }
    Ok(())
}
