//! Network-namespace topologies: host namespaces around a gateway namespace,
//! joined by veth links, with addresses and routes.
//!
//! Every namespace is deleted when its [`Netns`] drops, also when a test
//! panics, and names are unique (process id and a counter) so that two test
//! runs never collide. Interfaces are created directly inside their
//! namespaces, so nothing ever appears in the root namespace.

use std::{
    net::IpAddr,
    os::fd::AsRawFd as _,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    thread::JoinHandle,
};

use anyhow::{Context as _, bail};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS...` and fails with its stderr if it fails.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    run("ip", args)
}

/// Runs a command and fails with its stderr if it fails.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running `{program}`"))?;
    check(program, args, output)
}

fn check(program: &str, args: &[&str], output: Output) -> anyhow::Result<String> {
    if !output.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named `wg-<tag>-<pid>-<n>` with `lo` up.
    pub fn new(tag: &str) -> anyhow::Result<Self> {
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let name = format!("wg-{tag}-{}-{n}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Runs a program inside the namespace (`ip netns exec`), returning its output unchecked.
    pub fn exec(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .with_context(|| format!("running `{program}` in {}", self.name))
    }

    /// Runs a program inside the namespace and fails if it fails.
    pub fn exec_ok(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let output = self.exec(program, args)?;
        check(program, args, output)
    }

    /// Writes a sysctl inside the namespace (e.g. `net/ipv4/ip_forward`).
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.exec_ok("sh", &["-c", &format!("echo {value} > /proc/sys/{key}")])?;
        Ok(())
    }

    /// Runs `f` on a new thread that has entered this namespace: sockets it
    /// opens live here. The thread enters before `f` starts.
    pub fn spawn<T, F>(&self, f: F) -> JoinHandle<anyhow::Result<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> anyhow::Result<T> + Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
            // SAFETY: setns on a valid, open netns file descriptor; it changes
            // only this (new, not yet shared) thread's network namespace.
            #[allow(unsafe_code, reason = "setns(2) has no safe wrapper in std")]
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                bail!("setns({path}): {}", std::io::Error::last_os_error());
            }
            f()
        })
    }

    /// The interface index of `iface` in this namespace.
    pub fn ifindex(&self, iface: &str) -> anyhow::Result<u32> {
        let out = self.ip(&["-o", "link", "show", "dev", iface])?;
        out.split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .with_context(|| format!("no ifindex in `{out}`"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth ends inside it (and their peers).
        if let Err(err) = ip(&["netns", "del", &self.name]) {
            eprintln!("warning: could not delete netns {}: {err}", self.name);
        }
    }
}

/// A host namespace attached to the gateway.
#[derive(Debug)]
pub struct Host {
    pub name: String,
    pub ns: Netns,
    /// The host's addresses.
    pub addrs: Vec<IpAddr>,
    /// The gateway-side interface of this host's link.
    pub gw_iface: String,
    /// The gateway's addresses on that link (the host's default routes).
    pub gw_addrs: Vec<IpAddr>,
}

impl Host {
    /// The host's first address of the given family.
    pub fn addr(&self, v6: bool) -> IpAddr {
        *self
            .addrs
            .iter()
            .find(|a| a.is_ipv6() == v6)
            .unwrap_or_else(|| {
                panic!(
                    "host {} has no IPv{} address",
                    self.name,
                    if v6 { 6 } else { 4 }
                )
            })
    }

    pub fn v4(&self) -> IpAddr {
        self.addr(false)
    }

    pub fn v6(&self) -> IpAddr {
        self.addr(true)
    }
}

/// Hosts in their own namespaces, each linked to a gateway namespace that routes between them.
#[derive(Debug)]
pub struct Topology {
    // Hosts first: they drop before the gateway.
    pub hosts: Vec<Host>,
    pub gateway: Netns,
}

/// Builds a [`Topology`].
#[derive(Default)]
pub struct TopologyBuilder {
    hosts: Vec<(String, Vec<String>)>,
}

impl TopologyBuilder {
    /// Adds a host with addresses in CIDR form (`10.20.0.10/24`,
    /// `2001:db8:20::10/64`). The gateway takes the first address of each
    /// subnet on the host's link, which the host uses as its default route.
    pub fn host(mut self, name: &str, addrs: &[&str]) -> Self {
        self.hosts.push((
            name.to_owned(),
            addrs.iter().map(|a| (*a).to_owned()).collect(),
        ));
        self
    }

    pub fn build(self) -> anyhow::Result<Topology> {
        let gateway = Netns::new("gw")?;
        gateway.sysctl("net/ipv4/ip_forward", "1")?;
        gateway.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        let mut topology = Topology {
            hosts: Vec::new(),
            gateway,
        };
        for (index, (name, addrs)) in self.hosts.into_iter().enumerate() {
            let host = topology.attach(index, &name, &addrs)?;
            topology.hosts.push(host);
        }
        Ok(topology)
    }
}

impl Topology {
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder::default()
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host `{name}` in the topology"))
    }

    /// The gateway-side interface names, in host order.
    pub fn gateway_ifaces(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.gw_iface.clone()).collect()
    }

    fn attach(&self, index: usize, name: &str, addrs: &[String]) -> anyhow::Result<Host> {
        let ns = Netns::new(&name.chars().take(12).collect::<String>())?;
        let gw_iface = format!("gw{index}");
        ip(&[
            "link",
            "add",
            "eth0",
            "netns",
            ns.name(),
            "type",
            "veth",
            "peer",
            "name",
            &gw_iface,
            "netns",
            self.gateway.name(),
        ])?;
        let mut host_addrs = Vec::new();
        let mut gw_addrs = Vec::new();
        for cidr in addrs {
            let (addr, len) = parse_cidr(cidr)?;
            let gw_addr = first_host(addr, len);
            if gw_addr == addr {
                bail!("host {name}: {cidr} is the gateway's address on that subnet");
            }
            let family = if addr.is_ipv6() { "-6" } else { "-4" };
            let mut host_cmd = vec![family, "addr", "add", cidr.as_str(), "dev", "eth0"];
            let gw_cidr = format!("{gw_addr}/{len}");
            let mut gw_cmd = vec![
                family,
                "addr",
                "add",
                gw_cidr.as_str(),
                "dev",
                gw_iface.as_str(),
            ];
            if addr.is_ipv6() {
                // No duplicate address detection: addresses are usable at once.
                host_cmd.push("nodad");
                gw_cmd.push("nodad");
            }
            ns.ip(&host_cmd)?;
            self.gateway.ip(&gw_cmd)?;
            host_addrs.push(addr);
            gw_addrs.push(gw_addr);
        }
        ns.ip(&["link", "set", "eth0", "up"])?;
        self.gateway.ip(&["link", "set", &gw_iface, "up"])?;
        for gw_addr in &gw_addrs {
            let family = if gw_addr.is_ipv6() { "-6" } else { "-4" };
            ns.ip(&[
                family,
                "route",
                "add",
                "default",
                "via",
                &gw_addr.to_string(),
            ])?;
        }
        Ok(Host {
            name: name.to_owned(),
            ns,
            addrs: host_addrs,
            gw_iface,
            gw_addrs,
        })
    }
}

fn parse_cidr(cidr: &str) -> anyhow::Result<(IpAddr, u8)> {
    let (addr, len) = cidr
        .split_once('/')
        .with_context(|| format!("`{cidr}` is not ADDRESS/LENGTH"))?;
    Ok((addr.parse()?, len.parse()?))
}

/// The first host address of the subnet `addr/len` (network address + 1).
fn first_host(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(((u32::from(a) & mask) + 1).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(((u128::from(a) & mask) + 1).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_host_of_subnets() {
        assert_eq!(
            first_host("10.20.0.10".parse().unwrap(), 24),
            "10.20.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            first_host("2001:db8:20::10".parse().unwrap(), 64),
            "2001:db8:20::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            first_host("10.40.3.7".parse().unwrap(), 22),
            "10.40.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
