//! Fuzz target: `common::command::parse` on one command line (without its terminator). Every
//! line that parses must format back to one CRLF line that parses to the same command, and every
//! error must be a 500/501 whose text is safe to put in a reply.
#![no_main]

use common::command::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    match parse(line) {
        Ok(cmd) => {
            let wire = cmd.to_line();
            let body = wire.strip_suffix(b"\r\n").expect("a command line ends in CRLF");
            // An argument must never smuggle a second command onto the wire.
            assert!(!body.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)), "{cmd:?} formats as {body:?}");
            assert!(body.starts_with(cmd.verb().as_bytes()), "{cmd:?} formats as {body:?}");
            assert_eq!(parse(body), Ok(cmd), "line {line:?} formats as {body:?}");
        }
        Err(err) => {
            assert!(matches!(err.reply_code(), 500 | 501), "{err:?}");
            let text = err.to_string();
            assert!(!text.chars().any(char::is_control), "error text {text:?} would break the reply");
        }
    }
});
