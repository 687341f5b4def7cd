//! Long-lived flows between namespaces, for tests that change things while
//! traffic runs: an echoing TCP session, and a numbered UDP stream whose
//! receiver records every sequence number that arrived.
//!
//! A socket belongs to the namespace it was created in, whichever thread
//! uses it later: sockets are created on threads inside their namespace
//! ([`Netns::spawn`]) and then used from anywhere.

use std::{
    collections::BTreeSet,
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::netns::Netns;

fn in_ns<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    ns.spawn(f)
        .join()
        .map_err(|_| anyhow::anyhow!("thread panicked"))?
}

/// A TCP connection from `client` to `target` (listened on in `server`):
/// the client's end and the server's accepted end, both blocking.
///
/// # Errors
/// The bind, the connect (3 s) or the accept fails.
pub fn tcp_pair(
    client: &Netns,
    server: &Netns,
    target: SocketAddr,
) -> anyhow::Result<(TcpStream, TcpStream)> {
    let listener = in_ns(server, move || Ok(TcpListener::bind(target)?))?;
    let stream = in_ns(client, move || {
        Ok(TcpStream::connect_timeout(&target, Duration::from_secs(3))?)
    })
    .context("connecting")?;
    let (conn, _) = listener.accept()?;
    Ok((stream, conn))
}

fn any_addr(v6: bool) -> SocketAddr {
    if v6 {
        "[::]:0".parse().expect("address")
    } else {
        "0.0.0.0:0".parse().expect("address")
    }
}

/// An established TCP connection whose server echoes every byte.
pub struct EchoSession {
    client: TcpStream,
    sent: u64,
    received: u64,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
}

impl EchoSession {
    /// Connects from `client` to `addr:port`, served in `server`.
    pub fn open(client: &Netns, server: &Netns, addr: IpAddr, port: u16) -> anyhow::Result<Self> {
        let target = SocketAddr::new(addr, port);
        let (stream, mut conn) = tcp_pair(client, server, target)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_server = stop.clone();
        conn.set_read_timeout(Some(Duration::from_millis(100)))?;
        let server = std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while !stop_server.load(Ordering::Relaxed) {
                match conn.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
        });
        Ok(Self {
            client: stream,
            sent: 0,
            received: 0,
            stop,
            server: Some(server),
        })
    }

    /// Retransmitted segments of the client's socket so far.
    pub fn retransmits(&self) -> u32 {
        crate::flood::retransmits(&self.client)
    }

    /// Sends one byte and waits until every byte sent so far came back.
    pub fn exchange(&mut self, timeout: Duration) -> Result<(), String> {
        self.client.write_all(b"x").map_err(|e| e.to_string())?;
        self.sent += 1;
        self.wait_echoes(timeout)
    }

    /// Waits until every byte sent so far came back (TCP retransmits the rest).
    pub fn wait_echoes(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 256];
        while self.received < self.sent {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{} of {} bytes echoed within {timeout:?}",
                    self.received, self.sent
                ));
            }
            self.client
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(|e| e.to_string())?;
            match self.client.read(&mut buf) {
                Ok(0) => return Err("the connection closed".into()),
                Ok(n) => self.received += n as u64,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }
}

impl Drop for EchoSession {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
    }
}

/// A numbered UDP stream: the sender sends sequence numbers at a steady
/// pace; the receiver records which arrived.
pub struct UdpStream {
    stop: Arc<AtomicBool>,
    /// The last sequence number sent (`u64::MAX` before the first).
    last_sent: Arc<AtomicU64>,
    received: Arc<Mutex<BTreeSet<u64>>>,
    sender: Option<JoinHandle<u64>>,
    receiver: Option<JoinHandle<()>>,
}

