//! wardgate-agent: the only crate that touches the kernel.
//!
//! It loads the XDP program built from `ebpf/xdp` (embedded at build time),
//! attaches it to a gateway's interfaces and programs its maps. Kernel-version
//! logic lives here and nowhere else.
//!
//! The daemon (`wardgate-agent run`, [`daemon`]) pins the maps and links under
//! bpffs ([`pin`]) so that enforcement outlives it, reloads policies
//! ([`policy`], [`programmer`]), serves a control socket ([`control`]) and
//! Prometheus metrics ([`metrics`]), and writes drop and audit events as JSON
//! lines ([`eventlog`]). With a bundle source it pulls signed policy bundles
//! over HTTPS ([`bundle_source`]). `docs/agent.md` documents its configuration
//! ([`config`]) and wire formats.

pub mod bpffs;
pub mod bundle_source;
pub mod clock;
pub mod config;
pub mod conntrack;
pub mod control;
pub mod daemon;
pub mod eventlog;
pub mod events;
pub mod failsafe;
pub mod flowlog;
pub mod loader;
pub mod mapped;
pub mod metrics;
pub mod pin;
pub mod policy;
pub mod programmer;
pub mod quarantine;

pub use loader::{AttachMode, Attached, Program};
