//! The command line: namespace names, the link settings for both directions and the overrides
//! for one direction. The doc comments are the `--help` text.

use std::time::Duration;

use clap::Parser;
use linkem::spec::{parse_duration, parse_probability, parse_queue, parse_rate};
use linkem::{Impairment, QueueLimit, Settings};

/// The queue in front of a rate limit when none is given, like a Linux interface's txqueuelen.
const DEFAULT_QUEUE: QueueLimit = QueueLimit::Packets(1000);

/// Joins two new network namespaces through an emulated link: delay, jitter, loss, reordering,
/// a rate limit and a bounded queue, in each direction.
///
/// Side A is 10.77.0.1/24 in namespace A, side B is 10.77.0.2/24 in namespace B (addresses that
/// exist only inside the two namespaces). Prints `ready NS_A 10.77.0.1 NS_B 10.77.0.2` when the
/// link works, forwards until SIGINT or SIGTERM, then removes the namespaces and prints the
/// counters of each direction. Needs root.
#[derive(Debug, Parser)]
#[command(name = "linkem", version)]
pub struct Args {
    /// Name of namespace A (created; must not exist)
    #[arg(long, value_name = "NAME")]
    pub ns_a: String,
    /// Name of namespace B (created; must not exist)
    #[arg(long, value_name = "NAME")]
    pub ns_b: String,
    /// One-way delay in each direction, e.g. 25ms
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    pub delay: Option<Duration>,
    /// Each frame's delay varies uniformly within delay ± jitter (frames keep their order)
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    pub jitter: Option<Duration>,
    /// Probability that a frame is lost, e.g. 0.1%
    #[arg(long, value_parser = parse_probability, value_name = "PERCENT")]
    pub loss: Option<f64>,
    /// Probability that a frame skips the delay and overtakes the frames in flight, e.g. 0.5%
    #[arg(long, value_parser = parse_probability, value_name = "PERCENT")]
    pub reorder: Option<f64>,
    /// Serialisation rate of Ethernet frames, e.g. 100mbit (tc units: kbit, mbit, gbit)
    #[arg(long, value_parser = parse_rate, value_name = "RATE")]
    pub rate: Option<u64>,
    /// The router queue in front of the rate, tail drop: bytes (256KiB) or packets (100p);
    /// 1000p when a rate is given
    #[arg(long, value_parser = parse_queue, value_name = "SIZE")]
    pub queue: Option<QueueLimit>,
    /// --delay for frames from A to B only
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    pub a_to_b_delay: Option<Duration>,
    /// --jitter for frames from A to B only
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    pub a_to_b_jitter: Option<Duration>,
    /// --loss for frames from A to B only
    #[arg(long, value_parser = parse_probability, value_name = "PERCENT")]
    pub a_to_b_loss: Option<f64>,
    /// --reorder for frames from A to B only
    #[arg(long, value_parser = parse_probability, value_name = "PERCENT")]
    pub a_to_b_reorder: Option<f64>,
    /// --rate for frames from A to B only
    #[arg(long, value_parser = parse_rate, value_name = "RATE")]
    pub a_to_b_rate: Option<u64>,
    /// --queue for frames from A to B only
    #[arg(long, value_parser = parse_queue, value_name = "SIZE")]
    pub a_to_b_queue: Option<QueueLimit>,
    /// --delay for frames from B to A only
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    pub b_to_a_delay: Option<Duration>,
    /// --jitter for frames from B to A only
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    pub b_to_a_jitter: Option<Duration>,
    /// --loss for frames from B to A only
    #[arg(long, value_parser = parse_probability, value_name = "PERCENT")]
    pub b_to_a_loss: Option<f64>,
    /// --reorder for frames from B to A only
    #[arg(long, value_parser = parse_probability, value_name = "PERCENT")]
    pub b_to_a_reorder: Option<f64>,
    /// --rate for frames from B to A only
    #[arg(long, value_parser = parse_rate, value_name = "RATE")]
    pub b_to_a_rate: Option<u64>,
    /// --queue for frames from B to A only
    #[arg(long, value_parser = parse_queue, value_name = "SIZE")]
    pub b_to_a_queue: Option<QueueLimit>,
    /// Seed of the random choices (loss, jitter, reordering): the same seed repeats a run
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// MTU of the two devices
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u32).range(576..=65000))]
    pub mtu: u32,
}

/// One direction's overrides, in the order of the shared settings.
type Overrides = (Option<Duration>, Option<Duration>, Option<f64>, Option<f64>, Option<u64>, Option<QueueLimit>);

impl Args {
    /// The settings of both directions: each override, else the shared value, else none.
    pub fn settings(&self) -> Settings {
        let a_to_b = (
            self.a_to_b_delay,
            self.a_to_b_jitter,
            self.a_to_b_loss,
            self.a_to_b_reorder,
            self.a_to_b_rate,
            self.a_to_b_queue,
        );
        let b_to_a = (
            self.b_to_a_delay,
            self.b_to_a_jitter,
            self.b_to_a_loss,
            self.b_to_a_reorder,
            self.b_to_a_rate,
            self.b_to_a_queue,
        );
        Settings { a_to_b: self.direction(a_to_b), b_to_a: self.direction(b_to_a), seed: self.seed, mtu: self.mtu }
    }

    fn direction(&self, (delay, jitter, loss, reorder, rate, queue): Overrides) -> Impairment {
        let rate = rate.or(self.rate);
        let queue = queue.or(self.queue);
        Impairment {
            delay: delay.or(self.delay).unwrap_or_default(),
            jitter: jitter.or(self.jitter).unwrap_or_default(),
            loss: loss.or(self.loss).unwrap_or_default(),
            reorder: reorder.or(self.reorder).unwrap_or_default(),
            rate,
            queue: match (rate, queue) {
                (Some(_), None) => DEFAULT_QUEUE,
                (_, queue) => queue.unwrap_or_default(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let all = ["linkem", "--ns-a", "a", "--ns-b", "b"].iter().chain(args);
        Args::try_parse_from(all).unwrap().settings()
    }

    #[test]
    fn shared_settings_apply_both_ways_and_overrides_one_way() {
        let s = settings(&["--delay", "25ms", "--loss", "1%", "--b-to-a-loss", "0", "--a-to-b-rate", "20mbit"]);
        assert_eq!(s.a_to_b.delay, Duration::from_millis(25));
        assert_eq!(s.b_to_a.delay, Duration::from_millis(25));
        assert_eq!((s.a_to_b.loss, s.b_to_a.loss), (0.01, 0.0));
        assert_eq!((s.a_to_b.rate, s.b_to_a.rate), (Some(20_000_000), None));
        assert_eq!((s.a_to_b.queue, s.b_to_a.queue), (DEFAULT_QUEUE, QueueLimit::Unbounded));
    }

    #[test]
    fn no_settings_make_a_perfect_link() {
        let s = settings(&[]);
        assert!(s.a_to_b.is_perfect() && s.b_to_a.is_perfect());
        assert_eq!((s.seed, s.mtu), (1, 1500));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for bad in [["--loss", "120%"], ["--rate", "fast"], ["--queue", "0p"], ["--mtu", "100"]] {
            let all = ["linkem", "--ns-a", "a", "--ns-b", "b"].into_iter().chain(bad);
            assert!(Args::try_parse_from(all).is_err(), "{bad:?}");
        }
    }
}
