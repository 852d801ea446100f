//! Fuzz target: `common::Reply::parse` on a buffer of replies and `common::Control::read_reply`
//! on the same bytes delivered in arbitrary chunks. Both must agree reply by reply (and on the
//! first error); every parsed reply must format back to bytes that parse to the same reply
//! (inner lines that look like a final line come back with the protecting leading space).
//!
//! Input: a line-limit byte, a chunk schedule (see `ft_fuzz::chunk_sizes`), then the stream.
#![no_main]

use common::line::{find_line, Line};
use common::reply::{parse_transfer_size, ReplyError};
use common::{ControlError, Reply};
use ft_fuzz::control_over;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut control, stream, max_line) = control_over(data);
    let mut offset = 0;
    loop {
        let rest = &stream[offset..];
        let parsed = Reply::parse(rest, max_line);
        let read = control.read_reply();
        match parsed {
            Ok(Some((reply, used))) => {
                assert!(used > 0 && used <= rest.len(), "used {used} of {}", rest.len());
                check_reply(&reply);
                match read {
                    Ok(r) => assert_eq!(r, reply),
                    Err(e) => panic!("Reply::parse gave {reply:?}, read_reply {e:?}"),
                }
                offset += used;
            }
            Ok(None) => {
                // EOF inside the reply: after a complete first line it is a truncated reply,
                // before one the server simply closed.
                let truncated = matches!(find_line(rest, max_line), Line::Complete { .. });
                match read {
                    Err(ControlError::UnexpectedEof) if truncated => {}
                    Err(ControlError::Closed) if !truncated => {}
                    other => panic!("EOF in {rest:?} read as {other:?}"),
                }
                break;
            }
            Err(ReplyError::TooLong(n)) => {
                assert_eq!(n, max_line);
                let (started, at) = too_long_line(rest, max_line);
                let ends = rest[at..].contains(&b'\n');
                match read {
                    Err(ControlError::LineTooLong(n)) if ends && n == max_line => {}
                    Err(ControlError::UnexpectedEof) if !ends && started => {}
                    Err(ControlError::Closed) if !ends && !started => {}
                    other => panic!("over-long line in {rest:?} read as {other:?}"),
                }
                break;
            }
            Err(err) => {
                assert!(matches!(&read, Err(ControlError::Reply(e)) if *e == err), "{err:?} read as {read:?}");
                break;
            }
        }
    }
});

/// Where the first over-long line of `buf` starts, and whether a complete line precedes it.
fn too_long_line(buf: &[u8], max_line: usize) -> (bool, usize) {
    let mut at = 0;
    loop {
        match find_line(&buf[at..], max_line) {
            Line::Complete { consumed, .. } => at += consumed,
            Line::TooLong => return (at > 0, at),
            Line::Incomplete => panic!("Reply::parse said too long, find_line incomplete at {at}"),
        }
    }
}

fn has_code(line: &str) -> bool {
    matches!(line.as_bytes(), [b'1'..=b'5', b'0'..=b'9', b'0'..=b'9', ..])
}

fn check_reply(reply: &Reply) {
    assert!((100..=599).contains(&reply.code), "{reply:?}");
    assert!(!reply.lines.is_empty());
    assert!(reply.lines.iter().all(|l| !l.contains('\n')), "{reply:?}");
    let text = reply.text();
    let _ = parse_transfer_size(&text);
    let shown = common::text::sanitize(&text);
    assert!(!shown.chars().any(char::is_control), "sanitize({text:?}) = {shown:?}");

    let bytes = reply.to_bytes();
    let (back, used) = Reply::parse(&bytes, bytes.len())
        .unwrap_or_else(|e| panic!("{reply:?} formats as {bytes:?}, which fails: {e}"))
        .unwrap_or_else(|| panic!("{reply:?} formats as {bytes:?}, which is incomplete"));
    assert_eq!(used, bytes.len());
    let n = reply.lines.len();
    let expected: Vec<String> = reply
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| if i > 0 && i + 1 < n && has_code(l) { format!(" {l}") } else { l.clone() })
        .collect();
    assert_eq!(back, Reply { code: reply.code, lines: expected }, "formatted as {bytes:?}");
}
