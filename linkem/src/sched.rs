//! The pure model of one direction of the link: given frames and their arrival times, which
//! are lost, which the queue drops, and when each of the others leaves. No clocks, no I/O.
//!
//! A frame goes through the model of a router in front of a slow wire:
//! 1. it is lost on the wire with probability `loss` (decided first, so the random sequence
//!    does not depend on the queue);
//! 2. it joins the queue in front of the rate limit, or is dropped at the tail when the frames
//!    waiting or being serialised would exceed the queue limit;
//! 3. it is serialised at `rate` bit/s after the frames before it;
//! 4. it travels for `delay ± jitter` (never overtaking the frame before it), unless it is
//!    picked for reordering (probability `reorder`), in which case it skips the delay and
//!    overtakes the frames still in flight.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use crate::spec::{Impairment, QueueLimit};

/// The most bytes one direction holds in flight (in the queue and on the delayed wire) before
/// it drops new frames whatever the settings say: a bound on the forwarder's memory when the
/// settings describe a huge bandwidth-delay product or no rate limit at all.
pub const MAX_HELD_BYTES: usize = 256 << 20;

/// What became of a frame offered to the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It will leave at the returned time (`Scheduler::pop_due` hands it out then).
    Scheduled(Duration),
    /// Lost on the wire (random loss).
    Lost,
    /// Dropped at the tail of a full queue (or past `MAX_HELD_BYTES`).
    QueueFull,
}

/// Counters of one direction since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames offered to the link.
    pub frames: u64,
    /// Bytes offered to the link.
    pub bytes: u64,
    /// Frames lost on the wire.
    pub lost: u64,
    /// Frames dropped by the queue limit.
    pub queue_drops: u64,
    /// Frames handed out by `pop_due`.
    pub delivered: u64,
}

/// A small seeded pseudo-random generator (SplitMix64): the same seed gives the same losses,
/// jitter and reordering, so a run can be repeated.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator that starts from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`; draws nothing when `p` is zero, so a setting that is off does
    /// not shift the sequence the other settings see.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }
}

/// A frame waiting on the wire, ordered by departure time and then by arrival.
struct Pending<T> {
    due: Duration,
    seq: u64,
    len: usize,
    item: T,
}

impl<T> PartialEq for Pending<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<T> Eq for Pending<T> {}
impl<T> PartialOrd for Pending<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Pending<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// One direction of the link: frames in (`push`), frames out when due (`pop_due`).
///
/// Times are durations since any fixed origin the caller chooses; they must not go backwards.
pub struct Scheduler<T> {
    spec: Impairment,
    rng: Rng,
    /// Serialisation end time and size of each frame in the rate queue, oldest first.
    queue: VecDeque<(Duration, u64)>,
    queued_bytes: u64,
    /// When the wire finishes serialising the last accepted frame.
    busy_until: Duration,
    /// Departure of the last frame that was not reordered: later frames leave no earlier.
    last_departure: Duration,
    wire: BinaryHeap<Reverse<Pending<T>>>,
    held_bytes: usize,
    seq: u64,
    stats: Stats,
}

impl<T> Scheduler<T> {
    /// A direction with these settings whose random choices follow `seed`.
    pub fn new(spec: Impairment, seed: u64) -> Self {
        Scheduler {
            spec,
            rng: Rng::new(seed),
            queue: VecDeque::new(),
            queued_bytes: 0,
            busy_until: Duration::ZERO,
            last_departure: Duration::ZERO,
            wire: BinaryHeap::new(),
            held_bytes: 0,
            seq: 0,
            stats: Stats::default(),
        }
    }

