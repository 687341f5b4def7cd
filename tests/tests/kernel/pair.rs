//! One client in zone `a`, one server in zone `b`, and the policy between
//! them: what the connection cache and filter tests send.

use std::net::Ipv4Addr;

use wardgate_common::{CtKey, v4_mapped};
use wardgate_tests::packet;

pub const POLICY: &str = r#"
zone a { networks 10.1.0.0/16 }
zone b { networks 10.2.0.0/16 }

allow a -> b : tcp/443, udp/53
"#;

/// The same zones with nothing allowed between them.
pub const CLOSED: &str = r#"
zone a { networks 10.1.0.0/16 }
zone b { networks 10.2.0.0/16 }
"#;

pub const CLIENT: &str = "10.1.0.1";
pub const SERVER: &str = "10.2.0.1";

/// A TCP segment of the client's connection from `sport` to the server's
/// port 443, in either direction.
pub fn tcp(from_client: bool, sport: u16, flags: u8) -> Vec<u8> {
    if from_client {
        packet::tcp(CLIENT, SERVER, sport, 443, flags)
    } else {
        packet::tcp(SERVER, CLIENT, 443, sport, flags)
    }
}

/// The canonical key of the client's connection from `sport` to `dport`.
pub fn key(proto: u8, sport: u16, dport: u16) -> CtKey {
    let v4 = |s: &str| v4_mapped(s.parse::<Ipv4Addr>().unwrap().octets());
    CtKey::new(v4(CLIENT), v4(SERVER), proto, sport, dport, 0)
}
