//! The receiving side: [`ReceiveWindow`] (which block is expected, when to acknowledge) and
//! [`receive_blocks`], the loop both programs run to receive a file over a [`Link`].

use super::packet::{ack_bytes, Packet, MAX_PACKET};
use super::{expire, Link, Rto, Stop, Wait};
use std::io::Write;
use std::time::Instant;

/// The receiving side's window: which block is expected and when to acknowledge.
///
/// The sender's window starts after the last ACK it received (RFC 7440 section 4), which is one
/// we sent, so the window counts from the last ACK sent: a full window after it is acknowledged,
/// wherever the sender restarted.
#[derive(Debug, Clone)]
pub struct ReceiveWindow {
    expected: u64,
    /// The block the last ACK sent acknowledged (0: the first reply).
    acked: u64,
    window: u64,
    /// A re-ACK went out since the last block accepted.
    reacked: bool,
}

/// What to do with a DATA block, as [`ReceiveWindow::data`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// The expected block: keep it; `ack` says whether the window is complete and the block is
    /// to be acknowledged now.
    Accept {
        /// Acknowledge this block now.
        ack: bool,
    },
    /// A block after a gap, or a duplicate of a block already acknowledged: acknowledge the
    /// last block received in order ([`ReceiveWindow::last_ack`]), so the sender restarts after
    /// it. Once until the next block in order, so duplicates do not multiply.
    Reack,
    /// Nothing to do.
    Ignore,
}

impl ReceiveWindow {
    /// A window of `windowsize` blocks (at least 1) before block 1.
    pub fn new(windowsize: u16) -> Self {
        ReceiveWindow { expected: 1, acked: 0, window: u64::from(windowsize.max(1)), reacked: false }
    }

    /// The next block wanted.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// The ACK for the last block received in order (ACK 0 before block 1).
    pub fn last_ack(&self) -> u16 {
        (self.expected - 1) as u16
    }

    /// Decides about DATA `block`.
    ///
    /// A block after a gap is answered at once with the last ACK in order (RFC 7440 section
    /// 4), so a block lost inside a window costs one round trip, not a timeout; a second gap
    /// after the sender's restart is answered again. A duplicate of a block after the last ACK
    /// sent is the sender restarting there, as asked (or on its timer): it is not answered, so
    /// the window still ends where the sender's does. A duplicate of a block already
    /// acknowledged means that ACK was lost: it is answered.
    pub fn data(&mut self, block: u16) -> Receipt {
        let last = self.expected - 1;
        if block == self.expected as u16 {
            self.expected += 1;
            self.reacked = false;
            let ack = self.expected - 1 == self.acked + self.window;
            if ack {
                self.acked = self.expected - 1;
            }
            return Receipt::Accept { ack };
        }
        // Half the block numbers ahead of the expected one are after a gap, the other half
        // behind it are duplicates (`behind` blocks before the last in order).
        let after_gap = block.wrapping_sub(self.expected as u16) < 0x8000;
        let behind = u64::from((last as u16).wrapping_sub(block));
        let acknowledged = !after_gap && behind >= last - self.acked;
        if !(after_gap || acknowledged) || self.reacked {
            return Receipt::Ignore;
        }
        self.reacked = true;
        self.acked = last;
        Receipt::Reack
    }

    /// The timer fired: the caller re-sends [`ReceiveWindow::last_ack`] and a new window begins.
    pub fn rewind(&mut self) {
        self.acked = self.expected - 1;
    }
}

/// How [`receive_blocks`] receives.
#[derive(Debug, Clone, Copy)]
pub struct Receiving<'a> {
    /// The negotiated block size.
    pub blksize: u16,
    /// The negotiated window size (1 for lock-step).
    pub windowsize: u16,
    /// The answer that stands until block 1 arrives: the receiving server's OACK or ACK 0, the
    /// receiving client's ACK 0. Sending it the first time is the caller's.
    pub first_reply: &'a [u8],
    /// Whether our timer repeats `first_reply` (a client's ACK 0), or only a repeated request
    /// does (a server's answer to a WRQ: see `ftserver::tftp::transfer` for why).
    pub first_reply_on_timer: bool,
    /// A datagram that already arrived and is to be handled first (a client's DATA 1 that
    /// answered its read request).
    pub pending: Option<&'a [u8]>,
}

