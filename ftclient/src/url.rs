//! `ftp://[user[:password]@]host[:port]/path` URLs (and `ftps://`, implicit FTPS) (RFC 1738 section 3.2, RFC 3986 for the
//! host and percent-encoding), parsed with no I/O. What a URL asks for (list or get) is decided
//! in `cli`.

/// FTP's standard control port, used when a URL names none.
pub const DEFAULT_PORT: u16 = 21;

/// The implicit FTPS port, used when an `ftps://` URL names none (as curl does).
pub const DEFAULT_FTPS_PORT: u16 = 990;

/// A parsed `ftp://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpUrl {
    /// The login name, percent-decoded.
    pub user: Option<String>,
    /// The password, percent-decoded (never shown in a message).
    pub password: Option<String>,
    /// The host name or address; an IPv6 address without its brackets.
    pub host: String,
    /// The control port ([`DEFAULT_PORT`] when the URL has none).
    pub port: u16,
    /// The path after the host's `/`, percent-decoded: relative to the login directory, as in
    /// RFC 1738 (`%2F` at its start makes it absolute). Empty for `ftp://host` and
    /// `ftp://host/`.
    pub path: String,
    /// `ftps://`: TLS from the first byte (implicit FTPS).
    pub implicit_tls: bool,
}

impl FtpUrl {
    /// The URL names a directory (its path is empty or ends in `/`): it is listed.
    pub fn is_dir(&self) -> bool {
        self.path.is_empty() || self.path.ends_with('/')
    }
}

/// Is `arg` meant as a URL (it has a scheme) rather than a host?
pub fn looks_like_url(arg: &str) -> bool {
    arg.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// Parses an `ftp://` URL. Messages never repeat the user part, which may hold a password.
pub fn parse(text: &str) -> Result<FtpUrl, String> {
    let (scheme, rest) = text.split_once("://").ok_or("expected a URL such as ftp://host/path")?;
    let implicit_tls = match scheme.to_ascii_lowercase().as_str() {
        "ftp" => false,
        "ftps" => true,
        other => return Err(format!("unsupported URL scheme {other}://, expected ftp:// or ftps://")),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(at) if rest[at..].starts_with('/') => (&rest[..at], &rest[at + 1..]),
        Some(_) => return Err("an ftp:// URL cannot have a query (?) or a fragment (#)".into()),
        None => (rest, ""),
    };
    if path.contains(['?', '#']) {
        return Err("an ftp:// URL cannot have a query (?) or a fragment (#)".into());
    }
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (user, password) = match info.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (info, None),
            };
            let user = decode(user).map_err(|e| format!("bad user name in the URL: {e}"))?;
            if user.is_empty() {
                return Err("the URL has an empty user name before '@'".into());
            }
            let password = password.map(decode).transpose().map_err(|_| "bad password in the URL".to_owned())?;
            (Some(user), password)
        }
    };
    let default_port = if implicit_tls { DEFAULT_FTPS_PORT } else { DEFAULT_PORT };
    let (host, port) = split_host_port(hostport, default_port)?;
    let path = decode(path).map_err(|e| format!("bad path in the URL: {e}"))?;
    Ok(FtpUrl { user, password, host, port, path, implicit_tls })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; `default_port` when there is none.
fn split_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or("missing ']' after the IPv6 address in the URL")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} in brackets is not an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("expected ':PORT' after ']' in the URL")?)),
        }
    } else {
        match text.split_once(':') {
            Some((_, rest)) if rest.contains(':') => {
                return Err("an IPv6 address in a URL goes in brackets: ftp://[::1]:2121/".into())
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("the URL names no host".into());
    }
    if host.contains(|c: char| c.is_control() || c.is_whitespace() || c == '%') {
        return Err(format!("{} is not a host name", common::text::sanitize(host)));
    }
    let port = match port {
        None | Some("") => default_port,
        Some(port) => match port.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("invalid port {} in the URL, expected 1-65535", common::text::sanitize(port))),
        },
    };
    Ok((host.to_owned(), port))
}

