//! Fuzz target: the data-address parsers in `common::hostport`: `PORT` and `EPRT` arguments and
//! the text of `227` and `229` replies. Each one runs on the same text; whatever parses must
//! format back to text that parses to the same address.
#![no_main]

use common::hostport::{
    canonical_ip, format_227, format_229, format_eprt_arg, format_port_arg, parse_227, parse_229, parse_eprt_arg,
    parse_port_arg,
};
use core::net::{IpAddr, SocketAddr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(addr) = parse_port_arg(&text) {
        assert_eq!(parse_port_arg(&format_port_arg(addr)), Ok(addr), "PORT {text:?}");
        assert_eq!(parse_227(&format_227(addr)), Ok(addr), "PORT {text:?}");
        // EPRT cannot carry port 0 (RFC 2428 port numbers are 1 to 65535); PORT can.
        if addr.port() != 0 {
            let v4 = SocketAddr::V4(addr);
            assert_eq!(parse_eprt_arg(&format_eprt_arg(v4)), Ok(v4), "PORT {text:?}");
        }
    }

    if let Ok(addr) = parse_eprt_arg(&text) {
        assert_ne!(addr.port(), 0, "EPRT {text:?}");
        assert_eq!(parse_eprt_arg(&format_eprt_arg(addr)), Ok(addr), "EPRT {text:?}");
        let ip = canonical_ip(addr.ip());
        if let IpAddr::V6(v6) = ip {
            assert!(v6.to_ipv4_mapped().is_none(), "{ip} is still a mapped address");
        }
    }

    if let Ok(addr) = parse_227(&text) {
        assert_eq!(parse_227(&format_227(addr)), Ok(addr), "227 {text:?}");
    }

    if let Ok(port) = parse_229(&text) {
        assert_ne!(port, 0, "229 {text:?}");
        assert_eq!(parse_229(&format_229(port)), Ok(port), "229 {text:?}");
    }
});