/// What [`receive_blocks`] received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The block number of the short final block, which is written but not acknowledged: the
    /// caller acknowledges it once the data is safe.
    pub last_block: u16,
    /// The bytes written to the sink.
    pub bytes: u64,
}

/// Receives DATA into `sink` until the short final block (RFC 1350; RFC 7440 windows): blocks
/// in order are written, a full window is acknowledged, a duplicate or a block after a gap is
/// answered once with the last ACK in order ([`ReceiveWindow::data`]), and the timer repeats
/// that ACK (before block 1: `first_reply`, see [`Receiving::first_reply_on_timer`]). Old
/// blocks that keep coming mean our ACK was lost too: they are answered at most once per
/// timeout. The sink is not flushed.
///
/// The timer is an [`Rto`] bounded by [`Link::timeout`]. A window's ACK sent once measures the
/// round trip when the block after it arrives (the first reply too, sent by the caller just
/// before, unless a DATA is pending); a re-ACK measures nothing (Karn's rule).
///
/// A block larger than `blksize` ends the transfer, and so does a block 1 that comes again with
/// other bytes (before the block numbers roll over): curl 7.88 sends its *next* block as block
/// 1 whenever an OACK arrives while it sends, so one the network duplicated would cost the file
/// a block, both sides reporting success. Failing is better than storing that.
pub fn receive_blocks<L: Link + ?Sized>(
    link: &mut L,
    sink: &mut impl Write,
    r: Receiving<'_>,
) -> Result<Received, Stop<L::Error>> {
    let blksize = usize::from(r.blksize);
    let mut buf = vec![0u8; MAX_PACKET + 1];
    let mut pending = r.pending.map(|datagram| {
        let len = datagram.len().min(buf.len());
        buf[..len].copy_from_slice(&datagram[..len]);
        len
    });
    let mut window = ReceiveWindow::new(r.windowsize);
    // Block 1 as received, to recognise another block sent under its number.
    let mut first_block = Vec::new();
    let mut bytes = 0u64;
    let mut rto = Rto::new(link.timeout());
    let mut retries = 0;
    // When an ACK last went out: old blocks are answered at most once per timeout.
    let mut acked_at = Instant::now();
    // When the last ACK went out if it was sent once, for the next block to measure the round
    // trip: the first reply was sent by the caller just now.
    let mut measure_from = r.pending.is_none().then_some(acked_at);
    let mut deadline = acked_at + rto.wait(0);
    loop {
        let wait = match pending.take() {
            Some(len) => Wait::Datagram(len),
            None => link.wait(&mut buf, deadline).map_err(Stop::Link)?,
        };
        let len = match wait {
            Wait::Datagram(len) => len,
            Wait::Deadline => {
                expire(link, &mut rto, &mut retries)?;
                if window.expected() > 1 || r.first_reply_on_timer {
                    reack(link, &window, r.first_reply)?;
                    acked_at = Instant::now();
                    measure_from = None;
                }
                window.rewind();
                deadline = Instant::now() + rto.wait(retries);
                continue;
            }
            Wait::RequestAgain => {
                if window.expected() == 1 {
                    link.send(r.first_reply).map_err(Stop::Link)?;
                    acked_at = Instant::now();
                    measure_from = None;
                }
                continue;
            }
        };
        let (block, size, receipt) = match Packet::parse(&buf[..len]) {
            Ok(Packet::Data { block, data }) => {
                if data.len() > blksize {
                    return Err(Stop::Protocol(format!("block of {} bytes, negotiated blksize {blksize}", data.len())));
                }
                if block == 1 && (2..=1 << 16).contains(&window.expected()) && data != first_block {
                    return Err(Stop::Protocol("block 1 sent again with different data".into()));
                }
                let receipt = window.data(block);
                if let Receipt::Accept { .. } = receipt {
                    if window.expected() == 2 {
                        first_block = data.to_vec();
                    }
                    sink.write_all(data).map_err(Stop::Io)?;
                }
                (block, data.len(), receipt)
            }
            Ok(Packet::Error { code, message }) => return Err(Stop::Peer { code, message }),
            _ => continue,
        };
        match receipt {
            Receipt::Accept { ack } => {
                let now = Instant::now();
                if let Some(at) = measure_from.take() {
                    rto.sample(now - at);
                }
                bytes += size as u64;
                link.progress(size as u64);
                if size < blksize {
                    return Ok(Received { last_block: block, bytes });
                }
                if ack {
                    link.send(&ack_bytes(block)).map_err(Stop::Link)?;
                    acked_at = now;
                    measure_from = Some(now);
                }
                retries = 0;
                deadline = now + rto.wait(0);
            }
            Receipt::Reack => {
                reack(link, &window, r.first_reply)?;
                acked_at = Instant::now();
                measure_from = None;
            }
            // The sender keeps retransmitting old blocks: our re-ACK was lost too. Answer again,
            // but no more than once per timeout (a sender that retransmits on its own timer is
            // still ahead of ours, which backs off).
            Receipt::Ignore if acked_at.elapsed() >= rto.wait(retries) => {
                reack(link, &window, r.first_reply)?;
                acked_at = Instant::now();
                measure_from = None;
                window.rewind();
            }
            Receipt::Ignore => {}
        }
    }
}

