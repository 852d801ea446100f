//! The impairments of one direction of the link, and parsing their values as `tc` writes them
//! (`25ms`, `0.1%`, `100mbit`, `256KiB`, `100p`).

use std::fmt;
use std::time::Duration;

/// What happens to the frames going one way: the settings of one direction of the link.
///
/// The default is a perfect wire: no delay, no loss, no rate limit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Impairment {
    /// One-way propagation delay added to every frame.
    pub delay: Duration,
    /// Each frame's delay varies uniformly within `delay ± jitter` (never below zero). Jitter
    /// never reorders frames: a frame leaves no earlier than the frame before it.
    pub jitter: Duration,
    /// Probability in `[0, 1]` that a frame is lost on the wire.
    pub loss: f64,
    /// Probability in `[0, 1]` that a frame skips the delay (after its serialisation) and so
    /// overtakes the frames still in flight, as netem's `reorder` does; needs a delay.
    pub reorder: f64,
    /// Serialisation rate in bit/s (a frame of `n` bytes occupies the link for `8n/rate`
    /// seconds); `None` is an infinitely fast link.
    pub rate: Option<u64>,
    /// The router's buffer in front of the rate limit; frames that do not fit are dropped at
    /// the tail. Only meaningful with a rate.
    pub queue: QueueLimit,
}

/// The bound on the frames waiting for serialisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueLimit {
    /// No bound (the default without a rate limit).
    #[default]
    Unbounded,
    /// At most this many bytes of frames waiting or being serialised.
    Bytes(u64),
    /// At most this many frames waiting or being serialised.
    Packets(u64),
}

impl Impairment {
    /// True when the direction changes nothing: frames pass at once and all arrive.
    pub fn is_perfect(&self) -> bool {
        self.delay.is_zero() && self.jitter.is_zero() && self.loss == 0.0 && self.rate.is_none()
    }
}

impl fmt::Display for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "delay {:?}", self.delay)?;
        if !self.jitter.is_zero() {
            write!(f, " ± {:?}", self.jitter)?;
        }
        write!(f, ", loss {}%, reorder {}%", self.loss * 100.0, self.reorder * 100.0)?;
        match self.rate {
            Some(rate) => write!(f, ", rate {rate} bit/s")?,
            None => write!(f, ", no rate limit")?,
        }
        match self.queue {
            QueueLimit::Unbounded => Ok(()),
            QueueLimit::Bytes(n) => write!(f, ", queue {n} bytes"),
            QueueLimit::Packets(n) => write!(f, ", queue {n} packets"),
        }
    }
}

/// Splits `25ms` into (`25`, `ms`): the number and its unit, lower-cased.
fn split_unit(text: &str) -> (&str, String) {
    let text = text.trim();
    let at = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    (&text[..at], text[at..].trim().to_ascii_lowercase())
}

fn number(digits: &str, whole: &str) -> Result<f64, String> {
    match digits.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err(format!("'{whole}' does not start with a number")),
    }
}

