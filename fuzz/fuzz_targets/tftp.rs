//! Fuzz target: `common::tftp::Packet::parse` on one datagram and, for requests,
//! `common::tftp::negotiate`. A parsed packet must format back to bytes that parse to the same
//! packet; negotiation must stay within the RFC ranges and the server's limits and acknowledge
//! each option at most once, with the value it granted.
//!
//! Input: one byte choosing the server's limits and whether the file size is known (see
//! `limits`), then the datagram.
#![no_main]

use common::tftp::{negotiate, Direction, Limits, Packet, DEFAULT_BLKSIZE, MAX_BLKSIZE, MIN_BLKSIZE};
use ft_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let (limits, file_size) = limits(&mut input);
    let datagram = input.rest();

    let Ok(packet) = Packet::parse(datagram) else { return };
    let bytes = packet.to_bytes();
    assert_eq!(Packet::parse(&bytes).as_ref(), Ok(&packet), "{datagram:?} formats as {bytes:?}");

    if let Packet::Request(request) = &packet {
        assert!(!request.filename.is_empty());
        let _ = request.mode();
        let n = negotiate(request, limits, file_size);
        assert!((MIN_BLKSIZE..=MAX_BLKSIZE).contains(&n.blksize), "{n:?}");
        if n.blksize != DEFAULT_BLKSIZE {
            assert!(n.blksize <= limits.max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE), "{n:?} {limits:?}");
        }
        assert!(n.windowsize >= 1 && n.windowsize <= limits.max_windowsize.max(1), "{n:?} {limits:?}");
        assert!(
            n.windowsize == 1 || u64::from(n.windowsize) * u64::from(n.blksize) <= u64::from(limits.max_window_bytes),
            "{n:?} {limits:?}"
        );
        if let Some(t) = n.timeout {
            assert!(t >= 1, "{n:?}");
        }
        if request.direction == Direction::Read {
            assert!(n.tsize.is_none() || n.tsize == file_size, "{n:?} for a file of {file_size:?}");
        }
        let mut names: Vec<&str> = n.oack.iter().map(|(name, _)| name.as_str()).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "an option acknowledged twice: {n:?}");
        for (name, value) in &n.oack {
            let granted = match name.as_str() {
                "blksize" => n.blksize.to_string(),
                "windowsize" => n.windowsize.to_string(),
                "timeout" => n.timeout.map(|t| t.to_string()).unwrap_or_default(),
                "tsize" => n.tsize.map(|t| t.to_string()).unwrap_or_default(),
                other => panic!("acknowledged an unknown option {other:?}: {n:?}"),
            };
            assert_eq!(*value, granted, "{n:?}");
        }
        let oack = Packet::Oack(n.oack.clone());
        assert_eq!(Packet::parse(&oack.to_bytes()), Ok(oack));
    }
});

/// The server's limits: the defaults, a typical configuration, the tightest one, or values read
/// from the input; bit 2 says whether the served file's size is known.
fn limits(input: &mut Input<'_>) -> (Limits, Option<u64>) {
    let b = input.byte();
    let limits = match b & 3 {
        0 => Limits::default(),
        1 => Limits { max_blksize: 1468, max_windowsize: 64, max_window_bytes: 1 << 20 },
        2 => Limits { max_blksize: 0, max_windowsize: 0, max_window_bytes: 0 },
        _ => {
            let v = input.u32();
            Limits { max_blksize: (v >> 16) as u16, max_windowsize: v as u16, max_window_bytes: input.u32() }
        }
    };
    let file_size = (b & 4 != 0).then(|| u64::from(input.u32()) << (b >> 3));
    (limits, file_size)
}
