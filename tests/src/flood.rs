//! Traffic for the flood test (issue 13): a paced flood of crafted TCP SYNs
//! sent with an `AF_PACKET` socket, a bulk TCP transfer standing in for a
//! DICOM store, a session on which the server speaks after idle pauses, and
//! the retransmission count of a TCP socket (a lost
//! segment is retransmitted, so zero retransmissions means zero loss).

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpStream},
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::{
    netns::Netns,
    packet::{self, L4, tcp_flags},
    rawsock::RawSocket,
};

/// Retransmitted segments of a TCP socket so far (`TCP_INFO`).
#[allow(unsafe_code, reason = "getsockopt(2) has no safe wrapper in std")]
pub fn retransmits(stream: &TcpStream) -> u32 {
    // SAFETY: an all-zero `tcp_info` is a valid value of the plain C struct.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid socket descriptor; `info` is writable for `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info.tcpi_total_retrans
}

/// What a SYN flood did.
#[derive(Clone, Copy, Debug)]
pub struct FloodReport {
    pub sent: u64,
    pub elapsed: Duration,
}

/// Sends `count` TCP SYNs from `src` to `dst`, each a distinct connection
/// (source port 1024 upwards, then the next of `dports`), out of `iface` in
/// `ns` to the gateway's MAC `gw_mac`, at about `rate` per second.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only name them again"
)]
pub fn syn_flood(
    ns: &Netns,
    iface: &str,
    gw_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    dports: &[u16],
    count: u64,
    rate: u64,
) -> anyhow::Result<FloodReport> {
    let socket = RawSocket::open_in(ns, iface, false)?;
    let own_mac = crate::rawsock::mac(ns, iface)?;
    let ports = u64::from(u16::MAX - 1024);
    anyhow::ensure!(
        count <= ports * dports.len() as u64,
        "{count} distinct connections need more destination ports"
    );
    let start = Instant::now();
    for i in 0..count {
        let sport = 1024 + u16::try_from(i % ports).expect("below 65535");
        let dport = dports[usize::try_from(i / ports).expect("fits")];
        let mut frame = packet::ip(
            src,
            dst,
            L4::Tcp {
                sport,
                dport,
                flags: tcp_flags::SYN,
            },
        );
        frame[..6].copy_from_slice(&gw_mac);
        frame[6..12].copy_from_slice(&own_mac);
        // ENOBUFS under a momentary full queue: try again.
        let mut tries = 0;
        while let Err(e) = socket.send(&frame) {
            tries += 1;
            if tries > 1000 {
                return Err(e).context("sending a flood frame");
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        if i % 256 == 255 {
            let due = start + Duration::from_secs_f64((i + 1) as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    Ok(FloodReport {
        sent: count,
        elapsed: start.elapsed(),
    })
}

/// A bulk TCP transfer at a steady pace: the stand-in for a DICOM store.
pub struct BulkTransfer {
    client: TcpStream,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    sender: Option<JoinHandle<anyhow::Result<()>>>,
    receiver: Option<JoinHandle<()>>,
}

impl BulkTransfer {
    /// Connects from `client` to `addr:port` (served in `server`) and sends
    /// `chunk` bytes every `interval`.
    pub fn start(
        client: &Netns,
        server: &Netns,
        addr: IpAddr,
        port: u16,
        chunk: usize,
        interval: Duration,
    ) -> anyhow::Result<Self> {
        let target = SocketAddr::new(addr, port);
        let (stream, mut conn) = crate::flows::tcp_pair(client, server, target)?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let receiver = {
            let received = received.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    received.fetch_add(n as u64, Ordering::Relaxed);
                }
            })
        };
        let sender = {
            let (stop, sent) = (stop.clone(), sent.clone());
            let mut out = stream.try_clone()?;
            std::thread::spawn(move || {
                let data = vec![0x5a_u8; chunk];
                let start = Instant::now();
                let mut n: u32 = 0;
                while !stop.load(Ordering::Relaxed) {
                    out.write_all(&data)?;
                    sent.fetch_add(data.len() as u64, Ordering::Relaxed);
                    n += 1;
                    if let Some(wait) =
                        (start + interval * n).checked_duration_since(Instant::now())
                    {
                        std::thread::sleep(wait);
                    }
                }
                out.shutdown(std::net::Shutdown::Write)?;
                Ok(())
            })
        };
        Ok(Self {
            client: stream,
            stop,
            sent,
            received,
            sender: Some(sender),
            receiver: Some(receiver),
        })
    }

    /// Retransmitted segments so far.
    pub fn retransmits(&self) -> u32 {
        retransmits(&self.client)
    }

    /// Stops sending, waits for the receiver to read everything; returns
    /// (bytes sent, bytes received).
    pub fn finish(mut self) -> anyhow::Result<(u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.sender.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("sender panicked"))?
                .context("sending")?;
        }
        if let Some(t) = self.receiver.take() {
            let _ = t.join();
        }
        Ok((
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        ))
    }
}

impl Drop for BulkTransfer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.sender.take() {
            let _ = t.join();
        }
        if let Some(t) = self.receiver.take() {
            let _ = t.join();
        }
    }
}

/// A session on which the server speaks first, now and then: the
/// connection is opened by the client, then the server pushes one byte
/// every `interval` (a pump server sending orders to a pump, a PACS
/// answering after a long store). Between pushes the connection is idle, so
/// a connection table that evicts idle entries loses it, and the server's
/// next push, a reply-direction packet, is dropped.
pub struct PushSession {
    client: TcpStream,
    stop: Arc<AtomicBool>,
    pushed: Arc<AtomicU64>,
    server: Option<JoinHandle<()>>,
}

impl PushSession {
    pub fn open(
        client: &Netns,
        server: &Netns,
        addr: IpAddr,
        port: u16,
        interval: Duration,
    ) -> anyhow::Result<Self> {
        let target = SocketAddr::new(addr, port);
        let (stream, mut conn) = crate::flows::tcp_pair(client, server, target)?;
        let stop = Arc::new(AtomicBool::new(false));
        let pushed = Arc::new(AtomicU64::new(0));
        let server = {
            let (stop, pushed) = (stop.clone(), pushed.clone());
            std::thread::spawn(move || {
                let mut next = Instant::now() + interval;
                while !stop.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        if conn.write_all(b"p").is_err() {
                            break;
                        }
                        pushed.fetch_add(1, Ordering::Relaxed);
                        next += interval;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Ok(Self {
            client: stream,
            stop,
            pushed,
            server: Some(server),
        })
    }

    /// Stops pushing; returns (bytes pushed, bytes the client received,
    /// waiting at most `settle` for the last ones).
    pub fn finish(mut self, settle: Duration) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
        let pushed = self.pushed.load(Ordering::Relaxed);
        let mut got = 0u64;
        let deadline = Instant::now() + settle;
        let mut buf = [0u8; 64];
        while got < pushed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero()
                || self
                    .client
                    .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .is_err()
            {
                break;
            }
            match self.client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n as u64,
            }
        }
        (pushed, got)
    }
}

impl Drop for PushSession {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
    }
}
