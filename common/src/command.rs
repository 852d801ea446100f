//! FTP commands (RFC 959, 2389, 2428, 3659): one enum variant per command, parsed from one
//! control-connection line and formatted back.

use crate::hostport;
use core::fmt;
use core::net::{SocketAddr, SocketAddrV4};

/// The representation type chosen with `TYPE` (RFC 959 section 3.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferType {
    /// `TYPE A` (optionally `A N`): text, line endings converted to CRLF on the wire.
    Ascii,
    /// `TYPE I` (or `L 8`): bytes exactly as stored.
    Image,
    /// Anything else (`E`, `A T`, `L 16`, ...): valid syntax we do not support (504).
    Unsupported(String),
}

/// The argument of `EPSV` (RFC 2428 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArg {
    /// No argument: the server picks the protocol of the control connection.
    Any,
    /// `EPSV ALL`: from now on only EPSV is allowed for data connections.
    All,
    /// `EPSV 1` (IPv4) or `EPSV 2` (IPv6), or another network protocol number.
    Protocol(u16),
}

/// One FTP command.
///
/// Aliases (`XPWD`, `XCWD`, `XCUP`, `XMKD`, `XRMD`) parse to the same variant as the standard
/// verb, so formatting them back gives the standard verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name`.
    User(String),
    /// `PASS secret` (may be empty).
    Pass(String),
    /// `ACCT info`.
    Acct(String),
    /// `QUIT`.
    Quit,
    /// `NOOP`.
    Noop,
    /// `SYST`.
    Syst,
    /// `FEAT` (RFC 2389).
    Feat,
    /// `OPTS command [options]` (RFC 2389); the raw argument, e.g. `UTF8 ON`.
    Opts(String),
    /// `HELP [command]`.
    Help(Option<String>),
    /// `PWD` / `XPWD`.
    Pwd,
    /// `CWD path` / `XCWD path`.
    Cwd(String),
    /// `CDUP` / `XCUP`.
    Cdup,
    /// `TYPE code`.
    Type(TransferType),
    /// `MODE code` (only `S`, stream, is supported).
    Mode(String),
    /// `STRU code` (only `F`, file, is supported).
    Stru(String),
    /// `PASV`.
    Pasv,
    /// `EPSV [proto|ALL]`.
    Epsv(EpsvArg),
    /// `PORT h1,h2,h3,h4,p1,p2`.
    Port(SocketAddrV4),
    /// `EPRT |proto|addr|port|`.
    Eprt(SocketAddr),
    /// `RETR path`.
    Retr(String),
    /// `LIST [path]`.
    List(Option<String>),
    /// `NLST [path]`.
    Nlst(Option<String>),
    /// `MLSD [path]` (RFC 3659).
    Mlsd(Option<String>),
    /// `MLST [path]` (RFC 3659).
    Mlst(Option<String>),
    /// `SIZE path` (RFC 3659).
    Size(String),
    /// `MDTM path` (RFC 3659).
    Mdtm(String),
    /// `REST offset` (RFC 3659 stream-mode restart).
    Rest(u64),
    /// `ABOR`.
    Abor,
    /// `STAT [path]`.
    Stat(Option<String>),
    /// `AUTH mechanism` (RFC 2228/4217).
    Auth(String),
    /// `PBSZ size`.
    Pbsz(String),
    /// `PROT level`.
    Prot(String),
    /// `STOR path`.
    Stor(String),
    /// `APPE path`.
    Appe(String),
    /// `STOU [name]`.
    Stou(Option<String>),
    /// `MKD path` / `XMKD path`.
    Mkd(String),
    /// `RMD path` / `XRMD path`.
    Rmd(String),
    /// `DELE path`.
    Dele(String),
    /// `RNFR path`.
    Rnfr(String),
    /// `RNTO path`.
    Rnto(String),
    /// `ALLO size...` (accepted and ignored, as most servers do).
    Allo(String),
    /// `SITE text`.
    Site(String),
    /// `REIN`.
    Rein,
    /// `HASH path` (draft-bryan-ftpext-hash).
    Hash(String),
    /// `XSHA256 path`: the legacy single-algorithm form of HASH (answered `250 <hex>`).
    Xsha256(String),
    /// `XSHA1 path`: legacy SHA-1 of a file.
    Xsha1(String),
    /// `XMD5 path`: legacy MD5 of a file.
    Xmd5(String),
    /// `XCRC path`: legacy CRC-32 of a file.
    Xcrc(String),
}

