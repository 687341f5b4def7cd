//! The XDP program loaded with a policy compiled from `.ward` source, driven
//! by `BPF_PROG_TEST_RUN`: the fixture of the verdict and differential tests.

use std::net::IpAddr;

use wardgate_agent::{Program, conntrack, events::EventReader, programmer, quarantine};
use wardgate_common::{CONFIG_FLOWS, Event};
use wardgate_compiler::{Options, PolicyImage};

use crate::testrun;

/// Compiles `source` (no includes); panics with the diagnostics if it does not compile.
pub fn image(source: &str) -> PolicyImage {
    let loaded = wardgate_lang::parse_str("test.ward", source);
    let (image, diagnostics) = wardgate_compiler::compile(&loaded, &Options::default());
    let lang_errors: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == wardgate_lang::Severity::Error)
        .collect();
    assert!(
        lang_errors.is_empty(),
        "policy does not parse: {lang_errors:#?}"
    );
    image.unwrap_or_else(|| panic!("policy does not compile: {diagnostics:#?}"))
}

/// A loaded program with a policy in force.
pub struct Enforcer {
    pub program: Program,
    pub image: PolicyImage,
    events: EventReader,
}

impl Enforcer {
    /// Loads the program and the policy compiled from `source`.
    pub fn new(source: &str) -> Self {
        Self::with_image(image(source))
    }

    pub fn with_image(image: PolicyImage) -> Self {
        let mut program = Program::load().expect("loading the XDP program");
        programmer::load(program.ebpf_mut(), &image, CONFIG_FLOWS).expect("programming the maps");
        conntrack::trust_filter(program.ebpf_mut()).expect("the connection filter");
        Self::from_program(program, image)
    }

    /// An enforcer around a program already loaded with `image`, as it is
    /// (the connection filter trusted or not).
    pub fn from_program(mut program: Program, image: PolicyImage) -> Self {
        let events = EventReader::new(program.ebpf_mut()).expect("opening the event ring");
        Self {
            program,
            image,
            events,
        }
    }

    /// [`Enforcer::new`] with connection tables of `established` and
    /// `unconfirmed` entries.
    pub fn with_conntrack(source: &str, established: u32, unconfirmed: u32) -> Self {
        let image = image(source);
        let mut program = Program::load_with_conntrack(established, unconfirmed)
            .expect("loading the XDP program");
        programmer::load(program.ebpf_mut(), &image, CONFIG_FLOWS).expect("programming the maps");
        conntrack::trust_filter(program.ebpf_mut()).expect("the connection filter");
        let events = EventReader::new(program.ebpf_mut()).expect("opening the event ring");
        Self {
            program,
            image,
            events,
        }
    }

    /// Switches to the policy compiled from `source` (a reload).
    pub fn reload(&mut self, source: &str) {
        self.image = image(source);
        programmer::load(self.program.ebpf_mut(), &self.image, CONFIG_FLOWS).expect("reloading");
    }

    /// The action the program returns for `frame`.
    pub fn run(&mut self, frame: &[u8]) -> u32 {
        testrun::run(self.program.xdp(), frame)
            .expect("BPF_PROG_TEST_RUN")
            .action
    }

    /// True if `frame` passes (to the stack, or redirected by the fast path).
    pub fn passes(&mut self, frame: &[u8]) -> bool {
        match self.run(frame) {
            testrun::XDP_PASS | testrun::XDP_REDIRECT => true,
            testrun::XDP_DROP => false,
            other => panic!("unexpected action {}", testrun::action_name(other)),
        }
    }

    pub fn counters(&self) -> Vec<u64> {
        self.program.counters().expect("reading counters")
    }

    pub fn counter(&self, index: u32) -> u64 {
        self.program.counter(index).expect("reading a counter")
    }

    pub fn events(&mut self) -> Vec<Event> {
        self.events.drain()
    }

    pub fn quarantine(&mut self, addr: IpAddr) {
        quarantine::add(self.program.ebpf_mut(), addr).expect("quarantine add");
    }

    pub fn release(&mut self, addr: IpAddr) {
        quarantine::remove(self.program.ebpf_mut(), addr).expect("quarantine remove");
    }

    /// Forgets the connection `key` (one delete; listing the table would walk every bucket).
    pub fn forget(&mut self, key: &wardgate_common::CtKey) {
        conntrack::forget(self.program.ebpf_mut(), key).expect("conntrack delete");
    }

    /// How much counter `index` moves while `f` runs.
    pub fn delta(&mut self, index: u32, f: impl FnOnce(&mut Self)) -> u64 {
        let before = self.counter(index);
        f(self);
        self.counter(index) - before
    }
}

/// Loads the program with `image` (and `CONFIG_*` `flags`) in the gateway
/// namespace of `topology` and attaches it to every gateway interface.
pub fn attach_to_gateway(
    topology: &crate::netns::Topology,
    image: PolicyImage,
    flags: u32,
) -> Program {
    let ifaces = topology.gateway_ifaces();
    topology
        .gateway
        .spawn(move || {
            let mut program = Program::load()?;
            programmer::load(program.ebpf_mut(), &image, flags)?;
            for iface in &ifaces {
                program.attach(iface)?;
            }
            conntrack::trust_filter(program.ebpf_mut())?;
            Ok(program)
        })
        .join()
        .expect("gateway thread")
        .expect("loading and attaching the program on the gateway")
}

/// Readies the hosts of a veth topology to receive frames the fast path
/// redirects: on veth (not on real NICs) a redirected frame is delivered only
/// if the receiving end runs NAPI (here: an `XDP_PASS` program), and it loses
/// the socket's "checksum still to be done" note (so senders compute full
/// checksums: `ethtool -K eth0 tx off`). Keep the returned programs alive.
pub fn ready_hosts_for_redirects(topology: &crate::netns::Topology) -> Vec<aya::Ebpf> {
    topology
        .hosts
        .iter()
        .map(|host| {
            host.ns
                .exec_ok("ethtool", &["-K", "eth0", "tx", "off"])
                .expect("ethtool -K eth0 tx off");
            host.ns
                .spawn(|| {
                    let mut ebpf = wardgate_agent::loader::load_baseline()?;
                    let xdp: &mut aya::programs::Xdp = ebpf
                        .program_mut(wardgate_agent::loader::BASELINE_NAME)
                        .expect("the object has the baseline program")
                        .try_into()?;
                    xdp.attach("eth0", aya::programs::XdpMode::Driver)?;
                    Ok(ebpf)
                })
                .join()
                .expect("host thread")
                .expect("attaching XDP_PASS on a host")
        })
        .collect()
}
