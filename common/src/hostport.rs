//! Data-connection addresses: `PORT`/`EPRT` arguments (RFC 959, RFC 2428) and the `227`/`229`
//! passive-mode replies, for IPv4 and IPv6.

use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

/// Why a host/port argument or passive reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    /// `PORT` needs exactly six comma-separated numbers.
    #[error("expected six comma-separated numbers h1,h2,h3,h4,p1,p2")]
    PortFieldCount,
    /// A `PORT` field is not a number from 0 to 255.
    #[error("each field must be a number from 0 to 255")]
    PortField,
    /// The `EPRT` argument is not `<d>proto<d>addr<d>port<d>`.
    #[error("expected |proto|address|port|")]
    EprtSyntax,
    /// The `EPRT` protocol is neither 1 (IPv4) nor 2 (IPv6); the server answers 522.
    #[error("network protocol not supported, use (1,2)")]
    EprtProtocol,
    /// The address does not parse, or does not match the protocol number.
    #[error("bad network address")]
    Address,
    /// The port is not a number from 1 to 65535.
    #[error("bad port number")]
    Port,
    /// A `227` reply without six numbers, or a `229` reply without `(|||port|)`.
    #[error("cannot find the data address in the passive-mode reply")]
    PassiveReply,
}

/// Parses the argument of `PORT h1,h2,h3,h4,p1,p2` (RFC 959 section 4.1.2).
pub fn parse_port_arg(arg: &str) -> Result<SocketAddrV4, HostPortError> {
    let fields = parse_six(arg.trim())?;
    Ok(six_to_addr(fields))
}

fn parse_six(text: &str) -> Result<[u8; 6], HostPortError> {
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() != 6 {
        return Err(HostPortError::PortFieldCount);
    }
    let mut out = [0u8; 6];
    for (slot, part) in out.iter_mut().zip(parts) {
        let part = part.trim();
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HostPortError::PortField);
        }
        *slot = part.parse().map_err(|_| HostPortError::PortField)?;
    }
    Ok(out)
}

fn six_to_addr(f: [u8; 6]) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(f[0], f[1], f[2], f[3]), u16::from(f[4]) << 8 | u16::from(f[5]))
}

/// Formats an IPv4 socket address as `h1,h2,h3,h4,p1,p2`.
pub fn format_port_arg(addr: SocketAddrV4) -> String {
    let [a, b, c, d] = addr.ip().octets();
    let [p1, p2] = addr.port().to_be_bytes();
    format!("{a},{b},{c},{d},{p1},{p2}")
}

/// Parses the argument of `EPRT <d>proto<d>addr<d>port<d>` (RFC 2428 section 2). The
/// delimiter is the first character, any printable ASCII character.
pub fn parse_eprt_arg(arg: &str) -> Result<SocketAddr, HostPortError> {
    let arg = arg.trim();
    let delim = arg.chars().next().ok_or(HostPortError::EprtSyntax)?;
    if !(delim.is_ascii_graphic()) || delim.is_ascii_alphanumeric() || delim == '.' || delim == ':' {
        return Err(HostPortError::EprtSyntax);
    }
    let parts: Vec<&str> = arg.split(delim).collect();
    // "|1|1.2.3.4|6275|" splits into ["", "1", "1.2.3.4", "6275", ""].
    let [first, proto, host, port, last] = parts.as_slice() else {
        return Err(HostPortError::EprtSyntax);
    };
    if !first.is_empty() || !last.is_empty() {
        return Err(HostPortError::EprtSyntax);
    }
    let ip: IpAddr = match *proto {
        "1" => IpAddr::V4(host.parse().map_err(|_| HostPortError::Address)?),
        "2" => IpAddr::V6(host.parse().map_err(|_| HostPortError::Address)?),
        _ => return Err(HostPortError::EprtProtocol),
    };
    let port = parse_port_number(port)?;
    Ok(SocketAddr::new(ip, port))
}

fn parse_port_number(text: &str) -> Result<u16, HostPortError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostPortError::Port);
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(HostPortError::Port),
        Ok(p) => Ok(p),
    }
}

/// Formats a socket address as an `EPRT` argument, `|1|a.b.c.d|port|` or `|2|v6addr|port|`.
pub fn format_eprt_arg(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("|1|{}|{}|", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("|2|{}|{}|", a.ip(), a.port()),
    }
}

/// The text of a `227` reply: `Entering Passive Mode (h1,h2,h3,h4,p1,p2).`
pub fn format_227(addr: SocketAddrV4) -> String {
    format!("Entering Passive Mode ({}).", format_port_arg(addr))
}

/// Finds the address in the text of a `227` reply. Like Python's ftplib, it looks for the first
/// run of six comma-separated numbers anywhere in the text, with or without parentheses.
///
/// Clients should use only the port from it and connect to the control peer's address (the fix
/// for CVE-2021-4189 and curl's CVE-2020-8284).
pub fn parse_227(text: &str) -> Result<SocketAddrV4, HostPortError> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if bytes[start].is_ascii_digit() {
            let end = bytes[start..]
                .iter()
                .position(|&b| !(b.is_ascii_digit() || b == b','))
                .map_or(bytes.len(), |p| start + p);
            if let Ok(fields) = parse_six(&text[start..end]) {
                return Ok(six_to_addr(fields));
            }
            start = end;
        } else {
            start += 1;
        }
    }
    Err(HostPortError::PassiveReply)
}

/// The text of a `229` reply: `Entering Extended Passive Mode (|||port|)`.
pub fn format_229(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}

