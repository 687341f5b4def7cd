//! Test harness for wardgate's kernel and end-to-end tests.
//!
//! - [`privilege`]: decide whether a privileged test can run; prints
//!   `skipping: <reason>` when it cannot, and fails instead under `CI=true`.
//! - [`netns`]: network-namespace topologies (hosts, a gateway between them,
//!   veth links, addresses, routes), torn down on drop, also on panic.
//! - [`traffic`]: real TCP connect, UDP exchange and ICMP echo between
//!   namespaces, each with a timeout, reporting success or failure.
//! - [`testrun`]: `BPF_PROG_TEST_RUN` on a loaded XDP program.
//! - [`packet`]: crafted frames for test runs.
//! - [`rawsock`]: raw `AF_PACKET` sockets to inject and capture frames in namespaces.
//! - [`policygen`]: random policies and probes for the differential tests.
//! - [`scalegen`]: large generated policies (nftables scale test, Aerleon bench).
//! - [`enforcer`]: the loaded program with a policy compiled from source, for verdict tests.

pub mod agent;
pub mod enforcer;
pub mod flood;
pub mod flows;
pub mod netns;
pub mod packet;
pub mod policygen;
pub mod privilege;
pub mod rawsock;
pub mod scalegen;
pub mod testrun;
pub mod traffic;
