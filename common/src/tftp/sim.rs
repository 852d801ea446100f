//! Loss tests of the two loops together: [`send_blocks`] and [`receive_blocks`] on two threads,
//! joined by an in-memory network that loses chosen packets and counts each side's timeouts.
//!
//! Time jumps: a packet arrives at once, and a timer fires only when neither side has anything
//! else to do (the one with the earlier deadline first), so a count of timeouts is a count of
//! the times the transfer was stuck, never a measure of time, and no test sleeps.

use super::{ack_bytes, receive_blocks, send_blocks, Link, Received, Receiving, Wait, OP_ACK, OP_DATA};
use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The sending side's index in [`State`]; the receiving side is the other.
const SENDER: usize = 0;
const RECEIVER: usize = 1;

#[derive(Default)]
struct State {
    /// Each side's packets not yet read.
    inbox: [VecDeque<Vec<u8>>; 2],
    /// The deadline of a side blocked in `wait` with nothing to read.
    waiting: [Option<Instant>; 2],
    /// A side's timer is to fire at its next look.
    fire: [bool; 2],
    /// A side has left its loop.
    done: [bool; 2],
}

#[derive(Default)]
struct Net {
    state: Mutex<State>,
    changed: Condvar,
}

/// A packet to lose: (opcode, block number, which transmission of it, counting from 1).
type Loss = (u16, u16, u32);

/// One side's end of the network, and what happened there.
struct End<'n> {
    net: &'n Net,
    side: usize,
    /// Packets this side sends that are lost.
    losses: Vec<Loss>,
    transmissions: HashMap<(u16, u16), u32>,
    /// Packets sent, lost ones included.
    sent: u32,
    /// Waits that ended at the deadline.
    timeouts: u32,
    /// Full timeouts, counted against the retries ([`Link::timed_out`]).
    full_timeouts: u32,
}

impl<'n> End<'n> {
    fn new(net: &'n Net, side: usize, losses: &[Loss]) -> Self {
        End {
            net,
            side,
            losses: losses.to_vec(),
            transmissions: HashMap::new(),
            sent: 0,
            timeouts: 0,
            full_timeouts: 0,
        }
    }

    /// Leaves the loop: the other side's timer is all that can happen to it now. On drop, so
    /// that a side that panics does not leave the other waiting for ever.
    fn finish(&self) {
        self.net.state.lock().unwrap().done[self.side] = true;
        self.net.changed.notify_all();
    }
}

impl Drop for End<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Link for End<'_> {
    type Error = ();

    fn send(&mut self, packet: &[u8]) -> Result<(), ()> {
        self.sent += 1;
        let key = (u16::from_be_bytes([packet[0], packet[1]]), u16::from_be_bytes([packet[2], packet[3]]));
        let nth = self.transmissions.entry(key).or_default();
        *nth += 1;
        if self.losses.contains(&(key.0, key.1, *nth)) {
            return Ok(());
        }
        self.net.state.lock().unwrap().inbox[1 - self.side].push_back(packet.to_vec());
        self.net.changed.notify_all();
        Ok(())
    }

    fn wait(&mut self, buf: &mut [u8], deadline: Instant) -> Result<Wait, ()> {
        let (me, peer) = (self.side, 1 - self.side);
        let mut state = self.net.state.lock().unwrap();
        loop {
            if let Some(packet) = state.inbox[me].pop_front() {
                state.waiting[me] = None;
                buf[..packet.len()].copy_from_slice(&packet);
                return Ok(Wait::Datagram(packet.len()));
            }
            let mut fire = std::mem::take(&mut state.fire[me]);
            state.waiting[me] = Some(deadline);
            let peer_idle = state.done[peer]
                || (state.waiting[peer].is_some() && state.inbox[peer].is_empty() && !state.fire[peer]);
            if !fire && peer_idle {
                // Stuck: the earlier deadline fires.
                match state.waiting[peer] {
                    Some(theirs) if !state.done[peer] && theirs < deadline => {
                        state.fire[peer] = true;
                        self.net.changed.notify_all();
                    }
                    _ => fire = true,
                }
            }
            if fire {
                state.waiting[me] = None;
                self.timeouts += 1;
                return Ok(Wait::Deadline);
            }
            state = self.net.changed.wait(state).unwrap();
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn retries(&self) -> u32 {
        5
    }

    fn progress(&mut self, _bytes: u64) {}

    fn timed_out(&mut self, _retry: u32) {
        self.full_timeouts += 1;
    }
}

/// What a simulated transfer did on each side.
#[derive(Debug)]
struct Run {
    /// (timeouts, full timeouts, packets sent) of the sender and of the receiver.
    sender: (u32, u32, u32),
    receiver: (u32, u32, u32),
}

/// Sends `len` bytes in blocks of 4, `windowsize` at a time, losing the packets named (DATA by
/// the sender, ACK by the receiver); checks the bytes arrived intact.
fn transfer(len: usize, windowsize: u16, losses: &[Loss]) -> Run {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    let net = Net::default();
    let sender = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let mut sender = End::new(&net, SENDER, losses);
            let sent = send_blocks(&mut sender, &mut &data[..], 4, windowsize);
            assert_eq!(sent.expect("sender"), len as u64);
            (sender.timeouts, sender.full_timeouts, sender.sent)
        });
        let mut receiver = End::new(&net, RECEIVER, losses);
        let mut got = Vec::new();
        let r =
            Receiving { blksize: 4, windowsize, first_reply: &ack_bytes(0), first_reply_on_timer: true, pending: None };
        let received = receive_blocks(&mut receiver, &mut got, r).expect("receiver");
        // The final ACK, which the callers send once the data is safe.
        receiver.send(&ack_bytes(received.last_block)).unwrap();
        receiver.finish();
        assert_eq!(received, Received { last_block: (len / 4 + 1) as u16, bytes: len as u64 });
        assert!(got == data, "the bytes received differ from those sent");
        let receiver = (receiver.timeouts, receiver.full_timeouts, receiver.sent);
        (sender.join().unwrap(), receiver)
    });
    Run { sender: sender.0, receiver: sender.1 }
}

