//! Loading the embedded XDP program and attaching it to interfaces.

use anyhow::Context as _;
use std::path::Path;

use aya::{
    Ebpf, EbpfLoader,
    maps::PerCpuArray,
    programs::{
        Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
};
use wardgate_common::{Counters, counter, maps};

/// The XDP object, built by build.rs.
pub static PROGRAM_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/wardgate-xdp"));

/// Name of the XDP entry point in the object.
pub const PROGRAM_NAME: &str = "wardgate";

/// Name of the `XDP_PASS` baseline program in the same object (benchmarks only).
pub const BASELINE_NAME: &str = "xdp_pass";

/// Loads only the `XDP_PASS` baseline program, for benchmarks.
pub fn load_baseline() -> anyhow::Result<Ebpf> {
    let mut ebpf = Ebpf::load(PROGRAM_OBJECT).context("loading the XDP object")?;
    let program: &mut Xdp = ebpf
        .program_mut(BASELINE_NAME)
        .context("the object has no baseline program")?
        .try_into()?;
    program.load()?;
    Ok(ebpf)
}

/// Sizes the maps that depend on the machine: the flow table has a region
/// per possible CPU.
fn sized<'a, 'b>(loader: &'a mut EbpfLoader<'b>) -> anyhow::Result<&'a mut EbpfLoader<'b>> {
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    let cpus = u32::try_from(cpus).context("the number of CPUs")?;
    Ok(loader
        .map_max_entries(maps::FLOWS, maps::flow_entries(cpus))
        .map_max_entries(maps::CT_CACHE, maps::ct_cache_entries(cpus)))
}

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
        Self::load_with(&mut EbpfLoader::new())
    }

    /// [`Program::load`] with connection tables of other sizes than the
    /// compiled-in ones (`established`, `unconfirmed` entries): small tables
    /// let tests fill them.
    pub fn load_with_conntrack(established: u32, unconfirmed: u32) -> anyhow::Result<Self> {
        Self::load_with(
            EbpfLoader::new()
                .map_max_entries(maps::CONNTRACK, established)
                .map_max_entries(maps::CT_UNCONFIRMED, unconfirmed),
        )
    }

    /// Loads the embedded object with every map pinned under `dir` (a bpffs
    /// directory that exists): a map already pinned there is reused, with its
    /// contents (policy, connection tracking, quarantine, counters); a missing
    /// one is created and pinned. This is how a restarted agent adopts the
    /// state of the one before it.
    pub fn load_pinned(dir: &Path) -> anyhow::Result<Self> {
        let mut loader = EbpfLoader::new();
        sized(&mut loader)?;
        for name in maps::ALL {
            loader.map_pin_path(name, dir.join(name));
        }
        let ebpf = loader.load(PROGRAM_OBJECT).with_context(|| {
            format!(
                "loading the XDP object with the maps pinned in `{}`",
                dir.display()
            )
        })?;
        Self::verified(
            ebpf,
            "the kernel rejected the XDP program (if the maps pinned by an older \
             version differ in shape, run `wardgate-agent detach` first)",
        )
    }

    /// The object loaded by `loader` (maps sized for the machine), verified.
    fn load_with(loader: &mut EbpfLoader<'_>) -> anyhow::Result<Self> {
        let ebpf = sized(loader)?
            .load(PROGRAM_OBJECT)
            .context("loading the XDP object")?;
        Self::verified(ebpf, "the kernel rejected the XDP program")
    }

    /// Loads the `wardgate` program of `ebpf` into the kernel (`rejected`
    /// says why it may fail) and calibrates its clock (`crate::clock`). A
    /// kernel whose tick cannot be measured leaves the program on its
    /// slower clock helper: logged, not fatal.
    fn verified(mut ebpf: Ebpf, rejected: &'static str) -> anyhow::Result<Self> {
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .context("the object has no `wardgate` program")?
            .try_into()?;
        program.load().context(rejected)?;
        if let Err(e) = crate::clock::apply(&mut ebpf) {
            log::warn!("the program keeps its clock helper: {e:#}");
        }
        Ok(Self { ebpf })
    }

    /// Recalibrates the clock's offset (it drifts with the system clock's
    /// frequency corrections); the daemon calls this every minute.
    pub fn recalibrate_clock(&mut self) -> anyhow::Result<crate::clock::Calibration> {
        crate::clock::apply(&mut self.ebpf)
    }

    /// Attaches to `iface` through a `bpf_link` and pins the link at the path
    /// `pin(mode)` returns, so that it outlives this process. `mode: None`
    /// tries driver mode and falls back to generic mode (logged).
    pub fn attach_pinned(
        &mut self,
        iface: &str,
        mode: Option<AttachMode>,
        pin: impl Fn(AttachMode) -> std::path::PathBuf,
    ) -> anyhow::Result<(AttachMode, FdLink)> {
        let attached = match mode {
            Some(mode) => self.attach_mode(iface, mode)?,
            None => self.attach(iface)?,
        };
        let link = self
            .xdp()
            .take_link(attached.link)
            .context("taking the XDP link")?;
        let link = FdLink::try_from(link).map_err(|_| {
            anyhow::anyhow!(
                "`{iface}`: the kernel attached XDP through netlink, not a bpf_link; \
                 pinning needs Linux 5.9 or later"
            )
        })?;
        let path = pin(attached.mode);
        let pinned = link
            .pin(&path)
            .with_context(|| format!("pinning the XDP link at `{}`", path.display()))?;
        Ok((attached.mode, pinned.into()))
    }

    /// Points the XDP link pinned at `path` at this program, in one step
    /// (`BPF_LINK_UPDATE`): the interface is never without a program. The link
    /// stays pinned.
    pub fn adopt_link(&mut self, path: &Path) -> anyhow::Result<FdLink> {
        let pinned = PinnedLink::from_pin(path)
            .with_context(|| format!("opening the pinned link `{}`", path.display()))?;
        let link = XdpLink::try_from(FdLink::from(pinned))
            .with_context(|| format!("`{}` is not an XDP link", path.display()))?;
        let id = self
            .xdp()
            .attach_to_link(link)
            .with_context(|| format!("updating the pinned link `{}`", path.display()))?;
        let link = self.xdp().take_link(id).context("taking the XDP link")?;
        FdLink::try_from(link).map_err(|_| anyhow::anyhow!("the adopted link is not a bpf_link"))
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

    /// One counter (`counter::*`), summed over CPUs.
    pub fn counter(&self, index: u32) -> anyhow::Result<u64> {
        Ok(self.counters()?[index as usize])
    }

    /// Every counter, summed over CPUs, indexed by `counter::*`.
    pub fn counters(&self) -> anyhow::Result<Vec<u64>> {
        let map = self
            .ebpf
            .map(maps::COUNTERS)
            .with_context(|| format!("map `{}` missing", maps::COUNTERS))?;
        let array = PerCpuArray::<_, Counters>::try_from(map)?;
        let mut sums = vec![0u64; counter::COUNT as usize];
        for block in array.get(&0, 0)?.iter() {
            for (sum, value) in sums.iter_mut().zip(block) {
                *sum += value;
            }
        }
        Ok(sums)
    }
}
