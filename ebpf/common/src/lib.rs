//! Every type and constant that crosses the kernel/user boundary, defined once.
//!
//! The XDP program (`wardgate-xdp`), the compiler (which lowers policies into
//! these shapes) and the agent (which writes them into maps) all use this
//! crate. It is `#![no_std]` and has no dependencies unless the `user`
//! feature is on, which only adds `aya::Pod` impls for the agent.
//!
//! Rules for this crate:
//! - every type is `#[repr(C)]`, `Copy`, has no padding (sizes are asserted at
//!   compile time) and uses `u32`/`u16`/`u8` flags, never `bool` or rich enums;
//! - addresses are stored as 16 bytes: IPv6 as is, IPv4 as an IPv4-mapped IPv6
//!   address (`::ffff:a.b.c.d`), in network byte order;
//! - ports and ICMP types in keys are host byte order numbers (the program
//!   converts once when it parses);
//! - map names are `pub const` strings here; `#[map(name = ...)]` takes only a
//!   literal, so a test checks that the built object defines every name in
//!   [`maps::ALL`].
#![no_std]

pub mod flows;
pub mod maps;
pub mod types;

pub use flows::*;
pub use types::*;
