//! Loading the embedded XDP program and attaching it to interfaces.

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::PerCpuArray,
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use wardgate_common::{counter, maps};

/// The XDP object, built by build.rs.
pub static PROGRAM_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/wardgate-xdp"));

/// Name of the XDP entry point in the object.
pub const PROGRAM_NAME: &str = "wardgate";

/// How the program ended up attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native XDP in the driver.
    Driver,
    /// Generic (skb) XDP: works everywhere, slower.
    Generic,
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Driver => "driver",
            Self::Generic => "generic",
        })
    }
}

/// The loaded (verified) program and its maps.
pub struct Program {
    ebpf: Ebpf,
}

/// One attachment.
#[derive(Debug)]
pub struct Attached {
    pub iface: String,
    pub mode: AttachMode,
    pub link: XdpLinkId,
}

impl Program {
    /// Loads the embedded object into the kernel (the verifier runs here).
    pub fn load() -> anyhow::Result<Self> {
        let mut ebpf = Ebpf::load(PROGRAM_OBJECT).context("loading the XDP object")?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .context("the object has no `wardgate` program")?
            .try_into()?;
        program
            .load()
            .context("the kernel rejected the XDP program")?;
        Ok(Self { ebpf })
    }

    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// The XDP program, for attaching or `BPF_PROG_TEST_RUN`.
    pub fn xdp(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(PROGRAM_NAME)
            .and_then(|p| p.try_into().ok())
            .expect("checked in load")
    }

    /// Attaches to `iface`: driver mode where the driver supports it, else
    /// generic mode (logged, so the operator knows the fast path is off).
    pub fn attach(&mut self, iface: &str) -> anyhow::Result<Attached> {
        let program = self.xdp();
        match program.attach(iface, XdpMode::Driver) {
            Ok(link) => Ok(Attached {
                iface: iface.to_owned(),
                mode: AttachMode::Driver,
                link,
            }),
            Err(driver_err) => {
                log::warn!(
                    "{iface}: driver-mode XDP unavailable ({driver_err}); falling back to generic mode"
                );
                let link = program
                    .attach(iface, XdpMode::Skb)
                    .with_context(|| format!("attaching XDP to `{iface}`"))?;
                Ok(Attached {
                    iface: iface.to_owned(),
                    mode: AttachMode::Generic,
                    link,
                })
            }
        }
    }

    /// Attaches in exactly one mode, with no fallback.
    pub fn attach_mode(&mut self, iface: &str, mode: AttachMode) -> anyhow::Result<Attached> {
        let flags = match mode {
            AttachMode::Driver => XdpMode::Driver,
            AttachMode::Generic => XdpMode::Skb,
        };
        let link = self
            .xdp()
            .attach(iface, flags)
            .with_context(|| format!("attaching XDP to `{iface}` in {mode} mode"))?;
        Ok(Attached {
            iface: iface.to_owned(),
            mode,
            link,
        })
    }

    /// One per-CPU counter (`counter::*`), summed over CPUs.
    pub fn counter(&self, index: u32) -> anyhow::Result<u64> {
        let map = self
            .ebpf
            .map(maps::COUNTERS)
            .with_context(|| format!("map `{}` missing", maps::COUNTERS))?;
        let array = PerCpuArray::<_, u64>::try_from(map)?;
        Ok(array.get(&index, 0)?.iter().sum())
    }

    /// The per-CPU counters, summed over CPUs, indexed by `counter::*`.
    pub fn counters(&self) -> anyhow::Result<Vec<u64>> {
        let map = self
            .ebpf
            .map(maps::COUNTERS)
            .with_context(|| format!("map `{}` missing", maps::COUNTERS))?;
        let array = PerCpuArray::<_, u64>::try_from(map)?;
        (0..counter::COUNT)
            .map(|i| Ok(array.get(&i, 0)?.iter().sum()))
            .collect()
    }
}