/// Why a command line could not be parsed. [`ParseError::reply_code`] chooses the reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line was empty (or only Telnet control bytes).
    #[error("empty command line")]
    Empty,
    /// The line is not valid UTF-8 (RFC 2640 asks for UTF-8 path names).
    #[error("command line is not valid UTF-8")]
    InvalidUtf8,
    /// The line contains a NUL or a CR, which no command or path may contain.
    #[error("command line contains a NUL or CR byte")]
    ControlByte,
    /// The verb is not one we know.
    #[error("unknown command {0:?}")]
    Unknown(String),
    /// The command needs an argument and got none.
    #[error("{0} needs an argument")]
    MissingArgument(&'static str),
    /// The argument is malformed.
    #[error("bad argument to {verb}: {reason}")]
    BadArgument {
        /// The command.
        verb: &'static str,
        /// What was wrong, for the reply text.
        reason: String,
    },
}

impl ParseError {
    /// The FTP reply code for this error: 500 for an unrecognised command or line, 501 for a
    /// bad argument (RFC 959 section 4.2).
    pub fn reply_code(&self) -> u16 {
        match self {
            ParseError::Empty | ParseError::InvalidUtf8 | ParseError::ControlByte => 500,
            ParseError::Unknown(_) => 500,
            ParseError::MissingArgument(_) | ParseError::BadArgument { .. } => 501,
        }
    }
}

/// Parses one command line, without its line terminator.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let stripped = crate::telnet::strip(line);
    let line = &*stripped;
    if line.contains(&0) || line.contains(&b'\r') || line.contains(&b'\n') {
        return Err(ParseError::ControlByte);
    }
    let line = core::str::from_utf8(line).map_err(|_| ParseError::InvalidUtf8)?;
    let (verb, arg) = match line.split_once(' ') {
        Some((verb, arg)) => (verb, Some(arg)),
        None => (line, None),
    };
    if verb.is_empty() {
        return Err(ParseError::Empty);
    }
    // An empty argument ("CWD ") counts as no argument.
    let arg = arg.filter(|a| !a.trim().is_empty());
    let upper = verb.to_ascii_uppercase();
    let need = |name: &'static str| arg.map(str::to_owned).ok_or(ParseError::MissingArgument(name));
    let opt = || arg.map(str::to_owned);
    let bad = |verb: &'static str, reason: &str| ParseError::BadArgument { verb, reason: reason.to_owned() };
    let no_arg = |cmd: Command| Ok(cmd);
    match upper.as_str() {
        "USER" => Ok(Command::User(need("USER")?)),
        // PASS with an empty argument is legal (anonymous clients sometimes send it).
        "PASS" => Ok(Command::Pass(arg.unwrap_or("").to_owned())),
        "ACCT" => Ok(Command::Acct(need("ACCT")?)),
        "QUIT" => no_arg(Command::Quit),
        "NOOP" => no_arg(Command::Noop),
        "SYST" => no_arg(Command::Syst),
        "FEAT" => no_arg(Command::Feat),
        "OPTS" => Ok(Command::Opts(need("OPTS")?)),
        "HELP" => Ok(Command::Help(opt())),
        "PWD" | "XPWD" => no_arg(Command::Pwd),
        "CWD" | "XCWD" => Ok(Command::Cwd(need("CWD")?)),
        "CDUP" | "XCUP" => no_arg(Command::Cdup),
        "TYPE" => {
            let a = need("TYPE")?.to_ascii_uppercase();
            let words: Vec<&str> = a.split_whitespace().collect();
            Ok(Command::Type(match words.as_slice() {
                ["A"] | ["A", "N"] => TransferType::Ascii,
                ["I"] | ["L", "8"] => TransferType::Image,
                _ => TransferType::Unsupported(a.clone()),
            }))
        }
        "MODE" => Ok(Command::Mode(need("MODE")?)),
        "STRU" => Ok(Command::Stru(need("STRU")?)),
        "PASV" => no_arg(Command::Pasv),
        "EPSV" => Ok(Command::Epsv(match arg.map(str::trim) {
            None => EpsvArg::Any,
            Some(a) if a.eq_ignore_ascii_case("ALL") => EpsvArg::All,
            Some(a) => EpsvArg::Protocol(a.parse().map_err(|_| bad("EPSV", "expected 1, 2 or ALL"))?),
        })),
        "PORT" => {
            let a = need("PORT")?;
            Ok(Command::Port(hostport::parse_port_arg(&a).map_err(|e| bad("PORT", &e.to_string()))?))
        }
        "EPRT" => {
            let a = need("EPRT")?;
            Ok(Command::Eprt(hostport::parse_eprt_arg(&a).map_err(|e| bad("EPRT", &e.to_string()))?))
        }
        "RETR" => Ok(Command::Retr(need("RETR")?)),
        "LIST" => Ok(Command::List(opt())),
        "NLST" => Ok(Command::Nlst(opt())),
        "MLSD" => Ok(Command::Mlsd(opt())),
        "MLST" => Ok(Command::Mlst(opt())),
        "SIZE" => Ok(Command::Size(need("SIZE")?)),
        "MDTM" => Ok(Command::Mdtm(need("MDTM")?)),
        "REST" => {
            let a = need("REST")?;
            let a = a.trim();
            if !a.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("REST", "expected a byte offset"));
            }
            Ok(Command::Rest(a.parse().map_err(|_| bad("REST", "offset out of range"))?))
        }
        "ABOR" => no_arg(Command::Abor),
        "STAT" => Ok(Command::Stat(opt())),
        "AUTH" => Ok(Command::Auth(need("AUTH")?)),
        "PBSZ" => Ok(Command::Pbsz(need("PBSZ")?)),
        "PROT" => Ok(Command::Prot(need("PROT")?)),
        "STOR" => Ok(Command::Stor(need("STOR")?)),
        "APPE" => Ok(Command::Appe(need("APPE")?)),
        "STOU" => Ok(Command::Stou(opt())),
        "MKD" | "XMKD" => Ok(Command::Mkd(need("MKD")?)),
        "RMD" | "XRMD" => Ok(Command::Rmd(need("RMD")?)),
        "DELE" => Ok(Command::Dele(need("DELE")?)),
        "RNFR" => Ok(Command::Rnfr(need("RNFR")?)),
        "RNTO" => Ok(Command::Rnto(need("RNTO")?)),
        "ALLO" => Ok(Command::Allo(need("ALLO")?)),
        "SITE" => Ok(Command::Site(need("SITE")?)),
        "REIN" => no_arg(Command::Rein),
        "HASH" => Ok(Command::Hash(need("HASH")?)),
        "XSHA256" => Ok(Command::Xsha256(need("XSHA256")?)),
        "XSHA1" => Ok(Command::Xsha1(need("XSHA1")?)),
        "XMD5" => Ok(Command::Xmd5(need("XMD5")?)),
        "XCRC" => Ok(Command::Xcrc(need("XCRC")?)),
        _ => Err(ParseError::Unknown(crate::text::sanitize(&upper.chars().take(16).collect::<String>()))),
    }
}

