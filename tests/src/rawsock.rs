//! Raw `AF_PACKET` sockets: inject crafted frames on an interface and
//! capture what arrives on another, inside test namespaces.
//!
//! A socket belongs to the namespace it was opened in; open it with
//! [`RawSocket::open_in`] and use it from any thread afterwards.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::netns::Netns;

const ETH_P_ALL: u16 = 0x0003;

/// An `AF_PACKET` raw socket bound to one interface.
#[derive(Debug)]
pub struct RawSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl RawSocket {
    /// Opens a socket on `iface` in the calling thread's namespace. With
    /// `capture`, it receives every frame arriving on the interface (a 32 MiB
    /// receive buffer); without, it only sends.
    #[allow(
        unsafe_code,
        reason = "socket(2), bind(2), setsockopt(2) have no safe wrapper in std"
    )]
    pub fn open(iface: &str, capture: bool) -> anyhow::Result<Self> {
        let name = std::ffi::CString::new(iface)?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            bail!(
                "no interface `{iface}`: {}",
                std::io::Error::last_os_error()
            );
        }
        let ifindex = i32::try_from(ifindex)?;
        let protocol = if capture { ETH_P_ALL.to_be() } else { 0 };
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
        if raw < 0 {
            bail!("socket(AF_PACKET): {}", std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if capture {
            let size: libc::c_int = 32 << 20;
            // SAFETY: the option value points at a live c_int of the given size.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const size).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                bail!("SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
            }
        }
        let addr = sockaddr(ifindex, protocol);
        // SAFETY: `addr` is a valid sockaddr_ll and the length is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            bail!("bind to `{iface}`: {}", std::io::Error::last_os_error());
        }
        Ok(Self { fd, ifindex })
    }

    /// [`RawSocket::open`] inside namespace `ns`.
    pub fn open_in(ns: &Netns, iface: &str, capture: bool) -> anyhow::Result<Self> {
        let iface = iface.to_owned();
        ns.spawn(move || Self::open(&iface, capture))
            .join()
            .map_err(|_| anyhow::anyhow!("the thread opening the socket panicked"))?
            .with_context(|| format!("opening a packet socket in {}", ns.name()))
    }

    /// Sends one whole Ethernet frame out of the interface.
    #[allow(unsafe_code, reason = "sendto(2) has no safe wrapper in std")]
    pub fn send(&self, frame: &[u8]) -> anyhow::Result<()> {
        let addr = sockaddr(self.ifindex, 0);
        // SAFETY: the buffer and the address are valid for the given lengths.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if usize::try_from(n).ok() != Some(frame.len()) {
            bail!("sendto: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives frames until none has arrived for `quiet` (and at most `max` in all).
    #[allow(
        unsafe_code,
        reason = "poll(2) and recv(2) have no safe wrapper in std"
    )]
    pub fn drain(&self, quiet: Duration, max: Duration) -> Vec<Vec<u8>> {
        let start = Instant::now();
        let mut frames = Vec::new();
        let mut buf = vec![0u8; 65536];
        let timeout = i32::try_from(quiet.as_millis()).unwrap_or(i32::MAX);
        while start.elapsed() < max {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&raw mut pfd, 1, timeout) };
            if ready <= 0 {
                break;
            }
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if let Ok(n) = usize::try_from(n) {
                frames.push(buf[..n].to_vec());
            }
        }
        frames
    }
}

fn sockaddr(ifindex: i32, protocol: u16) -> libc::sockaddr_ll {
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol,
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: [0; 8],
    }
}

/// The MAC address of `iface` in namespace `ns`.
pub fn mac(ns: &Netns, iface: &str) -> anyhow::Result<[u8; 6]> {
    let out = ns.ip(&["-o", "link", "show", "dev", iface])?;
    let text = out
        .split("link/ether ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .with_context(|| format!("no MAC address in `{out}`"))?;
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next().context("short MAC address")?, 16)?;
    }
    Ok(mac)
}