    /// Offers a frame of `len` bytes that arrived at `now`.
    pub fn push(&mut self, now: Duration, len: usize, item: T) -> Verdict {
        self.stats.frames += 1;
        self.stats.bytes += len as u64;
        if self.rng.chance(self.spec.loss) {
            self.stats.lost += 1;
            return Verdict::Lost;
        }
        if self.held_bytes + len > MAX_HELD_BYTES {
            self.stats.queue_drops += 1;
            return Verdict::QueueFull;
        }
        let serialised = match self.spec.rate {
            None => now,
            Some(rate) => {
                while let Some(&(finish, bytes)) = self.queue.front() {
                    if finish > now {
                        break;
                    }
                    self.queue.pop_front();
                    self.queued_bytes -= bytes;
                }
                let full = match self.spec.queue {
                    QueueLimit::Unbounded => false,
                    QueueLimit::Bytes(limit) => self.queued_bytes + len as u64 > limit,
                    QueueLimit::Packets(limit) => self.queue.len() as u64 + 1 > limit,
                };
                if full {
                    self.stats.queue_drops += 1;
                    return Verdict::QueueFull;
                }
                let start = self.busy_until.max(now);
                let nanos = (len as u128 * 8 * 1_000_000_000).div_ceil(u128::from(rate));
                let finish = start + Duration::from_nanos(nanos as u64);
                self.busy_until = finish;
                self.queue.push_back((finish, len as u64));
                self.queued_bytes += len as u64;
                finish
            }
        };
        let due = if !self.spec.delay.is_zero() && self.rng.chance(self.spec.reorder) {
            serialised
        } else {
            let due = self.jitter(serialised + self.spec.delay);
            let due = due.max(serialised).max(self.last_departure);
            self.last_departure = due;
            due
        };
        self.seq += 1;
        self.held_bytes += len;
        self.wire.push(Reverse(Pending { due, seq: self.seq, len, item }));
        Verdict::Scheduled(due)
    }

    /// Moves `due` by a uniform amount within `± jitter`.
    fn jitter(&mut self, due: Duration) -> Duration {
        let jitter = self.spec.jitter;
        if jitter.is_zero() {
            return due;
        }
        let offset = jitter.mul_f64(self.rng.unit() * 2.0);
        (due + offset).saturating_sub(jitter)
    }

    /// When the next frame leaves, if any is in flight.
    pub fn next_due(&self) -> Option<Duration> {
        self.wire.peek().map(|Reverse(p)| p.due)
    }

    /// The next frame whose departure time is `now` or earlier.
    pub fn pop_due(&mut self, now: Duration) -> Option<T> {
        if self.next_due()? > now {
            return None;
        }
        let Reverse(pending) = self.wire.pop()?;
        self.held_bytes -= pending.len;
        self.stats.delivered += 1;
        Some(pending.item)
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: f64) -> Duration {
        Duration::from_secs_f64(n / 1e3)
    }

    /// Offers `(arrival ms, length)` frames numbered from 0, then drains the link; returns the
    /// verdicts and the frame numbers in the order they left.
    fn run(spec: Impairment, seed: u64, frames: &[(f64, usize)]) -> (Vec<Verdict>, Vec<usize>) {
        let mut link = Scheduler::new(spec, seed);
        let mut left = Vec::new();
        let verdicts = frames
            .iter()
            .enumerate()
            .map(|(i, &(at, len))| {
                while let Some(n) = link.pop_due(ms(at)) {
                    left.push(n);
                }
                link.push(ms(at), len, i)
            })
            .collect();
        while let Some(due) = link.next_due() {
            left.push(link.pop_due(due).unwrap());
        }
        (verdicts, left)
    }

    fn at(millis: f64) -> Verdict {
        Verdict::Scheduled(ms(millis))
    }

    #[test]
    fn a_perfect_link_passes_frames_at_once_and_in_order() {
        let (verdicts, left) = run(Impairment::default(), 1, &[(0.0, 60), (0.0, 1500), (2.0, 9)]);
        assert_eq!(verdicts, [at(0.0), at(0.0), at(2.0)]);
        assert_eq!(left, [0, 1, 2]);
    }

    #[test]
    fn delay_adds_to_every_frame() {
        let spec = Impairment { delay: ms(25.0), ..Default::default() };
        let (verdicts, _) = run(spec, 1, &[(0.0, 100), (1.0, 100), (1.0, 100)]);
        assert_eq!(verdicts, [at(25.0), at(26.0), at(26.0)]);
    }

    #[test]
    fn the_rate_serialises_frames_one_after_another() {
        // 1250 bytes at 10 Mbit/s take exactly 1 ms on the wire.
        let spec = Impairment { rate: Some(10_000_000), delay: ms(5.0), ..Default::default() };
        let frames = [(0.0, 1250), (0.0, 1250), (0.0, 1250), (10.0, 1250)];
        let (verdicts, left) = run(spec, 1, &frames);
        assert_eq!(verdicts, [at(6.0), at(7.0), at(8.0), at(16.0)]);
        assert_eq!(left, [0, 1, 2, 3]);
    }

    #[test]
    fn a_byte_queue_drops_at_the_tail_until_the_wire_drains_it() {
        let spec = Impairment { rate: Some(10_000_000), queue: QueueLimit::Bytes(3000), ..Default::default() };
        // Two 1250-byte frames fit in 3000 bytes, the third does not; at 1 ms the first has
        // left the queue, so the fourth fits again, and at 1.5 ms the queue is full once more.
        let frames = [(0.0, 1250), (0.0, 1250), (0.0, 1250), (1.0, 1250), (1.5, 1250)];
        let (verdicts, left) = run(spec, 1, &frames);
        use Verdict::QueueFull;
        assert_eq!(verdicts, [at(1.0), at(2.0), QueueFull, at(3.0), QueueFull]);
        assert_eq!(left, [0, 1, 3]);
    }