impl Command {
    /// The standard verb, upper case (for logs and replies; never includes the argument, so a
    /// password is never logged by accident).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Acct(_) => "ACCT",
            Command::Quit => "QUIT",
            Command::Noop => "NOOP",
            Command::Syst => "SYST",
            Command::Feat => "FEAT",
            Command::Opts(_) => "OPTS",
            Command::Help(_) => "HELP",
            Command::Pwd => "PWD",
            Command::Cwd(_) => "CWD",
            Command::Cdup => "CDUP",
            Command::Type(_) => "TYPE",
            Command::Mode(_) => "MODE",
            Command::Stru(_) => "STRU",
            Command::Pasv => "PASV",
            Command::Epsv(_) => "EPSV",
            Command::Port(_) => "PORT",
            Command::Eprt(_) => "EPRT",
            Command::Retr(_) => "RETR",
            Command::List(_) => "LIST",
            Command::Nlst(_) => "NLST",
            Command::Mlsd(_) => "MLSD",
            Command::Mlst(_) => "MLST",
            Command::Size(_) => "SIZE",
            Command::Mdtm(_) => "MDTM",
            Command::Rest(_) => "REST",
            Command::Abor => "ABOR",
            Command::Stat(_) => "STAT",
            Command::Auth(_) => "AUTH",
            Command::Pbsz(_) => "PBSZ",
            Command::Prot(_) => "PROT",
            Command::Stor(_) => "STOR",
            Command::Appe(_) => "APPE",
            Command::Stou(_) => "STOU",
            Command::Mkd(_) => "MKD",
            Command::Rmd(_) => "RMD",
            Command::Dele(_) => "DELE",
            Command::Rnfr(_) => "RNFR",
            Command::Rnto(_) => "RNTO",
            Command::Allo(_) => "ALLO",
            Command::Site(_) => "SITE",
            Command::Rein => "REIN",
            Command::Hash(_) => "HASH",
            Command::Xsha256(_) => "XSHA256",
            Command::Xsha1(_) => "XSHA1",
            Command::Xmd5(_) => "XMD5",
            Command::Xcrc(_) => "XCRC",
        }
    }

    /// The command as it goes on the wire, CRLF included.
    pub fn to_line(&self) -> Vec<u8> {
        format!("{self}\r\n").into_bytes()
    }
}

