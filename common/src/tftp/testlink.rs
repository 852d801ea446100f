//! A [`Link`] to a scripted peer for the unit tests of the send and receive loops.

use super::{ack_bytes, Link, Packet, Wait};
use std::io::{self, Read};
use std::time::{Duration, Instant};

/// What a scripted peer does next.
pub(super) enum Peer {
    Sends(Vec<u8>),
    IsSilent,
    RepeatsItsRequest,
}

/// A link to a scripted peer: `wait` takes the next step, `send` records the packet. When the
/// script runs out the peer is silent, so the retries run out.
pub(super) struct Scripted {
    pub(super) steps: std::collections::VecDeque<Peer>,
    pub(super) sent: Vec<Vec<u8>>,
    pub(super) progress: u64,
    /// Bytes read from a [`CountingReader`] sharing this counter.
    pub(super) read: std::rc::Rc<std::cell::Cell<usize>>,
    /// (packets sent, bytes read) at each wait.
    pub(super) at_wait: Vec<(usize, usize)>,
    /// The link's timeout, the timer's ceiling.
    pub(super) timeout: Duration,
    /// The full timeouts reported ([`Link::timed_out`]).
    pub(super) timed_out: u32,
}

impl Scripted {
    pub(super) fn new(steps: Vec<Peer>) -> Self {
        Scripted {
            steps: steps.into(),
            sent: Vec::new(),
            progress: 0,
            read: Default::default(),
            at_wait: Vec::new(),
            timeout: Duration::from_secs(3600),
            timed_out: 0,
        }
    }

    /// The packets sent, parsed.
    pub(super) fn sent(&self) -> Vec<Packet<'_>> {
        self.sent.iter().map(|p| Packet::parse(p).unwrap()).collect()
    }
}

impl Link for Scripted {
    type Error = ();

    fn send(&mut self, packet: &[u8]) -> Result<(), ()> {
        self.sent.push(packet.to_vec());
        Ok(())
    }

    fn wait(&mut self, buf: &mut [u8], _deadline: Instant) -> Result<Wait, ()> {
        self.at_wait.push((self.sent.len(), self.read.get()));
        Ok(match self.steps.pop_front().unwrap_or(Peer::IsSilent) {
            Peer::Sends(packet) => {
                buf[..packet.len()].copy_from_slice(&packet);
                Wait::Datagram(packet.len())
            }
            Peer::IsSilent => Wait::Deadline,
            Peer::RepeatsItsRequest => Wait::RequestAgain,
        })
    }

    /// Long unless a test says otherwise: the script decides when the timer fires, and old
    /// blocks are answered at most once per timeout.
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn retries(&self) -> u32 {
        2
    }

    fn progress(&mut self, bytes: u64) {
        self.progress += bytes;
    }

    fn timed_out(&mut self, _retry: u32) {
        self.timed_out += 1;
    }
}

pub(super) fn ack(block: u16) -> Peer {
    Peer::Sends(ack_bytes(block).to_vec())
}

pub(super) fn data(block: u16, payload: &[u8]) -> Peer {
    Peer::Sends(Packet::Data { block, data: payload }.to_bytes())
}

pub(super) fn data_packet(block: u16, payload: &[u8]) -> Packet<'_> {
    Packet::Data { block, data: payload }
}

/// Counts the bytes read from it.
pub(super) struct CountingReader<'a> {
    pub(super) data: &'a [u8],
    pub(super) read: std::rc::Rc<std::cell::Cell<usize>>,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.data.read(buf)?;
        self.read.set(self.read.get() + n);
        Ok(n)
    }
}
