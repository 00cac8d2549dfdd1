//! Frame carriers under a [`Channel`](crate::Channel): an in-memory pair, TCP, and a real-time
//! network shaper that imposes bandwidth and one-way latency on any of them.
//!
//! A frame is one flushed run of bytes plus the sender's logical clock (used to count rounds).
//! On TCP a frame is `len: u32 LE | clock: u32 LE | payload`; the 8-byte header is transport
//! framing and is not counted as protocol communication.
use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest frame a receiver accepts; senders split larger writes (see `Channel`).
pub const MAX_FRAME: usize = 64 << 20;

/// One flushed run of bytes with the sender's logical clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Sender's round clock when the frame was flushed.
    pub clock: u64,
    /// Payload.
    pub data: Vec<u8>,
}

/// Sending half of a connection.
pub trait FrameSender: Send {
    /// Hands one frame to the carrier.
    fn send_frame(&mut self, frame: Frame) -> Result<()>;
}

/// Receiving half of a connection.
pub trait FrameReceiver: Send {
    /// Waits at most `timeout` for the next frame.
    fn recv_frame(&mut self, timeout: Duration) -> Result<Frame>;
}

/// In-memory sending half (a thread-safe queue).
#[derive(Debug)]
pub struct MemSender(mpsc::Sender<Frame>);
/// In-memory receiving half.
#[derive(Debug)]
pub struct MemReceiver(mpsc::Receiver<Frame>);

/// Two connected in-memory endpoints: `(a_tx, a_rx), (b_tx, b_rx)`.
pub fn mem_pair() -> ((MemSender, MemReceiver), (MemSender, MemReceiver)) {
    let (a_tx, b_rx) = mpsc::channel();
    let (b_tx, a_rx) = mpsc::channel();
    (
        (MemSender(a_tx), MemReceiver(a_rx)),
        (MemSender(b_tx), MemReceiver(b_rx)),
    )
}

impl FrameSender for MemSender {
    fn send_frame(&mut self, frame: Frame) -> Result<()> {
        self.0.send(frame).map_err(|_| Error::Disconnected)
    }
}

impl FrameReceiver for MemReceiver {
    fn recv_frame(&mut self, timeout: Duration) -> Result<Frame> {
        self.0.recv_timeout(timeout).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => Error::Timeout(timeout),
            mpsc::RecvTimeoutError::Disconnected => Error::Disconnected,
        })
    }
}

/// TCP sending half.
#[derive(Debug)]
pub struct TcpSender(TcpStream);
/// TCP receiving half (buffered).
#[derive(Debug)]
pub struct TcpReceiver {
    stream: std::io::BufReader<TcpStream>,
    timeout: Option<Duration>,
}

/// Splits a connected stream into frame halves (sets `TCP_NODELAY`).
pub fn tcp_split(stream: TcpStream) -> Result<(TcpSender, TcpReceiver)> {
    stream.set_nodelay(true)?;
    let reader = stream.try_clone()?;
    Ok((
        TcpSender(stream),
        TcpReceiver {
            stream: std::io::BufReader::with_capacity(1 << 20, reader),
            timeout: None,
        },
    ))
}

impl FrameSender for TcpSender {
    fn send_frame(&mut self, frame: Frame) -> Result<()> {
        if frame.data.len() > MAX_FRAME {
            return Err(Error::TooLarge {
                len: frame.data.len() as u64,
                max: MAX_FRAME as u64,
            });
        }
        let mut header = [0u8; 8];
        header[..4].copy_from_slice(&(frame.data.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&(frame.clock.min(u32::MAX as u64) as u32).to_le_bytes());
        let write = |s: &mut TcpStream| -> std::io::Result<()> {
            s.write_all(&header)?;
            s.write_all(&frame.data)?;
            s.flush()
        };
        write(&mut self.0).map_err(map_io)
    }
}

fn map_io(e: std::io::Error) -> Error {
    use std::io::ErrorKind::*;
    match e.kind() {
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected => {
            Error::Disconnected
        }
        _ => Error::Io(e),
    }
}

impl FrameReceiver for TcpReceiver {
    fn recv_frame(&mut self, timeout: Duration) -> Result<Frame> {
        if self.timeout != Some(timeout) {
            self.stream.get_ref().set_read_timeout(Some(timeout))?;
            self.timeout = Some(timeout);
        }
        let map = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                Error::Timeout(timeout)
            }
            _ => map_io(e),
        };
        let mut header = [0u8; 8];
        self.stream.read_exact(&mut header).map_err(map)?;
        let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        let clock = u32::from_le_bytes(header[4..].try_into().unwrap()) as u64;
        if len > MAX_FRAME {
            return Err(Error::TooLarge {
                len: len as u64,
                max: MAX_FRAME as u64,
            });
        }
        let mut data = vec![0u8; len];
        self.stream.read_exact(&mut data).map_err(map)?;
        Ok(Frame { clock, data })
    }
}

