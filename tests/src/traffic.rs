//! Real traffic between namespaces: TCP connect, UDP exchange, ICMP echo.
//!
//! Each helper starts a server in the destination namespace (bound before the
//! client starts), runs the client in the source namespace, and reports
//! `Ok(())` only if a full round trip happened within the timeout. A blocked
//! flow returns `Err` with what went wrong; it never hangs.

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::netns::Netns;

/// Timeout for a flow that should work.
pub const ALLOWED: Duration = Duration::from_secs(3);
/// Timeout for a flow that should be blocked: long enough for a real round trip on this machine.
pub const BLOCKED: Duration = Duration::from_millis(800);

const MESSAGE: &[u8] = b"wardgate probe";

/// Connects over TCP from `client` to `addr:port` served in `server`, and
/// exchanges a message. `Ok` means the handshake and an echo both completed.
pub fn tcp(
    client: &Netns,
    server: &Netns,
    addr: IpAddr,
    port: u16,
    timeout: Duration,
) -> Result<(), String> {
    let target = SocketAddr::new(addr, port);
    let (ready_tx, ready_rx) = mpsc::channel();
    let server_thread = server.spawn(move || {
        let listener = listen(target)?;
        ready_tx.send(()).ok();
        let mut stream = accept_one(&listener, timeout)?;
        let mut buf = [0u8; MESSAGE.len()];
        stream.read_exact(&mut buf)?;
        stream.write_all(&buf)?;
        Ok(())
    });
    if ready_rx.recv_timeout(Duration::from_secs(5)).is_err() {
        return Err(join_error(server_thread, "server did not start"));
    }
    let client_result = client
        .spawn(move || {
            let mut stream = TcpStream::connect_timeout(&target, timeout).context("connect")?;
            stream.set_read_timeout(Some(timeout))?;
            stream.write_all(MESSAGE)?;
            let mut buf = [0u8; MESSAGE.len()];
            stream.read_exact(&mut buf).context("reading the echo")?;
            if buf != MESSAGE {
                bail!("echo differs");
            }
            Ok(())
        })
        .join()
        .map_err(|_| "client panicked".to_owned())
        .and_then(|r| r.map_err(|e| format!("{e:#}")));
    let server_result = server_thread
        .join()
        .map_err(|_| "server panicked".to_owned())
        .and_then(|r| r.map_err(|e| format!("server: {e:#}")));
    client_result.and(server_result)
}

/// Sends a UDP datagram from `client` to `addr:port` served in `server` and
/// waits for the server's reply. `Ok` means the reply came back.
pub fn udp(
    client: &Netns,
    server: &Netns,
    addr: IpAddr,
    port: u16,
    timeout: Duration,
) -> Result<(), String> {
    let target = SocketAddr::new(addr, port);
    let (ready_tx, ready_rx) = mpsc::channel();
    let server_thread = server.spawn(move || {
        let socket = bind_retrying(|| UdpSocket::bind(target))
            .with_context(|| format!("binding {target}"))?;
        socket.set_read_timeout(Some(timeout + Duration::from_millis(200)))?;
        ready_tx.send(()).ok();
        let mut buf = [0u8; 64];
        let (n, from) = socket.recv_from(&mut buf).context("no datagram arrived")?;
        socket.send_to(&buf[..n], from)?;
        Ok(())
    });
    if ready_rx.recv_timeout(Duration::from_secs(5)).is_err() {
        return Err(join_error(server_thread, "server did not start"));
    }
    let client_result = client
        .spawn(move || {
            let bind: SocketAddr = if target.is_ipv6() {
                "[::]:0".parse()?
            } else {
                "0.0.0.0:0".parse()?
            };
            let socket = UdpSocket::bind(bind)?;
            socket.set_read_timeout(Some(timeout))?;
            socket.send_to(MESSAGE, target)?;
            let mut buf = [0u8; 64];
            let (n, _) = socket.recv_from(&mut buf).context("no reply")?;
            if &buf[..n] != MESSAGE {
                bail!("reply differs");
            }
            Ok(())
        })
        .join()
        .map_err(|_| "client panicked".to_owned())
        .and_then(|r| r.map_err(|e| format!("{e:#}")));
    // The server's own failure (no datagram) is implied by the client's.
    let _ = server_thread.join();
    client_result
}

/// One ICMP echo (`ping -c 1`) from `client` to `addr`; `Ok` if the reply came back.
pub fn ping(client: &Netns, addr: IpAddr, timeout: Duration) -> Result<(), String> {
    let wait = format!("{:.1}", timeout.as_secs_f64().max(0.2));
    let addr = addr.to_string();
    let output = client
        .exec("ping", &["-n", "-q", "-c", "1", "-W", &wait, &addr])
        .map_err(|e| format!("{e:#}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ping {addr}: {}",
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .find(|l| l.contains("packets transmitted"))
                .unwrap_or("no reply")
        ))
    }
}

fn join_error(thread: std::thread::JoinHandle<anyhow::Result<()>>, what: &str) -> String {
    match thread.join() {
        Ok(Err(e)) => format!("{what}: {e:#}"),
        _ => what.to_owned(),
    }
}

/// Binds a probe's server socket, retrying for up to two seconds while the
/// address is still in use. Probes of one address and port run one after the
/// other, and on a loaded machine the kernel has been seen (rarely) to refuse
/// the next bind with `EADDRINUSE` just after the previous server closed; that
/// says nothing about the gateway, so the harness waits instead of failing.
/// A non-blocking TCP listener on `target` (in the calling thread's
/// namespace), retrying a port that a test which just ended still holds.
///
/// # Errors
/// The bind fails for 2 s.
pub fn listen(target: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener =
        bind_retrying(|| TcpListener::bind(target)).with_context(|| format!("binding {target}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The first connection to `listener` within `timeout` (and 200 ms of
/// slack), blocking with `timeout` reads.
///
/// # Errors
/// No connection arrived in time, or the socket failed.
pub fn accept_one(listener: &TcpListener, timeout: Duration) -> anyhow::Result<TcpStream> {
    let deadline = Instant::now() + timeout + Duration::from_millis(200);
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    bail!("no connection arrived");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(timeout))?;
    Ok(stream)
}

fn bind_retrying<T>(mut bind: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match bind() {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            result => return result,
        }
    }
}
