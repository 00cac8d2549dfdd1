//! The two-party channel: synchronous, buffered, framed, with accounting by label.
//!
//! Writes are buffered and flushed as one frame before every read (and when the buffer passes
//! [`FLUSH_THRESHOLD`]), so a protocol's messages in one direction travel as one flight.
//!
//! **Rounds** are counted as the Nimbus paper does: a round is one flight, a maximal run of
//! messages in one direction. Each frame carries the sender's logical clock (Lamport style); a
//! receiver sets `clock = max(clock, frame.clock + 1)` and a sender records that its flight ends
//! at `clock + 1`. The rounds of a party are `max(clock, last flight sent)`, which equals the
//! length of the longest chain of dependent flights: a ping-pong counts 2, a simultaneous
//! exchange (both send, then both receive) counts 1, a one-way message counts 1 for both ends.
//!
//! **Accounting**: [`Channel::scope`] runs a closure under a label (`layer3/softmax/max` once
//! nested) and records, inclusively, payload bytes each way, rounds and wall time.
use crate::error::{Error, Result};
use crate::transport::{self, Frame, FrameReceiver, FrameSender, NetProfile, ShapedSender};
use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Buffered bytes that trigger a flush without waiting for a read (keeps frames bounded and
/// lets large transfers pipeline through the shaped link).
pub const FLUSH_THRESHOLD: usize = 4 << 20;

/// Default read timeout: generous, because a peer may compute for minutes (HE setup) before
/// it answers; tests use [`Channel::set_timeout`] to make hangs short.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Cost of a labelled piece of a protocol, as seen by one party.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Payload bytes this party sent.
    pub bytes_sent: u64,
    /// Payload bytes this party received.
    pub bytes_recv: u64,
    /// Flights (see the module comment).
    pub rounds: u64,
    /// Wall time spent inside the label, seconds.
    pub wall_s: f64,
    /// Part of `wall_s` spent blocked waiting for the peer's data; `wall_s − wait_s` is this
    /// party's own compute (plus local I/O).
    pub wait_s: f64,
    /// How many times the label was entered.
    pub calls: u64,
}

impl Stats {
    /// Bytes in both directions.
    pub fn bytes(&self) -> u64 {
        self.bytes_sent + self.bytes_recv
    }

    /// Adds `other` into `self`.
    pub fn accumulate(&mut self, other: &Stats) {
        self.bytes_sent += other.bytes_sent;
        self.bytes_recv += other.bytes_recv;
        self.rounds += other.rounds;
        self.wall_s += other.wall_s;
        self.wait_s += other.wait_s;
        self.calls += other.calls;
    }
}

/// One party's end of a two-party connection.
pub struct Channel {
    sender: Box<dyn FrameSender>,
    receiver: Box<dyn FrameReceiver>,
    out: Vec<u8>,
    inbox: Vec<u8>,
    inbox_pos: usize,
    clock: u64,
    flight_end: u64,
    bytes_sent: u64,
    bytes_recv: u64,
    waited: Duration,
    timeout: Duration,
    path: Vec<String>,
    stats: BTreeMap<String, Stats>,
    started: Instant,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("bytes_sent", &self.bytes_sent)
            .field("bytes_recv", &self.bytes_recv)
            .field("rounds", &self.rounds())
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// A channel over any pair of frame carriers.
    pub fn new(sender: Box<dyn FrameSender>, receiver: Box<dyn FrameReceiver>) -> Self {
        Channel {
            sender,
            receiver,
            out: Vec::new(),
            inbox: Vec::new(),
            inbox_pos: 0,
            clock: 0,
            flight_end: 0,
            bytes_sent: 0,
            bytes_recv: 0,
            waited: Duration::ZERO,
            timeout: DEFAULT_TIMEOUT,
            path: Vec::new(),
            stats: BTreeMap::new(),
            started: Instant::now(),
        }
    }

    /// Two connected in-memory channels (for tests and single-process runs).
    pub fn mem_pair() -> (Channel, Channel) {
        let ((a_tx, a_rx), (b_tx, b_rx)) = transport::mem_pair();
        (
            Channel::new(Box::new(a_tx), Box::new(a_rx)),
            Channel::new(Box::new(b_tx), Box::new(b_rx)),
        )
    }