/// A network profile: bandwidth each way and one-way latency (docs/results.md: `lan` = 3 Gbps / 1 ms, `wan` =
/// 400 Mbps / 10 ms, as in Nimbus's evaluation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NetProfile {
    /// Unshaped: frames are delivered as fast as the carrier goes.
    None,
    /// 3 Gbps, 1 ms one way (Nimbus LAN).
    Lan,
    /// 400 Mbps, 10 ms one way (Nimbus WAN).
    Wan,
    /// 3 Gbps, 0.8 ms one way (BOLT LAN).
    BoltLan,
    /// 200 Mbps, 40 ms one way (BOLT WAN).
    BoltWan,
}

impl NetProfile {
    /// All profiles, in the order the CLI lists them.
    pub const ALL: [NetProfile; 5] = [
        NetProfile::None,
        NetProfile::Lan,
        NetProfile::Wan,
        NetProfile::BoltLan,
        NetProfile::BoltWan,
    ];

    /// Bandwidth in bits per second each way (`None` for unshaped).
    pub fn bandwidth_bps(self) -> Option<f64> {
        match self {
            NetProfile::None => None,
            NetProfile::Lan | NetProfile::BoltLan => Some(3e9),
            NetProfile::Wan => Some(400e6),
            NetProfile::BoltWan => Some(200e6),
        }
    }

    /// One-way latency.
    pub fn latency(self) -> Duration {
        match self {
            NetProfile::None => Duration::ZERO,
            NetProfile::Lan => Duration::from_millis(1),
            NetProfile::Wan => Duration::from_millis(10),
            NetProfile::BoltLan => Duration::from_micros(800),
            NetProfile::BoltWan => Duration::from_millis(40),
        }
    }

    /// The profile's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            NetProfile::None => "none",
            NetProfile::Lan => "lan",
            NetProfile::Wan => "wan",
            NetProfile::BoltLan => "bolt-lan",
            NetProfile::BoltWan => "bolt-wan",
        }
    }

    /// Time the link needs to carry `bytes` bytes, plus the one-way latency (a single flight).
    pub fn flight_time(self, bytes: u64) -> Duration {
        let transfer = self
            .bandwidth_bps()
            .map(|bw| Duration::from_secs_f64(bytes as f64 * 8.0 / bw))
            .unwrap_or_default();
        transfer + self.latency()
    }
}

impl std::str::FromStr for NetProfile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        NetProfile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown network profile `{s}` (expected none, lan, wan, bolt-lan or bolt-wan)"
                ))
            })
    }
}

impl std::fmt::Display for NetProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Sender wrapper that models a full-duplex link in real time: a frame departs when the link is
/// free, occupies it for `bytes·8/bandwidth`, and is handed to the inner carrier one latency
/// later. A background thread does the waiting, so the sender is never blocked by the link (as
/// with a large socket buffer) and back-to-back frames pipeline like on a real network.
pub struct ShapedSender {
    queue: Option<mpsc::Sender<(Frame, Instant)>>,
    failure: Arc<Mutex<Option<String>>>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ShapedSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShapedSender").finish_non_exhaustive()
    }
}

/// Framing bytes charged to the shaped link per frame (as on TCP).
const FRAME_OVERHEAD: u64 = 8;

impl ShapedSender {
    /// Wraps `inner` with the link model of `profile`.
    pub fn new(mut inner: Box<dyn FrameSender>, profile: NetProfile) -> Self {
        let (tx, rx) = mpsc::channel::<(Frame, Instant)>();
        let failure = Arc::new(Mutex::new(None));
        let fail = failure.clone();
        let worker = std::thread::spawn(move || {
            let mut link_free = Instant::now();
            for (frame, enqueued) in rx {
                let depart = link_free.max(enqueued);
                let busy = profile.flight_time(frame.data.len() as u64 + FRAME_OVERHEAD)
                    - profile.latency();
                link_free = depart + busy;
                let arrive = link_free + profile.latency();
                let now = Instant::now();
                if arrive > now {
                    std::thread::sleep(arrive - now);
                }
                if let Err(e) = inner.send_frame(frame) {
                    *fail.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    return;
                }
            }
        });
        ShapedSender {
            queue: Some(tx),
            failure,
            worker: Some(worker),
        }
    }
}

impl FrameSender for ShapedSender {
    fn send_frame(&mut self, frame: Frame) -> Result<()> {
        if self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return Err(Error::Disconnected);
        }
        let queue = self.queue.as_ref().ok_or(Error::Disconnected)?;
        queue
            .send((frame, Instant::now()))
            .map_err(|_| Error::Disconnected)
    }
}

impl Drop for ShapedSender {
    fn drop(&mut self) {
        // Close the queue, then let the link deliver what is in flight before the peer sees EOF.
        self.queue.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