fn data(block: u16, nth: u32) -> Loss {
    (OP_DATA, block, nth)
}

fn ack(block: u16, nth: u32) -> Loss {
    (OP_ACK, block, nth)
}

/// No loss, no timeout: 51 blocks in windows of 8 take 7 ACKs (the final one included).
#[test]
fn without_loss_nothing_times_out() {
    let run = transfer(200, 8, &[]);
    assert_eq!((run.sender, run.receiver), ((0, 0, 51), (0, 0, 7)));
}

/// RFC 7440 section 4: a block lost inside a window is answered by the receiver at once with
/// the last block in order, and the sender restarts after it: one round trip, no timer.
#[test]
fn a_block_lost_inside_a_window_costs_no_timeout() {
    let run = transfer(200, 8, &[data(3, 1), data(13, 1), data(22, 1)]);
    assert_eq!((run.sender.0, run.receiver.0), (0, 0), "{run:?}");
}

/// A second block lost in the window the first loss restarted is answered too (the receiver
/// answers each gap, not one per window ACK).
#[test]
fn a_second_loss_while_recovering_costs_no_timeout() {
    let run = transfer(200, 8, &[data(3, 1), data(5, 2), data(7, 3)]);
    assert_eq!((run.sender.0, run.receiver.0), (0, 0), "{run:?}");
}

/// A lost window ACK is one timer expiry, on either side: the receiver repeats its ACK, or the
/// sender resends the window and the receiver answers the first duplicate. Early, not counted.
#[test]
fn a_lost_window_ack_costs_one_early_timeout() {
    let run = transfer(200, 4, &[ack(4, 1), ack(20, 1)]);
    assert_eq!(run.sender.0 + run.receiver.0, 2, "{run:?}");
    assert_eq!((run.sender.1, run.receiver.1), (0, 0), "{run:?}");
}

/// The first block of a window lost: the receiver's answer repeats the ACK the sender already
/// has, which it must ignore (a duplicate ACK never triggers a retransmission: the Sorcerer's
/// Apprentice rule), so the sender's timer recovers, once, early.
#[test]
fn the_first_block_of_a_window_lost_costs_the_senders_timer_once() {
    let run = transfer(200, 4, &[data(5, 1)]);
    assert_eq!((run.sender.0, run.sender.1, run.receiver.1), (1, 0, 0), "{run:?}");
}

/// Lock-step: each loss costs a timer expiry, and with the round trip measured none of them is
/// a full timeout; a loss of the same block again is backed off, still below the ceiling.
#[test]
fn lock_step_losses_are_recovered_by_the_early_timer() {
    let run = transfer(60, 1, &[data(3, 1), ack(5, 1), data(9, 1), data(9, 2), ack(12, 1), ack(12, 2)]);
    assert!(run.sender.0 + run.receiver.0 >= 6, "{run:?}");
    assert_eq!((run.sender.1, run.receiver.1), (0, 0), "{run:?}");
}
