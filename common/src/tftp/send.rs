//! The sending side: [`SendWindow`] (which block goes out next, what an ACK does) and
//! [`send_blocks`], the loop both programs run to send a file over a [`Link`].

use super::packet::{write_data_header, Packet, DATA_HEADER, MAX_PACKET};
use super::{expire, Link, Rto, Stop, Wait};
use std::io::{self, Read};
use std::time::Instant;

/// Reads from `input` until `out` is full or the input ends; returns the bytes read. A block
/// shorter than `out` therefore means the end of the data, as TFTP needs.
pub fn read_block(input: &mut impl Read, out: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < out.len() {
        match input.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The sending side's window (RFC 7440; RFC 1350 lock-step is a window of 1). Blocks count from
/// 1 as `u64` and go on the wire as `block as u16`, so any file size crosses the rollover.
/// Retransmission is the caller's timer calling [`SendWindow::rewind`], never a duplicate ACK.
#[derive(Debug, Clone)]
pub struct SendWindow {
    /// The oldest block not yet acknowledged.
    base: u64,
    /// The next block to send.
    next: u64,
    window: u64,
    /// The short final block, once it was read.
    last: Option<u64>,
}

/// What an ACK did to a [`SendWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckEffect {
    /// A duplicate, or an ACK for a block not sent yet: nothing to do.
    Ignored,
    /// Blocks `from..=to` are acknowledged; send the window that now starts after `to`.
    Advanced {
        /// The first block newly acknowledged.
        from: u64,
        /// The last block acknowledged.
        to: u64,
    },
    /// Blocks `from..=to` are acknowledged, `to` being the final block: the transfer is done.
    Done {
        /// The first block newly acknowledged.
        from: u64,
        /// The final block.
        to: u64,
    },
}

impl SendWindow {
    /// A window of `windowsize` blocks (at least 1) before block 1.
    pub fn new(windowsize: u16) -> Self {
        SendWindow { base: 1, next: 1, window: u64::from(windowsize.max(1)), last: None }
    }

    /// The block to send now, or `None` when the window is full or the final block is out.
    pub fn next_to_send(&self) -> Option<u64> {
        let end = self.last.map_or(self.base + self.window, |last| (self.base + self.window).min(last + 1));
        (self.next < end).then_some(self.next)
    }

    /// Records that the block from [`SendWindow::next_to_send`] went out; `is_final` when it
    /// was shorter than the block size.
    pub fn sent(&mut self, is_final: bool) {
        if is_final {
            self.last = Some(self.next);
        }
        self.next += 1;
    }

    /// The buffers a sender's ring needs: the window and the block read ahead.
    pub fn ring_slots(&self) -> usize {
        self.window as usize + 1
    }

    /// The slot of `block` in a ring of [`SendWindow::ring_slots`] buffers.
    pub fn slot(&self, block: u64) -> usize {
        ((block - 1) % (self.window + 1)) as usize
    }

    /// The block to read from the source while the peer answers, `read_upto` being the last
    /// block read: the one after it, if its slot is not taken by a block of the window.
    pub fn read_ahead(&self, read_upto: u64) -> Option<u64> {
        (read_upto < self.base + self.window).then_some(read_upto + 1)
    }

    /// Applies an ACK. An ACK inside the window restarts the window after it (RFC 7440
    /// section 4); a duplicate or an ACK for a block not yet sent is ignored.
    pub fn ack(&mut self, block: u16) -> AckEffect {
        let ahead = u64::from(block.wrapping_sub((self.base - 1) as u16));
        if ahead == 0 || self.base - 1 + ahead >= self.next {
            return AckEffect::Ignored;
        }
        let (from, to) = (self.base, self.base - 1 + ahead);
        self.base = to + 1;
        self.next = self.base;
        if self.last == Some(to) {
            AckEffect::Done { from, to }
        } else {
            AckEffect::Advanced { from, to }
        }
    }

    /// The timer fired: send the window again from the oldest unacknowledged block.
    pub fn rewind(&mut self) {
        self.next = self.base;
    }
}

/// Sends `source` as DATA blocks of `blksize` bytes, `windowsize` of them at a time (RFC 7440;
/// a window of 1 is RFC 1350 lock-step), until the short final block is acknowledged, and
/// returns the bytes sent. The answer to the request (OACK or ACK 0) is the caller's.
///
/// The window's packets, headers included, are kept in one buffer allocated here, so a
/// retransmission never reads `source` again and sending never allocates. Once the window is
/// out, the block after it is read while the peer answers (as BSD tftpd does), so in lock-step
/// the read is not on the round trip's path. Retransmission is on the timer only, never on a
/// duplicate ACK (the Sorcerer's Apprentice rule, RFC 1123 section 4.2.3.1); an ACK inside the
/// window is no duplicate: it restarts the window after it ([`SendWindow::ack`], RFC 7440
/// section 4), so a block lost in a window costs the round trip of the receiver's ACK for the
/// blocks before it. A repeated request is ignored.
///
/// The timer is an [`Rto`] bounded by [`Link::timeout`]: each ACK of a block sent only once
/// measures the round trip (Karn's rule), from the start of the burst that sent it.
pub fn send_blocks<L: Link + ?Sized>(
    link: &mut L,
    source: &mut impl Read,
    blksize: u16,
    windowsize: u16,
) -> Result<u64, Stop<L::Error>> {
    let blksize = usize::from(blksize);
    let mut window = SendWindow::new(windowsize);
    let slot_len = DATA_HEADER + blksize;
    let mut ring = vec![0u8; slot_len * window.ring_slots()];
    let mut lens = vec![0usize; window.ring_slots()];
    let mut buf = vec![0u8; MAX_PACKET + 1];
    let mut bytes = 0u64;
    // The last block read from the source (a retransmitted one is still in the ring), and
    // whether it was the short final one.
    let mut read_upto = 0u64;
    let mut read_all = false;
    // Reads `block` into slot `s`, the DATA header included; true if it is the final block.
    let mut read_next = |ring: &mut [u8], lens: &mut [usize], s: usize, block: u64| -> io::Result<bool> {
        let packet = &mut ring[s * slot_len..(s + 1) * slot_len];
        lens[s] = read_block(source, &mut packet[DATA_HEADER..])?;
        write_data_header(packet, block as u16);
        Ok(lens[s] < blksize)
    };
    // When each slot's block went out for the first time; `None` once it went out again.
    let mut first_sent: Vec<Option<Instant>> = vec![None; window.ring_slots()];
    let mut sent_upto = 0u64;
    let mut rto = Rto::new(link.timeout());
    let mut retries = 0;
    loop {
        // One clock reading per burst: its blocks leave within microseconds, and measuring from
        // the burst's start errs on the long side.
        let burst = Instant::now();
        while let Some(block) = window.next_to_send() {
            let s = window.slot(block);
            if block > read_upto {
                read_all = read_next(&mut ring, &mut lens, s, block).map_err(Stop::Io)?;
                read_upto = block;
            }
            link.send(&ring[s * slot_len..s * slot_len + DATA_HEADER + lens[s]]).map_err(Stop::Link)?;
            first_sent[s] = (block > sent_upto).then_some(burst);
            sent_upto = sent_upto.max(block);
            window.sent(lens[s] < blksize);
        }
        if let Some(block) = window.read_ahead(read_upto).filter(|_| !read_all) {
            read_all = read_next(&mut ring, &mut lens, window.slot(block), block).map_err(Stop::Io)?;
            read_upto = block;
        }
        let deadline = Instant::now() + rto.wait(retries);
        let advanced = loop {
            let len = match link.wait(&mut buf, deadline).map_err(Stop::Link)? {
                Wait::Datagram(len) => len,
                Wait::Deadline => break false,
                Wait::RequestAgain => continue,
            };
            let block = match Packet::parse(&buf[..len]) {
                Ok(Packet::Ack(block)) => block,
                Ok(Packet::Error { code, message }) => return Err(Stop::Peer { code, message }),
                _ => continue,
            };
            let (from, to, done) = match window.ack(block) {
                AckEffect::Ignored => continue,
                AckEffect::Advanced { from, to } => (from, to, false),
                AckEffect::Done { from, to } => (from, to, true),
            };
            if let Some(at) = first_sent[window.slot(to)] {
                rto.sample(at.elapsed());
            }
            let acked: u64 = (from..=to).map(|b| lens[window.slot(b)] as u64).sum();
            bytes += acked;
            link.progress(acked);
            if done {
                return Ok(bytes);
            }
            break true;
        };
        if advanced {
            retries = 0;
        } else {
            expire(link, &mut rto, &mut retries)?;
            window.rewind();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::testlink::{ack, data_packet, CountingReader, Peer, Scripted};
    use crate::tftp::{error_bytes, ErrorCode};
    use std::time::Duration;

    #[test]
    fn send_window_follows_acks() {
        let mut w = SendWindow::new(4);
        let mut sent = Vec::new();
        let send_all = |w: &mut SendWindow, sent: &mut Vec<u64>, final_at: u64| {
            while let Some(block) = w.next_to_send() {
                sent.push(block);
                w.sent(block == final_at);
            }
        };
        send_all(&mut w, &mut sent, 100);
        assert_eq!(sent, [1, 2, 3, 4]);
        // RFC 7440 section 4: an ACK inside the window restarts after it.
        assert_eq!(w.ack(2), AckEffect::Advanced { from: 1, to: 2 });
        sent.clear();
        send_all(&mut w, &mut sent, 100);
        assert_eq!(sent, [3, 4, 5, 6]);
        // Duplicates and ACKs for unsent blocks are ignored (Sorcerer's Apprentice).
        assert_eq!(w.ack(2), AckEffect::Ignored);
        assert_eq!(w.ack(60), AckEffect::Ignored);
        assert_eq!(w.next_to_send(), None);
        w.rewind();
        sent.clear();
        send_all(&mut w, &mut sent, 7);
        assert_eq!(sent, [3, 4, 5, 6]);
        assert_eq!(w.ack(6), AckEffect::Advanced { from: 3, to: 6 });
        sent.clear();
        send_all(&mut w, &mut sent, 7);
        assert_eq!(sent, [7]);
        assert_eq!(w.ack(7), AckEffect::Done { from: 7, to: 7 });
        assert_eq!(w.slot(5), 4);
        assert_eq!(w.slot(6), 0);
    }

    #[test]
    fn send_window_crosses_the_rollover() {
        let mut w = SendWindow::new(1);
        for block in 1..=70_000u64 {
            assert_eq!(w.next_to_send(), Some(block));
            w.sent(block == 70_000);
            let effect = w.ack(block as u16);
            let expected = if block == 70_000 {
                AckEffect::Done { from: block, to: block }
            } else {
                AckEffect::Advanced { from: block, to: block }
            };
            assert_eq!(effect, expected);
        }
    }

    /// A window of 2 over 5 bytes in blocks of 2: a lost ACK makes the timer resend the whole
    /// window, an ACK inside the window restarts after it, a duplicate ACK does nothing.
    #[test]
    fn sender_follows_acks_and_its_timer() {
        let mut link = Scripted::new(vec![Peer::IsSilent, ack(1), ack(1), ack(3), ack(3)]);
        let sent = send_blocks(&mut link, &mut &b"abcde"[..], 2, 2).unwrap();
        assert_eq!((sent, link.progress), (5, 5));
        let expected = [
            data_packet(1, b"ab"),
            data_packet(2, b"cd"),
            data_packet(1, b"ab"),
            data_packet(2, b"cd"),
            data_packet(2, b"cd"),
            data_packet(3, b"e"),
        ];
        assert_eq!(link.sent(), expected);
    }

    /// Karn's rule: an ACK of a block sent twice measures nothing, so the timer stays the full
    /// timeout and every timeout counts, as with a fixed timer.
    #[test]
    fn sender_measures_no_round_trip_on_a_retransmitted_block() {
        let mut link = Scripted::new(vec![Peer::IsSilent, ack(1)]);
        assert!(matches!(send_blocks(&mut link, &mut &b"abcd"[..], 2, 1), Err(Stop::TimedOut(2))));
        let expected = [
            data_packet(1, b"ab"),
            data_packet(1, b"ab"),
            data_packet(2, b"cd"),
            data_packet(2, b"cd"),
            data_packet(2, b"cd"),
        ];
        assert_eq!(link.sent(), expected);
        assert_eq!(link.timed_out, 3, "block 1's timeout and block 2's two");
    }

    /// An ACK of a block sent once measures the round trip (microseconds here): the timer then
    /// retransmits early, doubling from there, and only the timeouts that reach the link's
    /// timeout count against the retries.
    #[test]
    fn sender_retransmits_early_after_measuring_the_round_trip() {
        let mut link = Scripted::new(vec![ack(1)]);
        link.timeout = Duration::from_secs(1);
        assert!(matches!(send_blocks(&mut link, &mut &b"abcd"[..], 2, 1), Err(Stop::TimedOut(2))));
        let sent = link.sent();
        let resent = sent.iter().filter(|p| **p == data_packet(2, b"cd")).count() - 1;
        assert!(resent > 2, "early retransmissions come before the counted ones: {resent}");
        assert_eq!(link.timed_out, 2);
    }

    /// Lock-step: each block after the first is read before the ACK of the one before it is
    /// waited for, and a retransmission sends the block the ACK is missing for.
    #[test]
    fn sender_reads_the_next_block_while_the_peer_answers() {
        let mut link = Scripted::new(vec![Peer::IsSilent, ack(1), ack(2), ack(3)]);
        let mut source = CountingReader { data: b"abcde", read: link.read.clone() };
        assert_eq!(send_blocks(&mut link, &mut source, 2, 1).unwrap(), 5);
        let expected = [data_packet(1, b"ab"), data_packet(1, b"ab"), data_packet(2, b"cd"), data_packet(3, b"e")];
        assert_eq!(link.sent(), expected, "the retransmission is block 1, not the block read ahead");
        assert_eq!(link.at_wait, [(1, 4), (2, 4), (3, 5), (4, 5)], "(packets sent, bytes read) at each wait");
    }

    #[test]
    fn sender_stops_on_error_and_after_its_retries() {
        let error = Peer::Sends(error_bytes(ErrorCode::DiskFull, "full"));
        let mut link = Scripted::new(vec![error]);
        let stop = send_blocks(&mut link, &mut &b"abc"[..], 8, 1).unwrap_err();
        assert!(matches!(stop, Stop::Peer { code: 3, ref message } if message == "full"), "{stop:?}");
        let mut link = Scripted::new(vec![Peer::RepeatsItsRequest]);
        assert!(matches!(send_blocks(&mut link, &mut &b"abc"[..], 8, 1), Err(Stop::TimedOut(2))));
        assert_eq!(link.sent.len(), 3, "the block and two retransmissions");
    }
}