impl fmt::Display for Command {
    /// Formats the command line without its terminator: `VERB` or `VERB argument`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = self.verb();
        let arg: Option<String> = match self {
            Command::User(a)
            | Command::Acct(a)
            | Command::Opts(a)
            | Command::Cwd(a)
            | Command::Mode(a)
            | Command::Stru(a)
            | Command::Retr(a)
            | Command::Size(a)
            | Command::Mdtm(a)
            | Command::Auth(a)
            | Command::Pbsz(a)
            | Command::Prot(a)
            | Command::Stor(a)
            | Command::Appe(a)
            | Command::Mkd(a)
            | Command::Rmd(a)
            | Command::Dele(a)
            | Command::Rnfr(a)
            | Command::Rnto(a)
            | Command::Allo(a)
            | Command::Site(a)
            | Command::Hash(a)
            | Command::Xsha256(a)
            | Command::Xsha1(a)
            | Command::Xmd5(a)
            | Command::Xcrc(a) => Some(a.clone()),
            Command::Pass(a) => Some(a.clone()).filter(|a| !a.is_empty()),
            Command::Help(a)
            | Command::List(a)
            | Command::Nlst(a)
            | Command::Mlsd(a)
            | Command::Mlst(a)
            | Command::Stat(a)
            | Command::Stou(a) => a.clone(),
            Command::Type(TransferType::Ascii) => Some("A".into()),
            Command::Type(TransferType::Image) => Some("I".into()),
            Command::Type(TransferType::Unsupported(a)) => Some(a.clone()),
            Command::Epsv(EpsvArg::Any) => None,
            Command::Epsv(EpsvArg::All) => Some("ALL".into()),
            Command::Epsv(EpsvArg::Protocol(p)) => Some(p.to_string()),
            Command::Port(addr) => Some(hostport::format_port_arg(*addr)),
            Command::Eprt(addr) => Some(hostport::format_eprt_arg(*addr)),
            Command::Rest(n) => Some(n.to_string()),
            Command::Quit
            | Command::Noop
            | Command::Syst
            | Command::Feat
            | Command::Pwd
            | Command::Cdup
            | Command::Pasv
            | Command::Abor
            | Command::Rein => None,
        };
        match arg {
            Some(arg) => write!(f, "{verb} {arg}"),
            None => f.write_str(verb),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    fn check(line: &str, expected: Result<Command, ParseError>) {
        assert_eq!(parse(line.as_bytes()), expected, "line {line:?}");
    }

    #[test]
    fn parses_commands() {
        check("USER anonymous", Ok(Command::User("anonymous".into())));
        check("user anonymous", Ok(Command::User("anonymous".into())));
        check("PASS", Ok(Command::Pass(String::new())));
        check("PASS a b ", Ok(Command::Pass("a b ".into())));
        check("XPWD", Ok(Command::Pwd));
        check("CWD my dir", Ok(Command::Cwd("my dir".into())));
        check("CWD ", Err(ParseError::MissingArgument("CWD")));
        check("RETR  lead", Ok(Command::Retr(" lead".into())));
        check("TYPE i", Ok(Command::Type(TransferType::Image)));
        check("TYPE L 8", Ok(Command::Type(TransferType::Image)));
        check("TYPE A N", Ok(Command::Type(TransferType::Ascii)));
        check("TYPE E", Ok(Command::Type(TransferType::Unsupported("E".into()))));
        check("EPSV", Ok(Command::Epsv(EpsvArg::Any)));
        check("EPSV all", Ok(Command::Epsv(EpsvArg::All)));
        check("EPSV 2", Ok(Command::Epsv(EpsvArg::Protocol(2))));
        check("PORT 127,0,0,1,4,1", Ok(Command::Port(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1025))));
        check(
            "EPRT |2|::1|6275|",
            Ok(Command::Eprt(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 6275, 0, 0)))),
        );
        check("REST 5368709120", Ok(Command::Rest(5_368_709_120)));
        check("LIST", Ok(Command::List(None)));
        check("LIST -la", Ok(Command::List(Some("-la".into()))));
        check("MLSD", Ok(Command::Mlsd(None)));
        // RFC 959 section 4.1.3: ABOR may be preceded by Telnet IP and Synch.
        check("\u{fffd}", Err(ParseError::Unknown("\u{fffd}".into())));
        assert_eq!(parse(b"\xff\xf4\xff\xf2ABOR"), Ok(Command::Abor));
        assert_eq!(parse(b"\xff\xfb\x01NOOP"), Ok(Command::Noop));
    }

    #[test]
    fn rejects_bad_lines() {
        check("", Err(ParseError::Empty));
        check(" USER x", Err(ParseError::Empty));
        check("RETR a\0b", Err(ParseError::ControlByte));
        check("RETR a\rb", Err(ParseError::ControlByte));
        assert_eq!(parse(b"RETR \xc3\x28"), Err(ParseError::InvalidUtf8));
        check("BOGUS x", Err(ParseError::Unknown("BOGUS".into())));
        check("REST -1", Err(ParseError::BadArgument { verb: "REST", reason: "expected a byte offset".into() }));
        check(
            "REST 99999999999999999999999",
            Err(ParseError::BadArgument { verb: "REST", reason: "offset out of range".into() }),
        );
        assert!(matches!(parse(b"PORT 1,2,3"), Err(ParseError::BadArgument { verb: "PORT", .. })));
        assert!(matches!(parse(b"EPRT |3|x|1|"), Err(ParseError::BadArgument { verb: "EPRT", .. })));
        assert_eq!(parse(b"BOGUS").unwrap_err().reply_code(), 500);
        assert_eq!(parse(b"RETR").unwrap_err().reply_code(), 501);
    }

    #[test]
    fn round_trips() {
        let v4 = SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 65535);
        let commands = vec![
            Command::User("a b".into()),
            Command::Pass("secret".into()),
            Command::Pass(String::new()),
            Command::Acct("x".into()),
            Command::Quit,
            Command::Noop,
            Command::Syst,
            Command::Feat,
            Command::Opts("UTF8 ON".into()),
            Command::Help(None),
            Command::Help(Some("RETR".into())),
            Command::Pwd,
            Command::Cwd("/a \"q\" b".into()),
            Command::Cdup,
            Command::Type(TransferType::Ascii),
            Command::Type(TransferType::Image),
            Command::Type(TransferType::Unsupported("E".into())),
            Command::Mode("S".into()),
            Command::Stru("F".into()),
            Command::Pasv,
            Command::Epsv(EpsvArg::Any),
            Command::Epsv(EpsvArg::All),
            Command::Epsv(EpsvArg::Protocol(1)),
            Command::Port(v4),
            Command::Eprt(SocketAddr::V4(v4)),
            Command::Eprt("[fe80::1]:1024".parse().unwrap()),
            Command::Retr("ünï 🚀.bin".into()),
            Command::List(None),
            Command::List(Some("dir".into())),
            Command::Nlst(Some("x".into())),
            Command::Mlsd(None),
            Command::Mlst(Some("f".into())),
            Command::Size("f".into()),
            Command::Mdtm("f".into()),
            Command::Rest(u64::MAX),
            Command::Abor,
            Command::Stat(None),
            Command::Auth("TLS".into()),
            Command::Pbsz("0".into()),
            Command::Prot("P".into()),
            Command::Stor("f".into()),
            Command::Appe("f".into()),
            Command::Stou(None),
            Command::Mkd("d".into()),
            Command::Rmd("d".into()),
            Command::Dele("f".into()),
            Command::Rnfr("a".into()),
            Command::Rnto("b".into()),
            Command::Allo("100".into()),
            Command::Site("CHMOD 644 f".into()),
            Command::Rein,
            Command::Hash("f".into()),
            Command::Xsha256("f".into()),
            Command::Xsha1("a b".into()),
            Command::Xmd5("f".into()),
            Command::Xcrc("f".into()),
        ];
        for cmd in commands {
            let line = cmd.to_line();
            assert!(line.ends_with(b"\r\n"));
            assert_eq!(parse(&line[..line.len() - 2]), Ok(cmd.clone()), "{cmd}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn path_arguments_round_trip(name in "[^\r\n\0]{1,40}") {
            proptest::prop_assume!(!name.trim().is_empty());
            let cmd = Command::Retr(name);
            let line = cmd.to_line();
            proptest::prop_assert_eq!(parse(&line[..line.len() - 2]), Ok(cmd));
        }
    }
}