impl UdpStream {
    /// Starts sending from `client` to `addr:port` (served in `server`), one
    /// datagram every `interval`, from one source port.
    pub fn start(
        client: &Netns,
        server: &Netns,
        addr: IpAddr,
        port: u16,
        interval: Duration,
    ) -> anyhow::Result<Self> {
        let target = SocketAddr::new(addr, port);
        let rx = in_ns(server, move || Ok(UdpSocket::bind(target)?))?;
        let tx = in_ns(client, move || {
            Ok(UdpSocket::bind(any_addr(target.is_ipv6()))?)
        })?;
        rx.set_read_timeout(Some(Duration::from_millis(50)))?;
        big_receive_buffer(&rx);
        let stop = Arc::new(AtomicBool::new(false));
        let last_sent = Arc::new(AtomicU64::new(u64::MAX));
        let received = Arc::new(Mutex::new(BTreeSet::new()));
        let receiver = {
            let (stop, received) = (stop.clone(), received.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                // Keeps reading a little after `stop` so that datagrams in flight count.
                let mut quiet_since: Option<Instant> = None;
                loop {
                    match rx.recv(&mut buf) {
                        Ok(n) if n >= 8 => {
                            let seq = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
                            received.lock().expect("lock").insert(seq);
                            quiet_since = None;
                        }
                        _ => {
                            if stop.load(Ordering::Relaxed) {
                                let since = *quiet_since.get_or_insert_with(Instant::now);
                                if since.elapsed() > Duration::from_millis(200) {
                                    break;
                                }
                            }
                        }
                    }
                }
            })
        };
        let sender = {
            let (stop, last_sent) = (stop.clone(), last_sent.clone());
            std::thread::spawn(move || {
                let mut seq = 0u64;
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    // Record before sending: a reader of `last_sent` may see a
                    // number whose datagram is about to leave, never one behind.
                    last_sent.store(seq, Ordering::SeqCst);
                    let _ = tx.send_to(&seq.to_be_bytes(), target);
                    seq += 1;
                    let next = start + interval * u32::try_from(seq).unwrap_or(u32::MAX);
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                seq
            })
        };
        Ok(Self {
            stop,
            last_sent,
            received,
            sender: Some(sender),
            receiver: Some(receiver),
        })
    }

    /// Waits until datagrams arrive (the first ones can wait for neighbour
    /// resolution); returns the last sequence number sent by then, from
    /// which on no loss is expected.
    pub fn wait_flowing(&self, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let mark = self.last_sent();
            if self
                .received()
                .range(mark.saturating_sub(2)..)
                .next()
                .is_some()
            {
                return Ok(mark);
            }
            if Instant::now() > deadline {
                anyhow::bail!("the stream does not flow");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The last sequence number handed to the socket so far.
    pub fn last_sent(&self) -> u64 {
        self.last_sent.load(Ordering::SeqCst)
    }

    /// Sequence numbers received so far.
    pub fn received(&self) -> BTreeSet<u64> {
        self.received.lock().expect("lock").clone()
    }

    /// Stops; returns (number sent, numbers received).
    pub fn finish(mut self) -> (u64, BTreeSet<u64>) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.take().map_or(0, |t| t.join().unwrap_or(0));
        if let Some(t) = self.receiver.take() {
            let _ = t.join();
        }
        (sent, self.received())
    }
}

impl Drop for UdpStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.sender.take() {
            let _ = t.join();
        }
        if let Some(t) = self.receiver.take() {
            let _ = t.join();
        }
    }
}

/// Sends `count` UDP datagrams from `client` to `addr:port`, each from a
/// new socket (a new flow), and returns how many a server in `server` got.
pub fn udp_flows(
    client: &Netns,
    server: &Netns,
    addr: IpAddr,
    port: u16,
    count: usize,
) -> anyhow::Result<usize> {
    let target = SocketAddr::new(addr, port);
    let rx = in_ns(server, move || Ok(UdpSocket::bind(target)?))?;
    rx.set_read_timeout(Some(Duration::from_millis(300)))?;
    let sent = in_ns(client, move || {
        for i in 0..count {
            let tx = UdpSocket::bind(any_addr(target.is_ipv6()))?;
            tx.send_to(&(i as u64).to_be_bytes(), target)?;
        }
        Ok(count)
    })?;
    let mut got = 0;
    let mut buf = [0u8; 64];
    while got < sent && rx.recv(&mut buf).is_ok() {
        got += 1;
    }
    Ok(got)
}

/// A 16 MiB receive buffer (`SO_RCVBUFFORCE`, root only), so that a receiver
/// thread that is not scheduled for a while (2 cores, busy tests) loses
/// nothing to a full socket buffer: a loss must mean the gateway dropped.
fn big_receive_buffer(socket: &UdpSocket) {
    use std::os::fd::AsRawFd as _;
    let size: libc::c_int = 16 << 20;
    // SAFETY: a valid socket descriptor and a pointer to a c_int of the given length.
    #[allow(unsafe_code, reason = "setsockopt(2) has no safe wrapper in std")]
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// A flood of UDP datagrams from `client` to `addr:port` (nobody needs to
/// listen: the gateway drops or passes them), as fast as one thread sends,
/// until dropped. For tests of the agent under an event flood.
pub struct UdpFlood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl UdpFlood {
    pub fn start(client: &Netns, addr: IpAddr, port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), sent.clone());
        let thread = client.spawn(move || {
            let bind: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0".parse()?
            } else {
                "[::]:0".parse()?
            };
            let socket = UdpSocket::bind(bind)?;
            let target = SocketAddr::new(addr, port);
            let mut i: u64 = 0;
            while !s.load(Ordering::Relaxed) {
                // Several source ports, so events are not all one flow.
                let _ = socket.send_to(&i.to_be_bytes(), target);
                i += 1;
                if i.is_multiple_of(1024) {
                    n.store(i, Ordering::Relaxed);
                }
            }
            n.store(i, Ordering::Relaxed);
            Ok(())
        });
        Self {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Datagrams sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for UdpFlood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
