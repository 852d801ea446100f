//! Unit tests of the command line: what parses, what is refused, and the words used.
use super::*;
use clap::CommandFactory;

#[test]
fn the_definition_is_consistent() {
    Cli::command().debug_assert();
}

fn parse(args: &[&str]) -> Result<Cli, clap::error::ErrorKind> {
    parse_args(std::iter::once("ftclient").chain(args.iter().copied())).map_err(|e| e.kind())
}

#[test]
fn parses_the_coursework_forms() {
    let cli = parse(&["127.0.0.1", "2121", "-l"]).unwrap();
    assert!(cli.list && cli.data_port.is_none());
    let cli = parse(&["::1", "2121", "-l", "5000"]).unwrap();
    assert_eq!((cli.host.as_str(), cli.port(), cli.data_port), ("::1", 2121, Some(5000)));
    let cli = parse(&["h", "21", "-g", "docs/a.txt", "5001"]).unwrap();
    assert_eq!((cli.get.as_deref(), cli.data_port), (Some("docs/a.txt"), Some(5001)));
    let cli = parse(&["h", "21", "-g", "a", "-o", "-"]).unwrap();
    assert_eq!(cli.output_target(), Some(None));
    let cli = parse(&["h", "21", "-p", "a b.txt", "--to", "x/y", "5002"]).unwrap();
    assert_eq!((cli.put, cli.to.as_deref(), cli.data_port), (Some("a b.txt".into()), Some("x/y"), Some(5002)));
    let cli = parse(&["h", "69", "--tftp", "-g", "boot.img", "--blksize", "512"]).unwrap();
    assert!(cli.tftp && cli.blksize == 512 && cli.windowsize == 64);
    let cli = parse(&["h", "21", "-r", "-g", "tree", "--parallel", "8"]).unwrap();
    assert!(cli.recursive && cli.parallel == 8);
    assert_eq!(parse(&["h", "21", "-p", "a"]).unwrap().parallel, 4);
    assert_eq!(parse(&["h", "21", "-g", "a", "--segments", "8"]).unwrap().segments, Some(8));
    assert_eq!(parse(&["h", "21", "-g", "a"]).unwrap().segments, None);
}

#[test]
fn resolves_urls_beside_the_card_forms() {
    let cli = parse(&["ftp://h/"]).unwrap();
    assert!(cli.list && cli.dir.is_none() && cli.get.is_none());
    assert_eq!((cli.host.as_str(), cli.port(), cli.user.as_deref()), ("h", 21, None));
    let cli = parse(&["ftp://h"]).unwrap();
    assert!(cli.list && cli.dir.is_none());
    let cli = parse(&["ftp://bob:pw@[::1]:2121/docs/", "--long"]).unwrap();
    assert!(cli.list && cli.long);
    assert_eq!((cli.host.as_str(), cli.port(), cli.dir.as_deref()), ("::1", 2121, Some("docs")));
    assert_eq!((cli.user.as_deref(), cli.password.as_deref()), (Some("bob"), Some("pw")));
    let cli = parse(&["ftp://h/%2F/"]).unwrap();
    assert_eq!(cli.dir.as_deref(), Some("/"));
    let cli = parse(&["ftp://h:3555/a%20b.txt", "8555", "-o", "x"]).unwrap();
    assert_eq!((cli.get.as_deref(), cli.port(), cli.data_port), (Some("a b.txt"), 3555, Some(8555)));
    let cli = parse(&["-r", "ftp://h/photos/"]).unwrap();
    assert_eq!((cli.recursive, cli.get.as_deref()), (true, Some("photos")));
    let cli = parse(&["-p", "a.txt", "ftp://h/in/"]).unwrap();
    assert_eq!((cli.dir.as_deref(), cli.to.as_deref(), cli.get.as_deref()), (Some("in"), None, None));
    let cli = parse(&["-p", "a.txt", "ftp://h/in/b.txt"]).unwrap();
    assert_eq!((cli.dir.as_deref(), cli.to.as_deref()), (None, Some("in/b.txt")));
    // --user still works when the URL names nobody.
    assert_eq!(parse(&["ftp://h/f", "--user", "ann"]).unwrap().user.as_deref(), Some("ann"));
    // ftps:// is implicit TLS on port 990 unless the URL names a port.
    let cli = parse(&["ftps://h/f", "--pin", &format!("sha256:{}", "ab".repeat(32))]).unwrap();
    assert!(cli.implicit_tls && !cli.tls && cli.port() == 990 && matches!(cli.trust(), Some(Trust::Pin(_))));
    let cli = parse(&["ftp://h/", "--tls", "--insecure"]).unwrap();
    assert_eq!((cli.port(), cli.trust()), (21, Some(Trust::Insecure)));
    // The card's forms are untouched.
    let cli = parse(&["h", "3555", "-g", "file", "8555"]).unwrap();
    assert_eq!((cli.port(), cli.get.as_deref(), cli.data_port), (3555, Some("file"), Some(8555)));
    assert_eq!(parse(&["h", "3555", "-l", "8555"]).unwrap().data_port, Some(8555));
    use clap::error::ErrorKind::*;
    for (args, kind) in [
        (&["ftps://h/f", "--tls"][..], ArgumentConflict),
        (&["http://h/f"], ValueValidation),
        (&["ftp://h/f", "-g", "x"], ArgumentConflict),
        (&["ftp://h/", "-l"], ArgumentConflict),
        (&["ftp://h/f", "--dir", "d"], ArgumentConflict),
        (&["ftp://h/f", "--long"], ArgumentConflict),
        (&["ftp://h/d/", "-o", "x"], ArgumentConflict),
        (&["ftp://u@h/f", "--user", "v"], ArgumentConflict),
        (&["ftp://u:p@h/f", "--password", "q"], ArgumentConflict),
        (&["ftp://h/f", "--tftp"], ArgumentConflict),
        (&["ftp://h/f", "80"], ValueValidation),
        (&["ftp://h/f", "5000", "5001"], TooManyValues),
        (&["-r", "ftp://h/"], ValueValidation),
        (&["-p", "a", "--to", "b", "ftp://h/x"], ArgumentConflict),
    ] {
        assert_eq!(parse(args).err(), Some(kind), "{args:?}");
    }
}