    /// Two connected in-memory channels whose both directions follow `profile` in real time.
    pub fn mem_pair_shaped(profile: NetProfile) -> (Channel, Channel) {
        let (a, b) = Channel::mem_pair();
        (a.shaped(profile), b.shaped(profile))
    }

    /// A channel over an established TCP stream. Writes go through a background thread (the
    /// unshaped link model), so a send never blocks on the peer: both parties may send large
    /// messages at once (simultaneous flights) without filling the socket buffers into a
    /// deadlock.
    pub fn from_tcp(stream: TcpStream) -> Result<Channel> {
        let (tx, rx) = transport::tcp_split(stream)?;
        let tx = ShapedSender::new(Box::new(tx), NetProfile::None);
        Ok(Channel::new(Box::new(tx), Box::new(rx)))
    }

    /// Connects to `addr`, retrying until `wait` has passed (the peer may still be starting).
    pub fn tcp_connect(addr: impl ToSocketAddrs + Clone, wait: Duration) -> Result<Channel> {
        let deadline = Instant::now() + wait;
        loop {
            match TcpStream::connect(addr.clone()) {
                Ok(s) => return Channel::from_tcp(s),
                Err(e) if Instant::now() >= deadline => return Err(Error::Io(e)),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Accepts one connection on `listener`.
    pub fn tcp_accept(listener: &TcpListener) -> Result<Channel> {
        let (stream, _) = listener.accept()?;
        Channel::from_tcp(stream)
    }

    /// Puts this party's outgoing direction behind the real-time link model of `profile`
    /// (shape both ends to shape both directions). `NetProfile::None` leaves it unchanged.
    pub fn shaped(mut self, profile: NetProfile) -> Channel {
        if profile != NetProfile::None {
            let inner = std::mem::replace(&mut self.sender, Box::new(NullSender));
            self.sender = Box::new(ShapedSender::new(inner, profile));
        }
        self
    }

    /// Sets the read timeout (how long a read waits for the peer before failing).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Queues bytes for the peer (sent at the next flush).
    pub fn send(&mut self, mut data: &[u8]) -> Result<()> {
        self.bytes_sent += data.len() as u64;
        while !data.is_empty() {
            let room = FLUSH_THRESHOLD - self.out.len();
            let take = room.min(data.len());
            self.out.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.out.len() >= FLUSH_THRESHOLD {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Sends the buffered bytes as one frame (one part of the current flight). Reads flush
    /// automatically; a protocol that ends with a send must flush (dropping the channel does).
    pub fn flush(&mut self) -> Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.out);
        self.flight_end = self.flight_end.max(self.clock + 1);
        self.sender.send_frame(Frame {
            clock: self.clock,
            data,
        })
    }

    /// Fills `buf` with the peer's next bytes (flushes first).
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        self.flush()?;
        let mut filled = 0;
        while filled < buf.len() {
            if self.inbox_pos == self.inbox.len() {
                let t0 = Instant::now();
                let frame = self.receiver.recv_frame(self.timeout);
                self.waited += t0.elapsed();
                let frame = frame?;
                self.clock = self.clock.max(frame.clock + 1);
                self.inbox = frame.data;
                self.inbox_pos = 0;
                continue;
            }
            let take = (self.inbox.len() - self.inbox_pos).min(buf.len() - filled);
            buf[filled..filled + take]
                .copy_from_slice(&self.inbox[self.inbox_pos..self.inbox_pos + take]);
            self.inbox_pos += take;
            filled += take;
        }
        self.bytes_recv += buf.len() as u64;
        Ok(())
    }

    /// Receives exactly `n` bytes.
    pub fn recv_vec(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; n];
        self.recv(&mut v)?;
        Ok(v)
    }

    /// Sends a slice of plain-old-data values (little-endian machine layout).
    pub fn send_pod<T: bytemuck::Pod>(&mut self, values: &[T]) -> Result<()> {
        self.send(bytemuck::cast_slice(values))
    }

    /// Fills a slice of plain-old-data values from the peer.
    pub fn recv_pod<T: bytemuck::Pod>(&mut self, values: &mut [T]) -> Result<()> {
        self.recv(bytemuck::cast_slice_mut(values))
    }

    /// Receives `n` plain-old-data values.
    pub fn recv_pod_vec<T: bytemuck::Pod + bytemuck::Zeroable>(
        &mut self,
        n: usize,
    ) -> Result<Vec<T>> {
        let mut v = vec![T::zeroed(); n];
        self.recv_pod(&mut v)?;
        Ok(v)
    }

    /// Sends `u64` values.
    pub fn send_u64s(&mut self, values: &[u64]) -> Result<()> {
        self.send_pod(values)
    }

    /// Receives `n` `u64` values.
    pub fn recv_u64s(&mut self, n: usize) -> Result<Vec<u64>> {
        self.recv_pod_vec(n)
    }

    /// Sends a length-prefixed byte string (`u64` LE length, then the bytes).
    pub fn send_bytes_framed(&mut self, data: &[u8]) -> Result<()> {
        self.send(&(data.len() as u64).to_le_bytes())?;
        self.send(data)
    }

    /// Receives a length-prefixed byte string, refusing one longer than `max`.
    pub fn recv_bytes_framed(&mut self, max: usize) -> Result<Vec<u8>> {
        let mut len = [0u8; 8];
        self.recv(&mut len)?;
        let len = u64::from_le_bytes(len);
        if len > max as u64 {
            return Err(Error::TooLarge {
                len,
                max: max as u64,
            });
        }
        self.recv_vec(len as usize)
    }

    /// Sends a structured message (postcard encoding, length-prefixed).
    pub fn send_msg<T: serde::Serialize>(&mut self, msg: &T) -> Result<()> {
        let bytes = postcard::to_stdvec(msg)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode message: {e}")))?;
        self.send_bytes_framed(&bytes)
    }

    /// Receives a structured message of at most `max` encoded bytes.
    pub fn recv_msg<T: serde::de::DeserializeOwned>(&mut self, max: usize) -> Result<T> {
        let bytes = self.recv_bytes_framed(max)?;
        postcard::from_bytes(&bytes)
            .map_err(|e| Error::malformed("message", e.to_string(), "a postcard encoding"))
    }

    /// Rounds (flights) seen so far by this party.
    pub fn rounds(&self) -> u64 {
        self.clock.max(self.flight_end)
    }

    /// Totals since the channel was created.
    pub fn totals(&self) -> Stats {
        Stats {
            bytes_sent: self.bytes_sent,
            bytes_recv: self.bytes_recv,
            rounds: self.rounds(),
            wall_s: self.started.elapsed().as_secs_f64(),
            wait_s: self.waited.as_secs_f64(),
            calls: 1,
        }
    }

    /// Runs `f` under `label` and records its cost (inclusive of nested labels) at the label's
    /// full path, e.g. `layer3/softmax/max`. Entering the same path again accumulates.
    pub fn scope<R>(&mut self, label: &str, f: impl FnOnce(&mut Channel) -> R) -> R {
        self.path.push(label.to_string());
        let key = self.path.join("/");
        let (sent, recv, rounds, waited, t0) = (
            self.bytes_sent,
            self.bytes_recv,
            self.rounds(),
            self.waited,
            Instant::now(),
        );
        let result = f(self);
        let delta = Stats {
            bytes_sent: self.bytes_sent - sent,
            bytes_recv: self.bytes_recv - recv,
            rounds: self.rounds() - rounds,
            wall_s: t0.elapsed().as_secs_f64(),
            wait_s: (self.waited - waited).as_secs_f64(),
            calls: 1,
        };
        self.stats.entry(key).or_default().accumulate(&delta);
        self.path.pop();
        result
    }

    /// The recorded cost of every label path.
    pub fn stats(&self) -> &BTreeMap<String, Stats> {
        &self.stats
    }

    /// The recorded cost of one label path, if it was entered.
    pub fn stats_of(&self, path: &str) -> Option<Stats> {
        self.stats.get(path).copied()
    }

    /// Forgets all recorded labels (totals keep counting).
    pub fn clear_stats(&mut self) {
        self.stats.clear();
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        // Best effort: a protocol that ends with a send should still deliver it.
        let _ = self.flush();
    }
}

/// Placeholder carrier used only while swapping a channel's sender; never sends.
struct NullSender;

impl FrameSender for NullSender {
    fn send_frame(&mut self, _: Frame) -> Result<()> {
        Err(Error::Disconnected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<A: Send + 'static>(
        a: impl FnOnce(&mut Channel) -> Result<A> + Send + 'static,
        b: impl FnOnce(&mut Channel) -> Result<()>,
    ) -> (A, Channel, Channel) {
        let (mut ca, mut cb) = Channel::mem_pair();
        let t = std::thread::spawn(move || {
            let r = a(&mut ca);
            ca.flush().unwrap();
            (r, ca)
        });
        b(&mut cb).unwrap();
        cb.flush().unwrap();
        let (r, ca) = t.join().unwrap();
        (r.unwrap(), ca, cb)
    }

    #[test]
    fn rounds_count_flights() {
        // One-way: 1 round at both ends.
        let (_, a, b) = run(|c| c.recv_u64s(2), |c| c.send_u64s(&[1, 2]));
        assert_eq!((a.rounds(), b.rounds()), (1, 1));
        // Ping-pong: 2.
        let (_, a, b) = run(
            |c| {
                let v = c.recv_u64s(1)?;
                c.send_u64s(&v)
            },
            |c| {
                c.send_u64s(&[7])?;
                assert_eq!(c.recv_u64s(1)?, vec![7]);
                Ok(())
            },
        );
        assert_eq!((a.rounds(), b.rounds()), (2, 2));
        // Simultaneous exchange: 1.
        let (_, a, b) = run(
            |c| {
                c.send_u64s(&[1])?;
                c.recv_u64s(1)
            },
            |c| {
                c.send_u64s(&[2])?;
                c.recv_u64s(1).map(|_| ())
            },
        );
        assert_eq!((a.rounds(), b.rounds()), (1, 1));
    }

    #[test]
    fn scopes_record_bytes_and_nest() {
        let (_, a, b) = run(
            |c| c.scope("outer", |c| c.scope("inner", |c| c.recv_vec(10))),
            |c| c.scope("outer", |c| c.scope("inner", |c| c.send(&[0u8; 10]))),
        );
        let inner = a.stats_of("outer/inner").unwrap();
        assert_eq!(
            (inner.bytes_recv, inner.bytes_sent, inner.rounds),
            (10, 0, 1)
        );
        assert_eq!(b.stats_of("outer").unwrap().bytes_sent, 10);
        assert_eq!(b.totals().bytes_sent, 10);
    }

    #[test]
    fn large_sends_are_split_into_bounded_frames() {
        let n = 3 * FLUSH_THRESHOLD + 5;
        let (got, _, _) = run(move |c| c.recv_vec(n), move |c| c.send(&vec![9u8; n]));
        assert_eq!(got.len(), n);
        assert!(got.iter().all(|&x| x == 9));
    }

    #[test]
    fn disconnect_and_timeout_are_errors() {
        let (mut a, b) = Channel::mem_pair();
        drop(b);
        assert!(matches!(a.recv_vec(1), Err(Error::Disconnected)));
        let (mut a, _b) = Channel::mem_pair();
        a.set_timeout(Duration::from_millis(20));
        assert!(matches!(a.recv_vec(1), Err(Error::Timeout(_))));
    }

    #[test]
    fn framed_messages_refuse_oversized_lengths() {
        let (mut a, mut b) = Channel::mem_pair();
        b.send(&(1u64 << 40).to_le_bytes()).unwrap();
        b.flush().unwrap();
        assert!(matches!(
            a.recv_bytes_framed(1 << 20),
            Err(Error::TooLarge { .. })
        ));
        b.send_bytes_framed(&[0xff; 3]).unwrap();
        b.flush().unwrap();
        assert!(matches!(
            a.recv_msg::<(u64, u64)>(100),
            Err(Error::Malformed { .. })
        ));
    }
}