/// Parses a duration: `25ms`, `2.5ms`, `500us`, `1s`; a bare number is milliseconds (as in
/// `tc`'s netem examples).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = split_unit(text);
    let n = number(digits, text)?;
    let seconds = match unit.as_str() {
        "" | "ms" | "msec" => n / 1e3,
        "s" | "sec" => n,
        "us" | "usec" | "µs" => n / 1e6,
        "ns" => n / 1e9,
        _ => return Err(format!("'{text}' has unit '{unit}', expected s, ms, us or ns")),
    };
    if seconds > 3600.0 {
        return Err(format!("'{text}' is longer than an hour"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a probability written as a percentage (`0.1%`) or a fraction (`0.001`).
pub fn parse_probability(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let p = match trimmed.strip_suffix('%') {
        Some(percent) => number(percent.trim(), text)? / 100.0,
        None => number(trimmed, text)?,
    };
    if p > 1.0 {
        return Err(format!("'{text}' is more than 100%"));
    }
    Ok(p)
}

/// Parses a rate in bit/s as `tc` writes it: `bit`, `kbit`, `mbit`, `gbit` (powers of 1000);
/// `bps`, `kbps`, `mbps`, `gbps` are bytes per second, as in `tc`; a bare number is bit/s.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let (digits, unit) = split_unit(text);
    let n = number(digits, text)?;
    let bits = match unit.as_str() {
        "" | "bit" => n,
        "kbit" => n * 1e3,
        "mbit" => n * 1e6,
        "gbit" => n * 1e9,
        "bps" => n * 8.0,
        "kbps" => n * 8e3,
        "mbps" => n * 8e6,
        "gbps" => n * 8e9,
        _ => {
            return Err(format!(
                "'{text}' has unit '{unit}', expected bit, kbit, mbit or gbit (or bps, kbps, mbps, gbps for bytes)"
            ))
        }
    };
    if bits < 1000.0 {
        return Err(format!("'{text}' is below 1kbit"));
    }
    Ok(bits.round() as u64)
}

/// Parses a queue limit: bytes (`256KiB`, `64kb`, `1MiB`, `1500b`, a bare number) or packets
/// (`100p`, `100pkt`, `100packets`).
pub fn parse_queue(text: &str) -> Result<QueueLimit, String> {
    let (digits, unit) = split_unit(text);
    let n = number(digits, text)?;
    let bytes = |scale: f64| QueueLimit::Bytes((n * scale).round() as u64);
    let limit = match unit.as_str() {
        "" | "b" => bytes(1.0),
        "k" | "kb" => bytes(1e3),
        "m" | "mb" => bytes(1e6),
        "kib" => bytes(1024.0),
        "mib" => bytes(1024.0 * 1024.0),
        "p" | "pkt" | "pkts" | "packets" => QueueLimit::Packets(n.round() as u64),
        _ => return Err(format!("'{text}' has unit '{unit}', expected b, kb, kib, mb, mib or p (packets)")),
    };
    match limit {
        QueueLimit::Bytes(0) | QueueLimit::Packets(0) => Err(format!("'{text}' holds nothing")),
        limit => Ok(limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let check =
            |text: &str, micros: u64| assert_eq!(parse_duration(text), Ok(Duration::from_micros(micros)), "{text}");
        check("25ms", 25_000);
        check("2.5ms", 2_500);
        check("1s", 1_000_000);
        check("500us", 500);
        check("40", 40_000);
        check(" 0ms ", 0);
        for bad in ["", "ms", "-5ms", "5 minutes", "2h", "99999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn probabilities() {
        let check = |text: &str, p: f64| {
            let got = parse_probability(text).unwrap();
            assert!((got - p).abs() < 1e-12, "{text}: {got}");
        };
        check("0.1%", 0.001);
        check("20%", 0.2);
        check("0.5", 0.5);
        check("100%", 1.0);
        for bad in ["101%", "2", "x%", "-1%"] {
            assert!(parse_probability(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates() {
        let check = |text: &str, bits: u64| assert_eq!(parse_rate(text), Ok(bits), "{text}");
        check("100mbit", 100_000_000);
        check("20Mbit", 20_000_000);
        check("1.5gbit", 1_500_000_000);
        check("64kbit", 64_000);
        check("1mbps", 8_000_000);
        check("5000000", 5_000_000);
        for bad in ["", "10 furlongs", "10bit", "mbit"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn queues() {
        let check = |text: &str, limit: QueueLimit| assert_eq!(parse_queue(text), Ok(limit));
        check("256KiB", QueueLimit::Bytes(262_144));
        check("64kb", QueueLimit::Bytes(64_000));
        check("1MiB", QueueLimit::Bytes(1_048_576));
        check("3000", QueueLimit::Bytes(3000));
        check("100p", QueueLimit::Packets(100));
        check("50packets", QueueLimit::Packets(50));
        for bad in ["0", "0p", "12 bananas", ""] {
            assert!(parse_queue(bad).is_err(), "{bad}");
        }
    }
}