#[test]
fn rejects_bad_usage() {
    use clap::error::ErrorKind::*;
    let pin = format!("sha256:{}", "0".repeat(64));
    for (args, kind) in [
        (&["h", "0", "-l"][..], ValueValidation),
        (&["h", "65536", "-l"], ValueValidation),
        (&["h", "x", "-l"], ValueValidation),
        (&["h", "21", "-l", "80"], ValueValidation),
        (&["h", "21", "-l", "70000"], ValueValidation),
        (&["h", "21"], MissingRequiredArgument),
        (&["h", "21", "-l", "-g", "a"], ArgumentConflict),
        (&["h", "21", "-l", "--resume"], ArgumentConflict),
        (&["h", "21", "-g", "a", "--long"], ArgumentConflict),
        (&["h", "21", "-g", "a", "--checksum", "md5:00"], ValueValidation),
        (&["h", "21", "-g", "a", "--checksum", "sha512:00"], ValueValidation),
        (&["h", "21", "-g", "a", "--hash", "sha512"], ValueValidation),
        (&["h", "21", "-p", "a", "--fsync"], ArgumentConflict),
        (&["h", "21", "-g", "a", "--checksum", "sha256:abc"], ValueValidation),
        (&["h", "21", "-l", "--timeout", "0"], ValueValidation),
        (&["h", "21", "-g", "a\r\nDELE b"], ValueValidation),
        (&["h", "21", "-g", ""], ValueValidation),
        (&["h", "21", "-l", "--dir", "a\nb"], ValueValidation),
        (&["h", "21", "-l", "--user", "a\nb"], ValueValidation),
        (&["h", "21", "-g", "a", "-p", "b"], ArgumentConflict),
        (&["h", "21", "-p", "a", "-o", "b"], ArgumentConflict),
        (&["h", "21", "-g", "a", "--to", "b"], ArgumentConflict),
        (&["h", "21", "-l", "-r"], ArgumentConflict),
        (&["h", "21", "-p", "a", "--parallel", "0"], ValueValidation),
        (&["h", "69", "--tftp", "-l"], ArgumentConflict),
        (&["h", "69", "--tftp", "-g", "a", "5000"], ArgumentConflict),
        (&["h", "69", "--tftp", "-g", "a", "--resume"], ArgumentConflict),
        (&["h", "69", "--tftp", "-g", "a", "--blksize", "7"], ValueValidation),
        (&["h", "69", "--tftp", "-g", "a", "--blksize", "65465"], ValueValidation),
        (&["h", "69", "--tftp", "-g", "a", "--windowsize", "0"], ValueValidation),
        (&["h", "21", "-p", "a", "--to", "a\rb"], ValueValidation),
        (&["h", "21", "-r", "-g", "t", "--checksum", "md5:900150983cd24fb0d6963f7d28e17f72"], ArgumentConflict),
        (&["", "21", "-l"], ValueValidation),
        (&["h", "21", "-l", "--tls", "--implicit-tls"], ArgumentConflict),
        (&["h", "21", "-l", "--insecure"], MissingRequiredArgument),
        (&["h", "21", "-l", "--tls", "--pin", "sha256:00"], ValueValidation),
        (&["h", "21", "-l", "--tls", "--pin", &pin, "--insecure"], ArgumentConflict),
        (&["h", "21", "-l", "--tls", "--cacert", "ca.pem", "--insecure"], ArgumentConflict),
        (&["h", "69", "--tftp", "-g", "a", "--tls"], ArgumentConflict),
        (&["h", "21", "-l", "--password", "p", "--password-file", "f"], ArgumentConflict),
        (&[" ", "21", "-l"], ValueValidation),
        (&["h", "21", "-g", "a", "--segments", "0"], ValueValidation),
        (&["h", "21", "-g", "a", "--segments", "65"], ValueValidation),
        (&["h", "21", "-r", "-g", "a", "--segments", "2"], ArgumentConflict),
        (&["h", "21", "-p", "a", "--segments", "2"], ArgumentConflict),
    ] {
        assert_eq!(parse(args).err(), Some(kind), "{args:?}");
    }
}