    #[test]
    fn a_packet_queue_counts_frames_not_bytes() {
        let spec = Impairment { rate: Some(8_000_000), queue: QueueLimit::Packets(2), ..Default::default() };
        // 100 bytes at 8 Mbit/s take 0.1 ms.
        let frames = [(0.0, 100), (0.0, 100), (0.0, 100), (0.15, 100)];
        let (verdicts, _) = run(spec, 1, &frames);
        assert_eq!(verdicts, [at(0.1), at(0.2), Verdict::QueueFull, at(0.3)]);
    }

    #[test]
    fn without_a_rate_the_queue_limit_does_nothing() {
        let spec = Impairment { queue: QueueLimit::Packets(1), ..Default::default() };
        let (verdicts, _) = run(spec, 1, &[(0.0, 100), (0.0, 100)]);
        assert_eq!(verdicts, [at(0.0), at(0.0)]);
    }

    #[test]
    fn loss_follows_the_probability_and_the_seed() {
        let spec = Impairment { loss: 0.2, ..Default::default() };
        let frames = vec![(0.0, 100); 10_000];
        let (verdicts, left) = run(spec.clone(), 7, &frames);
        let lost = verdicts.iter().filter(|v| **v == Verdict::Lost).count();
        assert!((1800..=2200).contains(&lost), "{lost} of 10000 lost at 20%");
        assert_eq!(left.len(), 10_000 - lost);
        assert_eq!(run(spec.clone(), 7, &frames).0, verdicts, "same seed, same losses");
        assert_ne!(run(spec, 8, &frames).0, verdicts, "another seed, other losses");
    }

    #[test]
    fn jitter_varies_the_delay_but_never_reorders() {
        let spec = Impairment { delay: ms(10.0), jitter: ms(5.0), ..Default::default() };
        let frames: Vec<_> = (0..1000).map(|i| (i as f64 * 0.1, 100)).collect();
        let (verdicts, left) = run(spec, 3, &frames);
        assert_eq!(left, (0..1000).collect::<Vec<_>>());
        let delays: Vec<f64> = verdicts
            .iter()
            .zip(&frames)
            .map(|(v, &(arrival, _))| match v {
                Verdict::Scheduled(due) => due.as_secs_f64() * 1e3 - arrival,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(delays.iter().all(|d| (4.999..=15.001).contains(d)), "{delays:?}");
        let distinct = delays.iter().map(|d| (d * 1000.0) as i64).collect::<std::collections::HashSet<_>>();
        assert!(distinct.len() > 100, "jitter made only {} distinct delays", distinct.len());
    }

    #[test]
    fn reordered_frames_skip_the_delay_and_overtake() {
        let spec = Impairment { delay: ms(10.0), reorder: 0.25, ..Default::default() };
        let frames: Vec<_> = (0..400).map(|i| (i as f64 * 0.1, 100)).collect();
        let (verdicts, left) = run(spec, 5, &frames);
        let early: Vec<usize> = verdicts
            .iter()
            .zip(&frames)
            .enumerate()
            .filter(|(_, (v, &(arrival, _)))| **v == at(arrival))
            .map(|(i, _)| i)
            .collect();
        assert!((60..=140).contains(&early.len()), "{} of 400 reordered at 25%", early.len());
        let overtaken = left.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(overtaken > 0, "no frame left before an earlier one: {left:?}");
        // Without a delay there is nothing to overtake.
        let spec = Impairment { reorder: 0.25, ..Default::default() };
        assert_eq!(run(spec, 5, &frames).1, (0..400).collect::<Vec<_>>());
    }

    #[test]
    fn stats_count_what_happened() {
        let spec = Impairment { rate: Some(10_000_000), queue: QueueLimit::Packets(1), ..Default::default() };
        let mut link = Scheduler::new(spec, 1);
        link.push(ms(0.0), 1250, ());
        link.push(ms(0.0), 1250, ());
        assert_eq!(link.pop_due(ms(0.5)), None);
        assert_eq!(link.pop_due(ms(1.0)), Some(()));
        let stats = link.stats();
        assert_eq!(stats, Stats { frames: 2, bytes: 2500, lost: 0, queue_drops: 1, delivered: 1 });
    }
}