/// Finds the port in the text of a `229` reply, `(<d><d><d>port<d>)` with any delimiter.
pub fn parse_229(text: &str) -> Result<u16, HostPortError> {
    let open = text.find('(').ok_or(HostPortError::PassiveReply)?;
    let rest = &text[open + 1..];
    let close = rest.find(')').ok_or(HostPortError::PassiveReply)?;
    let inner = &rest[..close];
    let mut chars = inner.chars();
    let d = chars.next().ok_or(HostPortError::PassiveReply)?;
    let parts: Vec<&str> = inner.split(d).collect();
    match parts.as_slice() {
        ["", "", "", port, ""] => parse_port_number(port).map_err(|_| HostPortError::PassiveReply),
        _ => Err(HostPortError::PassiveReply),
    }
}

/// Maps an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) to plain IPv4, so that addresses seen on
/// a dual-stack socket compare equal to the ones a client announces (RFC 2577 checks).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv6Addr;

    fn v4(a: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(a), port)
    }

    #[test]
    fn parses_port_args() {
        for (arg, expected) in [
            ("127,0,0,1,4,1", Ok(v4([127, 0, 0, 1], 1025))),
            (" 10,0,0,2,255,255 ", Ok(v4([10, 0, 0, 2], 65535))),
            ("127,0,0,1,4", Err(HostPortError::PortFieldCount)),
            ("127,0,0,1,4,1,1", Err(HostPortError::PortFieldCount)),
            ("127,0,0,1,4,256", Err(HostPortError::PortField)),
            ("127,0,0,1,4,-1", Err(HostPortError::PortField)),
            ("127,0,0,1,4,", Err(HostPortError::PortField)),
            ("127,0,0,1,4,0001", Err(HostPortError::PortField)),
            ("a,0,0,1,4,1", Err(HostPortError::PortField)),
        ] {
            assert_eq!(parse_port_arg(arg), expected, "{arg}");
        }
    }

    #[test]
    fn parses_eprt_args() {
        let six: SocketAddr = "[::1]:6275".parse().unwrap();
        for (arg, expected) in [
            ("|1|132.235.1.2|6275|", Ok(SocketAddr::V4(v4([132, 235, 1, 2], 6275)))),
            ("|2|::1|6275|", Ok(six)),
            ("!2!::1!6275!", Ok(six)),
            ("|2|1080::8:800:200C:417A|5282|", Ok("[1080::8:800:200C:417A]:5282".parse().unwrap())),
            ("|3|1.2.3.4|6275|", Err(HostPortError::EprtProtocol)),
            ("|1|::1|6275|", Err(HostPortError::Address)),
            ("|2|1.2.3.4|6275|", Err(HostPortError::Address)),
            ("|1|1.2.3.4|0|", Err(HostPortError::Port)),
            ("|1|1.2.3.4|65536|", Err(HostPortError::Port)),
            ("|1|1.2.3.4|6275", Err(HostPortError::EprtSyntax)),
            ("1|1.2.3.4|6275|", Err(HostPortError::EprtSyntax)),
            ("", Err(HostPortError::EprtSyntax)),
        ] {
            assert_eq!(parse_eprt_arg(arg), expected, "{arg}");
        }
    }

    #[test]
    fn parses_passive_replies() {
        assert_eq!(parse_227("Entering Passive Mode (127,0,0,1,200,10)."), Ok(v4([127, 0, 0, 1], 51210)));
        // Some servers omit the parentheses (RFC 1123 section 4.1.2.6).
        assert_eq!(parse_227("Entering Passive Mode 10,0,0,1,4,1"), Ok(v4([10, 0, 0, 1], 1025)));
        assert_eq!(parse_227("=1,2,3,4,5,6"), Ok(v4([1, 2, 3, 4], 1286)));
        assert_eq!(parse_227("Entering Passive Mode"), Err(HostPortError::PassiveReply));
        assert_eq!(parse_227("(1,2,3,4,5)"), Err(HostPortError::PassiveReply));
        assert_eq!(parse_229("Entering Extended Passive Mode (|||6446|)"), Ok(6446));
        assert_eq!(parse_229("Entering Extended Passive Mode (!!!6446!)"), Ok(6446));
        assert_eq!(parse_229("Entering Extended Passive Mode (|||0|)"), Err(HostPortError::PassiveReply));
        assert_eq!(parse_229("Entering Extended Passive Mode (|1|x|6446|)"), Err(HostPortError::PassiveReply));
        assert_eq!(parse_229("no port"), Err(HostPortError::PassiveReply));
    }

    #[test]
    fn round_trips() {
        for addr in [v4([0, 0, 0, 0], 1), v4([255, 255, 255, 255], 65535), v4([192, 0, 2, 1], 3555)] {
            assert_eq!(parse_port_arg(&format_port_arg(addr)), Ok(addr));
            assert_eq!(parse_227(&format_227(addr)), Ok(addr));
            assert_eq!(parse_eprt_arg(&format_eprt_arg(SocketAddr::V4(addr))), Ok(SocketAddr::V4(addr)));
        }
        let six: SocketAddr = "[2001:db8::2]:8555".parse().unwrap();
        assert_eq!(parse_eprt_arg(&format_eprt_arg(six)), Ok(six));
        for port in [1, 1024, 65535] {
            assert_eq!(parse_229(&format_229(port)), Ok(port));
        }
    }

    #[test]
    fn maps_v4_in_v6() {
        let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(canonical_ip(mapped), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(canonical_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)), IpAddr::V6(Ipv6Addr::LOCALHOST));
    }

    proptest::proptest! {
        #[test]
        fn never_panic(s in "\\PC{0,40}") {
            let _ = parse_port_arg(&s);
            let _ = parse_eprt_arg(&s);
            let _ = parse_227(&s);
            let _ = parse_229(&s);
        }
    }
}