#[test]
fn usage_errors_fit_on_one_line() {
    let render = |args: &[&str]| {
        let e = parse_args(std::iter::once("ftclient").chain(args.iter().copied())).unwrap_err();
        crate::report::one_line_error(&e.to_string())
    };
    assert_eq!(render(&["h", "0", "-l"]), "invalid value '0' for '<PORT>': 0 is not in 1..=65535");
    let missing = render(&["h"]);
    assert!(missing.starts_with("the following required arguments were not provided:"), "{missing}");
    assert!(missing.contains("<PORT>") && !missing.contains('\n'), "{missing}");
    assert_eq!(crate::report::one_line_error("plain message"), "plain message");
}

#[test]
fn usage_errors_escape_values_and_hide_passwords() {
    let render = |args: &[&str]| {
        let e = parse_args(std::iter::once("ftclient").chain(args.iter().copied())).unwrap_err();
        crate::report::usage_message(&e)
    };
    let get = render(&["h", "21", "-g", "a\nb"]);
    assert!(get.starts_with("invalid value 'a\\x0ab' for '--get <REMOTE_FILE>'"), "{get}");
    assert!(get.contains("CR, LF or NUL") && !get.contains('\n'), "{get}");
    let password = render(&["h", "21", "-l", "--password", "secret\nword"]);
    assert_eq!(
        password,
        "invalid value for '--password <PASSWORD>': the password contains a CR, LF or NUL character, which FTP cannot carry"
    );
    assert_eq!(render(&["h", "0", "-l"]), "invalid value '0' for '<PORT>': 0 is not in 1..=65535");
}

#[test]
fn parses_checksums() {
    let hex = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
    let c = parse_checksum(&format!("SHA256:{hex}")).unwrap();
    assert_eq!(c.algo, Algo::Sha256);
    assert_eq!(c.digest[..2], [0x9f, 0x86]);
    assert!(parse_checksum(hex).is_err());
    let c = parse_checksum("crc32:CBF43926").unwrap();
    assert_eq!((c.algo, c.digest), (Algo::Crc32, vec![0xcb, 0xf4, 0x39, 0x26]));
    assert_eq!(parse_checksum("md5:900150983cd24fb0d6963f7d28e17f72").unwrap().algo, Algo::Md5);
    assert!(parse_checksum("sha1:00").is_err());
    assert_eq!(parse_hash_choice("AUTO"), Ok(HashChoice::Auto));
    assert_eq!(parse_hash_choice("sha-1"), Ok(HashChoice::Only(Algo::Sha1)));
    assert_eq!(parse_hash_choice("crc32"), Ok(HashChoice::Only(Algo::Crc32)));
    assert_eq!(decode_hex("0aFf"), Some(vec![0x0a, 0xff]));
    assert_eq!(decode_hex("0g"), None);
    assert_eq!(decode_hex("0"), None);
}