/// Acknowledges the last block received in order (`first_reply` before block 1).
fn reack<L: Link + ?Sized>(link: &mut L, window: &ReceiveWindow, first_reply: &[u8]) -> Result<(), Stop<L::Error>> {
    let sent = if window.expected() == 1 { link.send(first_reply) } else { link.send(&ack_bytes(window.last_ack())) };
    sent.map_err(Stop::Link)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::testlink::{data, Peer, Scripted};

    #[test]
    fn receive_window_acks_windows_and_gaps() {
        let mut w = ReceiveWindow::new(2);
        assert_eq!(w.data(1), Receipt::Accept { ack: false });
        assert_eq!(w.data(3), Receipt::Reack);
        assert_eq!(w.last_ack(), 1);
        assert_eq!(w.data(4), Receipt::Ignore);
        assert_eq!(w.data(2), Receipt::Accept { ack: false });
        assert_eq!(w.data(3), Receipt::Accept { ack: true });
        assert_eq!(w.data(3), Receipt::Reack);
        assert_eq!(w.data(3), Receipt::Ignore);
        w.rewind();
        assert_eq!((w.expected(), w.last_ack()), (4, 3));
    }

    /// Runs DATA block numbers through a window and compares each receipt; `ack` is the block
    /// the window's last ACK goes to afterwards.
    fn check(window: u16, steps: &[(u16, Receipt)], ack: u16) {
        let mut w = ReceiveWindow::new(window);
        for (i, &(block, expected)) in steps.iter().enumerate() {
            assert_eq!(w.data(block), expected, "step {i}: block {block} in {steps:?}");
        }
        assert_eq!(w.last_ack(), ack);
    }

    /// RFC 7440 section 4: the receiver answers a gap at once with its last block in order,
    /// and its window follows the sender's restarts.
    #[test]
    fn receive_window_follows_the_senders_restarts() {
        use Receipt::{Accept, Ignore, Reack};
        let no = Accept { ack: false };
        let yes = Accept { ack: true };
        // A second gap, in the window the first one restarted, is answered too (the sender
        // would otherwise wait for its timer); the window then ends 8 after the last re-ACK.
        let second_gap = [(1, no), (2, no), (4, Reack), (5, Ignore), (3, no), (4, no), (6, Reack), (7, Ignore)];
        check(8, &second_gap, 4);
        let restarted = [(1, no), (3, Reack), (2, no), (3, no), (4, no), (5, yes)];
        check(4, &restarted, 5);
        // The sender's timer resends blocks after our last ACK: not answered, and the window
        // still ends where the sender's does.
        check(4, &[(1, no), (2, no), (3, no), (1, Ignore), (2, Ignore), (3, Ignore), (4, yes)], 4);
        // A duplicate of a block already acknowledged means that ACK was lost: answered once
        // until the next block in order.
        check(2, &[(1, no), (2, yes), (1, Reack), (2, Ignore), (3, no), (2, Reack), (1, Ignore)], 3);
        // Across the rollover: 65535 is behind 0, 1 is ahead of it.
        let mut w = ReceiveWindow::new(1);
        for block in 1..=65536u64 {
            assert_eq!(w.data(block as u16), yes);
        }
        assert_eq!((w.data(65535), w.data(2), w.data(1)), (Reack, Ignore, yes));
    }

    /// Lock-step, as a server receives a WRQ: before block 1 the timer sends nothing and a
    /// repeated request gets the first reply; afterwards the timer repeats the last ACK. The
    /// final block is not acknowledged (the caller does it).
    #[test]
    fn receiver_repeats_its_first_reply_only_for_a_repeated_request() {
        let oack = Packet::Oack(vec![("blksize".into(), "2".into())]).to_bytes();
        let steps = vec![
            Peer::IsSilent,
            Peer::RepeatsItsRequest,
            data(1, b"ab"),
            Peer::IsSilent,
            Peer::RepeatsItsRequest,
            data(2, b"c"),
        ];
        let mut link = Scripted::new(steps);
        let mut out = Vec::new();
        let r = Receiving { blksize: 2, windowsize: 1, first_reply: &oack, first_reply_on_timer: false, pending: None };
        let received = receive_blocks(&mut link, &mut out, r).unwrap();
        assert_eq!(received, Received { last_block: 2, bytes: 3 });
        assert_eq!((out.as_slice(), link.progress), (&b"abc"[..], 3));
        assert_eq!(link.sent, [oack.clone(), ack_bytes(1).to_vec(), ack_bytes(1).to_vec()]);

        // A client's ACK 0 is repeated by its timer.
        let mut link = Scripted::new(vec![Peer::IsSilent, data(1, b"a")]);
        let r = Receiving { first_reply: &ack_bytes(0), first_reply_on_timer: true, ..r };
        receive_blocks(&mut link, &mut Vec::new(), r).unwrap();
        assert_eq!(link.sent, [ack_bytes(0).to_vec()]);
    }

    /// A pending DATA 1 is handled first; a window of 2 is acknowledged at its end; a block
    /// after a gap gets the last ACK in order once.
    #[test]
    fn receiver_windows_and_pending_block() {
        let first = Packet::Data { block: 1, data: b"ab" }.to_bytes();
        let steps = vec![data(3, b"ef"), data(4, b"gh"), data(2, b"cd"), data(3, b"ef"), data(4, b"")];
        let mut link = Scripted::new(steps);
        let mut out = Vec::new();
        let r = Receiving {
            blksize: 2,
            windowsize: 2,
            first_reply: &[],
            first_reply_on_timer: true,
            pending: Some(&first),
        };
        let received = receive_blocks(&mut link, &mut out, r).unwrap();
        assert_eq!(received, Received { last_block: 4, bytes: 6 });
        assert_eq!(out, b"abcdef");
        assert_eq!(link.sent, [ack_bytes(1).to_vec(), ack_bytes(3).to_vec()]);
    }

    /// curl 7.88's answer to a second OACK: its next block numbered 1. Refused, not stored.
    #[test]
    fn receiver_refuses_a_changed_block_1_and_oversized_blocks() {
        let r = Receiving {
            blksize: 2,
            windowsize: 1,
            first_reply: &ack_bytes(0),
            first_reply_on_timer: false,
            pending: None,
        };
        let mut link = Scripted::new(vec![data(1, b"ab"), data(1, b"ab"), data(1, b"cd")]);
        let stop = receive_blocks(&mut link, &mut Vec::new(), r).unwrap_err();
        assert!(matches!(stop, Stop::Protocol(ref m) if m.contains("block 1")), "{stop:?}");
        let mut link = Scripted::new(vec![data(1, b"abc")]);
        assert!(matches!(receive_blocks(&mut link, &mut Vec::new(), r), Err(Stop::Protocol(_))));
        let mut link = Scripted::new(vec![data(1, b"ab")]);
        assert!(matches!(receive_blocks(&mut link, &mut Vec::new(), r), Err(Stop::TimedOut(2))));
    }
}
