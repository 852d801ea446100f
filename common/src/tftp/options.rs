//! Option negotiation (RFC 2347, 2348 blksize, 2349 timeout and tsize, 7440 windowsize) as a
//! pure function of a request and the server's limits.

use super::packet::{Direction, Request, DEFAULT_BLKSIZE, MAX_BLKSIZE, MIN_BLKSIZE};

/// What the server is willing to grant, the bounds of [`negotiate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest block size granted (requests above are clamped to it).
    pub max_blksize: u16,
    /// The largest window granted (requests above are clamped to it).
    pub max_windowsize: u16,
    /// The most bytes one window may hold (`windowsize * blksize`); the window is shrunk to fit,
    /// which bounds the memory a sender keeps for retransmission.
    pub max_window_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_blksize: MAX_BLKSIZE, max_windowsize: u16::MAX, max_window_bytes: u32::MAX }
    }
}

/// The outcome of option negotiation: the transfer parameters and the OACK to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Bytes per DATA block.
    pub blksize: u16,
    /// Blocks sent before waiting for an ACK (1 is RFC 1350 lock-step).
    pub windowsize: u16,
    /// The retransmission timeout in seconds the client asked for, if it did.
    pub timeout: Option<u8>,
    /// The transfer size: the file size on a read, the announced size on a write.
    pub tsize: Option<u64>,
    /// The options to acknowledge, in the client's order; empty means send no OACK.
    pub oack: Vec<(String, String)>,
}

/// Negotiates the options of a request (RFC 2347). Unknown options, options that appear twice
/// (all but the first), unparsable and out-of-range values are ignored; a `blksize` or
/// `windowsize` above the limits is clamped. `file_size` is the size of the file a read serves;
/// a read's `tsize` is acknowledged only when it is known.
pub fn negotiate(request: &Request, limits: Limits, file_size: Option<u64>) -> Negotiated {
    let mut n = Negotiated { blksize: DEFAULT_BLKSIZE, windowsize: 1, timeout: None, tsize: None, oack: Vec::new() };
    let mut seen: [bool; 4] = [false; 4];
    for (name, value) in &request.options {
        let value = value.trim();
        let Ok(number) = value.parse::<u64>() else { continue };
        let name = name.to_ascii_lowercase();
        let slot = match name.as_str() {
            "blksize" => 0,
            "windowsize" => 1,
            "timeout" => 2,
            "tsize" => 3,
            _ => continue,
        };
        if seen[slot] {
            continue;
        }
        let granted = match slot {
            // RFC 2348: 8 to 65464; a server may answer with a smaller value.
            0 if number >= u64::from(MIN_BLKSIZE) => {
                n.blksize = number.min(u64::from(limits.max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE))) as u16;
                n.blksize as u64
            }
            // RFC 7440: 1 to 65535; a server may answer with a smaller value.
            1 if number >= 1 => {
                n.windowsize = number.min(u64::from(limits.max_windowsize.max(1))) as u16;
                n.windowsize as u64
            }
            // RFC 2349: 1 to 255 seconds, echoed as it is or not at all.
            2 if (1..=255).contains(&number) => {
                n.timeout = Some(number as u8);
                number
            }
            3 => match request.direction {
                Direction::Read => match file_size {
                    Some(size) => {
                        n.tsize = Some(size);
                        size
                    }
                    None => continue,
                },
                Direction::Write => {
                    n.tsize = Some(number);
                    number
                }
            },
            _ => continue,
        };
        seen[slot] = true;
        n.oack.push((name, granted.to_string()));
    }
    let cap = (limits.max_window_bytes / u32::from(n.blksize)).clamp(1, u32::from(u16::MAX)) as u16;
    if n.windowsize > cap {
        n.windowsize = cap;
        if let Some(entry) = n.oack.iter_mut().find(|(name, _)| name == "windowsize") {
            entry.1 = cap.to_string();
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    fn nego(direction: Direction, options: &[(&str, &str)], size: Option<u64>) -> Negotiated {
        let request = Request { direction, filename: "f".into(), mode: "octet".into(), options: opts(options) };
        negotiate(&request, Limits { max_blksize: MAX_BLKSIZE, max_windowsize: 64, max_window_bytes: 1 << 20 }, size)
    }

    #[test]
    fn negotiates_options() {
        let r = Direction::Read;
        let w = Direction::Write;
        let n = nego(r, &[], Some(10));
        assert_eq!((n.blksize, n.windowsize, n.timeout, n.tsize, n.oack), (512, 1, None, None, vec![]));
        let n = nego(r, &[("BLKSIZE", "1468"), ("windowsize", "16"), ("timeout", "3"), ("tsize", "0")], Some(99));
        assert_eq!((n.blksize, n.windowsize, n.timeout, n.tsize), (1468, 16, Some(3), Some(99)));
        assert_eq!(n.oack, opts(&[("blksize", "1468"), ("windowsize", "16"), ("timeout", "3"), ("tsize", "99")]));
        // RFC 2348: larger than 65464 is clamped, smaller than 8 is ignored.
        assert_eq!(nego(r, &[("blksize", "100000")], None).oack, opts(&[("blksize", "65464")]));
        assert_eq!(nego(r, &[("blksize", "7")], None).oack, vec![]);
        assert_eq!(nego(r, &[("blksize", "8")], None).blksize, 8);
        // RFC 7440: 0 is ignored, a value above the server's limit is clamped.
        assert_eq!(nego(r, &[("windowsize", "0")], None).oack, vec![]);
        assert_eq!(nego(r, &[("windowsize", "65535")], None).windowsize, 64);
        // The window is shrunk to the byte budget (1 MiB here), whatever the option order.
        let n = nego(r, &[("windowsize", "64"), ("blksize", "65464")], None);
        assert_eq!((n.windowsize, n.oack), (16, opts(&[("windowsize", "16"), ("blksize", "65464")])));
        // RFC 2349: timeout outside 1..=255 is ignored, not clamped.
        assert_eq!(nego(r, &[("timeout", "0"), ("timeout", "256")], None).oack, vec![]);
        // Unknown options, unparsable values, duplicates after the first are ignored.
        let n = nego(r, &[("color", "blue"), ("blksize", "big"), ("blksize", "1024"), ("blksize", "2048")], None);
        assert_eq!(n.oack, opts(&[("blksize", "1024")]));
        // tsize on a read is answered only when the size is known; on a write it is echoed.
        assert_eq!(nego(r, &[("tsize", "0")], None).oack, vec![]);
        let n = nego(w, &[("tsize", "12345")], None);
        assert_eq!((n.tsize, n.oack), (Some(12345), opts(&[("tsize", "12345")])));
        assert_eq!(nego(w, &[("tsize", "-1")], None).oack, vec![]);
    }
}
