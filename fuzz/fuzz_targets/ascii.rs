//! Fuzz target: the streaming line-ending converters, FTP `TYPE A` (`common::ascii`) and TFTP
//! netascii (`common::tftp::NetasciiEncoder`/`NetasciiDecoder`). However the stream is cut into
//! blocks (and however small the encoder's output buffers), the result is the same as in one
//! piece, and decoding what was encoded gives the input back.
//!
//! Input: a chunk schedule for the input blocks, one for the encoder's output buffers (see
//! `ft_fuzz::chunk_sizes`), then the data.
#![no_main]

use common::ascii::{FromNetwork, ToNetwork};
use common::tftp::{NetasciiDecoder, NetasciiEncoder};
use ft_fuzz::{chunk_sizes, split, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let blocks = chunk_sizes(&mut input);
    let buffers = chunk_sizes(&mut input);
    let text = input.rest();
    let pieces = split(text, &blocks);

    // FTP TYPE A.
    let to_net = |pieces: &[&[u8]]| {
        let mut c = ToNetwork::new();
        let mut out = Vec::new();
        pieces.iter().for_each(|p| c.convert(p, &mut out));
        out
    };
    let from_net = |pieces: &[&[u8]]| {
        let mut c = FromNetwork::new();
        let mut out = Vec::new();
        pieces.iter().for_each(|p| c.convert(p, &mut out));
        c.finish(&mut out);
        out
    };
    let net = to_net(&[text]);
    assert_eq!(to_net(&pieces), net, "TYPE A encoding depends on the blocks");
    let local = from_net(&[&net]);
    assert_eq!(from_net(&split(&net, &blocks)), local, "TYPE A decoding depends on the blocks");
    assert_eq!(from_net(&split(text, &blocks)), from_net(&[text]), "TYPE A decoding depends on the blocks");
    // A CR that is already followed by LF is sent as it is, so only CR-free text round trips.
    if !text.contains(&b'\r') {
        assert_eq!(local, text);
    }

    // TFTP netascii.
    let encoded = netascii_encode(&pieces, &buffers);
    assert_eq!(netascii_encode(&[text], &[usize::MAX]), encoded, "netascii encoding depends on the blocks");
    let mut decoded = Vec::new();
    let mut decoder = NetasciiDecoder::new();
    for piece in split(&encoded, &blocks) {
        decoder.decode(piece, &mut decoded);
    }
    decoder.finish(&mut decoded);
    assert_eq!(decoded, text, "netascii does not round trip");
});

/// Encodes `pieces` one after the other into output buffers whose sizes follow `buffers`
/// cyclically (0 is an empty buffer), the way a sender fills one DATA block at a time.
fn netascii_encode(pieces: &[&[u8]], buffers: &[usize]) -> Vec<u8> {
    let mut encoder = NetasciiEncoder::new();
    let mut out = Vec::new();
    let mut sizes = buffers.iter().cycle();
    let mut block = vec![0u8; 512];
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() || encoder.has_pending() {
            let size = (*sizes.next().expect("cycle")).min(2 * rest.len() + 1);
            block.resize(size.max(block.len()), 0);
            let (consumed, written) = encoder.encode(rest, &mut block[..size]);
            assert!(consumed <= rest.len() && written <= size);
            assert!(consumed == rest.len() || written == size, "output not full with input left");
            out.extend_from_slice(&block[..written]);
            rest = &rest[consumed..];
        }
    }
    out
}