/// Percent-decodes `text` (RFC 3986 section 2.1). The result must be UTF-8 and hold no CR, LF
/// or NUL, which an FTP command line cannot carry.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte =
                hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or("'%' must be followed by two hex digits")?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).map_err(|_| "it does not decode to UTF-8")?;
    if decoded.contains(['\r', '\n', '\0']) {
        return Err("it contains a CR, LF or NUL character, which FTP cannot carry".into());
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(user: Option<&str>, password: Option<&str>, host: &str, port: u16, path: &str) -> FtpUrl {
        FtpUrl {
            user: user.map(str::to_owned),
            password: password.map(str::to_owned),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            implicit_tls: false,
        }
    }

    #[test]
    fn parses_ftp_urls() {
        for (text, expected) in [
            ("ftp://h", url(None, None, "h", 21, "")),
            ("ftp://h/", url(None, None, "h", 21, "")),
            ("FTP://h:2121/docs/", url(None, None, "h", 2121, "docs/")),
            ("ftp://h:/a.txt", url(None, None, "h", 21, "a.txt")),
            ("ftp://bob@h/a%20b.txt", url(Some("bob"), None, "h", 21, "a b.txt")),
            ("ftp://bob:s%40cret@h/x", url(Some("bob"), Some("s@cret"), "h", 21, "x")),
            ("ftp://bob:@h/x", url(Some("bob"), Some(""), "h", 21, "x")),
            ("ftp://[::1]/", url(None, None, "::1", 21, "")),
            ("ftp://u@[::1]:2121/d/f", url(Some("u"), None, "::1", 2121, "d/f")),
            // RFC 1738: %2F makes the path absolute.
            ("ftp://h/%2Fetc/motd", url(None, None, "h", 21, "/etc/motd")),
            ("ftp://h/%C3%BCn%C3%AF%20%F0%9F%9A%80.txt", url(None, None, "h", 21, "ünï 🚀.txt")),
            ("ftp://127.0.0.1:3555/big.bin", url(None, None, "127.0.0.1", 3555, "big.bin")),
            ("ftps://h/f", FtpUrl { implicit_tls: true, ..url(None, None, "h", 990, "f") }),
            ("FTPS://u:p@[::1]:2990/", FtpUrl { implicit_tls: true, ..url(Some("u"), Some("p"), "::1", 2990, "") }),
        ] {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
        assert!(parse("ftp://h/d/").unwrap().is_dir());
        assert!(parse("ftp://h").unwrap().is_dir());
        assert!(!parse("ftp://h/d/f").unwrap().is_dir());
    }

    #[test]
    fn refuses_bad_urls_without_showing_secrets() {
        for (text, needle) in [
            ("http://h/f", "unsupported URL scheme http://"),
            ("ftp:///f", "no host"),
            ("ftp://h:0/f", "invalid port 0"),
            ("ftp://h:99999/f", "invalid port 99999"),
            ("ftp://h:x/f", "invalid port x"),
            ("ftp://::1/f", "goes in brackets"),
            ("ftp://[::1/f", "missing ']'"),
            ("ftp://[nope]/f", "not an IPv6 address"),
            ("ftp://h/a%0d%0aDELE%20b", "CR, LF or NUL"),
            ("ftp://h/a%zz", "two hex digits"),
            ("ftp://h/a%ff", "UTF-8"),
            ("ftp://h/f?x=1", "query"),
            ("ftp://@h/f", "empty user name"),
            ("ftp://bob:%zz@h/f", "bad password"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert!(!parse("ftp://bob:%zzhunter@h/f").unwrap_err().contains("hunter"));
        assert!(looks_like_url("ftp://h") && looks_like_url("ftps://h") && looks_like_url("http://h"));
        assert!(!looks_like_url("ftp.example.org") && !looks_like_url("::1") && !looks_like_url("://h"));
    }
}
