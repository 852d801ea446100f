//! Fuzz target: `common::Control::read_command` over a stream delivered in arbitrary chunks
//! (with `Interrupted` errors in between). It must return exactly what splitting the whole input
//! with `common::line::find_line` and `common::command::parse` gives: chunking never changes
//! the commands, an over-long line is skipped up to its LF and reported once, and EOF is clean
//! only between lines.
//!
//! Input: a line-limit byte, a chunk schedule (see `ft_fuzz::chunk_sizes`), then the stream.
#![no_main]

use common::command::parse;
use common::line::{find_line, Line};
use common::ControlError;
use ft_fuzz::control_over;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut control, stream, max_line) = control_over(data);
    let mut offset = 0;
    loop {
        let rest = &stream[offset..];
        let got = control.read_command();
        match find_line(rest, max_line) {
            Line::Complete { line, consumed } => {
                match got {
                    Ok(Some(parsed)) => assert_eq!(parsed, parse(line), "line {line:?}"),
                    other => panic!("line {line:?} at {offset} read as {other:?}"),
                }
                offset += consumed;
            }
            Line::TooLong => match rest.iter().position(|&b| b == b'\n') {
                Some(lf) => {
                    assert!(matches!(got, Err(ControlError::LineTooLong(n)) if n == max_line), "{got:?}");
                    offset += lf + 1;
                }
                None => {
                    assert!(matches!(got, Err(ControlError::UnexpectedEof)), "{got:?}");
                    break;
                }
            },
            Line::Incomplete if rest.is_empty() => {
                assert!(matches!(got, Ok(None)), "clean EOF read as {got:?}");
                assert!(!control.has_buffered());
                break;
            }
            Line::Incomplete => {
                assert!(matches!(got, Err(ControlError::UnexpectedEof)), "EOF mid-line read as {got:?}");
                break;
            }
        }
    }
});
