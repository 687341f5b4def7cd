//! Service resolution over long chains of definitions (issue 10 item 1).

use std::fmt::Write as _;

use wardgate_compiler::{Options, Packet, Verdict, analyze, decide};

/// `service s0 = s1`, ..., `service s{n-1} = tcp/22`, and a rule using `s0`.
fn service_chain(n: usize) -> String {
    let mut s = String::from("zone a { hosts 10.0.0.1 }\nzone b { hosts 10.0.0.2 }\n");
    for i in 0..n - 1 {
        let _ = writeln!(s, "service s{i} = s{}, tcp/{}", i + 1, 1000 + i % 1000);
    }
    let _ = writeln!(s, "service s{} = tcp/22\nallow a -> b : s0", n - 1);
    s
}

fn verdict(text: &str, port: u16) -> Verdict {
    let loaded = wardgate_lang::parse_str("chain.ward", text);
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    let analysis = analyze(&loaded, &Options::default());
    let image = analysis.image.expect("an image");
    let packet = Packet {
        src: "10.0.0.1".parse().unwrap(),
        dst: "10.0.0.2".parse().unwrap(),
        proto: 6,
        port,
    };
    decide(&image, &packet).verdict
}

/// A rule whose service is defined through 40 others was silently dropped
/// (expansion gave up past depth 32 and took it for a cycle); 10,000 must
/// resolve too, on a small stack.
#[test]
fn issue10_long_service_chains_resolve() {
    assert_eq!(verdict(&service_chain(40), 22), Verdict::Allow);
    let text = service_chain(10_000);
    let v = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            (
                verdict(&text, 22),
                verdict(&text, 1999),
                verdict(&text, 2000),
            )
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert_eq!(v, (Verdict::Allow, Verdict::Allow, Verdict::Deny));
}
