//! wardgate-agent: the only crate that touches the kernel.
//!
//! It loads the XDP program built from `ebpf/xdp` (embedded at build time),
//! attaches it to a gateway's interfaces and programs its maps. Kernel-version
//! logic lives here and nowhere else.

pub mod conntrack;
pub mod events;
pub mod loader;
pub mod programmer;
pub mod quarantine;

pub use loader::{AttachMode, Attached, Program};
