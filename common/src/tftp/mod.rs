//! TFTP packets (RFC 1350) with option extensions (RFC 2347 OACK, 2348 blksize, 2349 timeout and
//! tsize, 7440 windowsize): parse from `&[u8]`, format into bytes, netascii conversion that keeps
//! its state across block boundaries, option negotiation as a pure function, and the windowed
//! send and receive loops both programs run ([`send_blocks`], [`receive_blocks`]) over a
//! [`Link`] each implements on its own socket.
//!
//! Parsing is lenient where the RFCs let real clients be sloppy (a missing final NUL, an option
//! name without a value, unknown options) and strict only where the packet cannot be understood
//! (an unknown opcode, a packet shorter than its fixed header, a request without a file name).
//!
//! One concern per file: `packet` (the wire format), `options` (negotiation), `netascii` (text
//! mode), `send` and `receive` (the windows and the loops), `rto` (the retransmission timer they
//! share); this file holds the rest both loops share (the [`Link`] they run over, [`Wait`],
//! [`Stop`], the fixed timer's [`backoff`]).

use std::io;
use std::time::{Duration, Instant};

mod netascii;
mod options;
mod packet;
mod receive;
mod rto;
mod send;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod testlink;

pub use netascii::{ModeWriter, NetasciiDecoder, NetasciiEncoder, NetasciiReader, NetasciiWriter};
pub use options::{negotiate, Limits, Negotiated};
pub use packet::{
    ack_bytes, error_bytes, write_data_header, Direction, ErrorCode, Mode, Packet, ParseError, Request, DATA_HEADER,
    DEFAULT_BLKSIZE, MAX_BLKSIZE, MAX_PACKET, MIN_BLKSIZE, OP_ACK, OP_DATA, OP_ERROR, OP_OACK, OP_RRQ, OP_WRQ,
};
pub use receive::{receive_blocks, Receipt, ReceiveWindow, Received, Receiving};
pub use rto::{Rto, MIN_RTO};
pub use send::{read_block, send_blocks, AckEffect, SendWindow};

/// What a [`Link::wait`] ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A datagram from the peer, this long, at the start of the buffer.
    Datagram(usize),
    /// The deadline passed.
    Deadline,
    /// The peer sent its request again (a server learns it from its listener): it has not seen
    /// the first reply.
    RequestAgain,
}

/// One side of a transfer as [`send_blocks`] and [`receive_blocks`] see it: a datagram socket
/// to the peer's transfer ID, the timer settings and a progress report. Each program implements
/// it over its own socket, so these loops never touch one.
pub trait Link {
    /// The link's own failures (a socket error, a shutdown).
    type Error;

    /// Sends one datagram to the peer.
    fn send(&mut self, packet: &[u8]) -> Result<(), Self::Error>;

    /// Waits until `deadline` for a datagram from the peer, received into `buf`. A datagram
    /// from anyone else is the link's business (RFC 1350 section 4 answers it with error 5)
    /// and does not end the wait.
    fn wait(&mut self, buf: &mut [u8], deadline: Instant) -> Result<Wait, Self::Error>;

    /// The retransmission timeout: the ceiling of the loops' adaptive timer ([`Rto`]), and the
    /// timer itself until a round trip is measured.
    fn timeout(&self) -> Duration;

    /// How many full timeouts in a row end the transfer (the adaptive timer's earlier
    /// retransmissions, below [`Link::timeout`], do not count: see [`Rto`]).
    fn retries(&self) -> u32;

    /// `bytes` more were acknowledged by the peer (sending) or received in order (receiving).
    fn progress(&mut self, bytes: u64);

    /// A full timeout, the `retry`th in a row (for a log line).
    fn timed_out(&mut self, retry: u32) {
        let _ = retry;
    }
}

/// How long to wait after `retries` timeouts in a row: the timeout, doubled after each (up to
/// 16 times it), so a peer whose own timer is slower than ours (tftp-hpa's is 5 s) is waited
/// for and a congested path is not flooded.
pub fn backoff(timeout: Duration, retries: u32) -> Duration {
    timeout * (1u32 << retries.min(4))
}

/// Why [`send_blocks`] or [`receive_blocks`] ended before the final block.
#[derive(Debug)]
pub enum Stop<E> {
    /// The link failed.
    Link(E),
    /// The peer sent an ERROR packet.
    Peer {
        /// Its error code.
        code: u16,
        /// Its message, as sent (not sanitised).
        message: String,
    },
    /// No answer after this many timeouts in a row.
    TimedOut(u32),
    /// Reading the source or writing the sink failed.
    Io(io::Error),
    /// The peer broke the protocol; the message says how (fit for an ERROR 4).
    Protocol(String),
}

/// The timer ran out: backs it off and counts the timeout when it was a full one
/// ([`Rto::expired`]); fails once the retries are exhausted.
fn expire<L: Link + ?Sized>(link: &mut L, rto: &mut Rto, retries: &mut u32) -> Result<(), Stop<L::Error>> {
    if rto.expired(*retries) {
        count_timeout(link, retries)?;
    }
    Ok(())
}

/// Counts one timeout; fails once the retries are exhausted.
fn count_timeout<L: Link + ?Sized>(link: &mut L, retries: &mut u32) -> Result<(), Stop<L::Error>> {
    *retries += 1;
    if *retries > link.retries() {
        return Err(Stop::TimedOut(link.retries()));
    }
    link.timed_out(*retries);
    Ok(())
}
