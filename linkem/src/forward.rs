//! The running link: two namespaces, a TAP device in each, and per direction a reader thread
//! that feeds frames into a `Scheduler` and a writer thread that sends them on when due.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result};
use tun_tap::{Iface, Mode};

use crate::netns::Namespace;
use crate::sched::{Scheduler, Stats, Verdict};
use crate::spec::Impairment;

/// The address of side A inside namespace A (a /24 that exists only inside the two namespaces).
pub const ADDR_A: &str = "10.77.0.1";
/// The address of side B inside namespace B.
pub const ADDR_B: &str = "10.77.0.2";
/// The name of the TAP device inside each namespace.
pub const DEVICE: &str = "linkem0";
const PREFIX: &str = "24";
const MAC_A: &str = "02:77:00:00:00:01";
const MAC_B: &str = "02:77:00:00:00:02";

/// How the link is set up: the impairments of each direction, the seed, the MTU.
#[derive(Clone, Debug)]
pub struct Settings {
    /// What happens to frames from A to B.
    pub a_to_b: Impairment,
    /// What happens to frames from B to A.
    pub b_to_a: Impairment,
    /// Seeds the random choices (B to A uses a seed derived from it).
    pub seed: u64,
    /// The MTU of both devices (1500 like Ethernet unless told otherwise).
    pub mtu: u32,
}

/// The state one direction's two threads share.
struct Direction {
    state: Mutex<State>,
    /// Wakes the writer when a frame becomes the earliest one due, or at stop.
    wake: Condvar,
}

struct State {
    link: Scheduler<Vec<u8>>,
    stop: bool,
}

impl Direction {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking thread leaves counters, not broken invariants, behind.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running link between namespaces A and B; dropping it stops the threads and removes the
/// devices and the namespaces.
pub struct Link {
    directions: [Arc<Direction>; 2],
    threads: Vec<JoinHandle<()>>,
    // Dropped after the threads stop; B before A, in the reverse order of creation.
    ns_b: Namespace,
    ns_a: Namespace,
}

impl Link {
    /// Creates namespaces `ns_a` and `ns_b`, a TAP device in each with `ADDR_A` and `ADDR_B`,
    /// and starts forwarding between them. Whatever was created is removed again on failure.
    pub fn start(ns_a: &str, ns_b: &str, settings: &Settings) -> Result<Link> {
        let ns_a = Namespace::create(ns_a)?;
        let ns_b = Namespace::create(ns_b)?;
        let tap_a = Arc::new(open_tap(&ns_a, settings.mtu, (ADDR_A, MAC_A), (ADDR_B, MAC_B))?);
        let tap_b = Arc::new(open_tap(&ns_b, settings.mtu, (ADDR_B, MAC_B), (ADDR_A, MAC_A))?);
        let origin = Instant::now();
        let new_direction = |spec: &Impairment, seed| {
            Arc::new(Direction {
                state: Mutex::new(State { link: Scheduler::new(spec.clone(), seed), stop: false }),
                wake: Condvar::new(),
            })
        };
        let a_to_b = new_direction(&settings.a_to_b, settings.seed);
        let b_to_a = new_direction(&settings.b_to_a, settings.seed ^ 0x5eed_b2a0_5eed_b2a0);
        let mut threads = Vec::new();
        for (name, from, to, direction) in [("a->b", &tap_a, &tap_b, &a_to_b), ("b->a", &tap_b, &tap_a, &b_to_a)] {
            let (from, dir) = (Arc::clone(from), Arc::clone(direction));
            threads.push(spawn(format!("linkem {name} in"), move || read_frames(&from, &dir, origin))?);
            let (to, dir) = (Arc::clone(to), Arc::clone(direction));
            threads.push(spawn(format!("linkem {name} out"), move || write_frames(&to, &dir, origin))?);
        }
        Ok(Link { directions: [a_to_b, b_to_a], threads, ns_b, ns_a })
    }

    /// Namespace A's name.
    pub fn ns_a(&self) -> &str {
        self.ns_a.name()
    }

    /// Namespace B's name.
    pub fn ns_b(&self) -> &str {
        self.ns_b.name()
    }

    /// The counters of A to B and of B to A.
    pub fn stats(&self) -> [Stats; 2] {
        self.directions.each_ref().map(|d| d.lock().link.stats())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for direction in &self.directions {
            direction.lock().stop = true;
            direction.wake.notify_all();
        }
        // A reader blocked in read() returns once its device is gone.
        for ns in [&self.ns_a, &self.ns_b] {
            if let Err(err) = ns.ip(&["link", "del", DEVICE]) {
                eprintln!("linkem: cannot remove {DEVICE} in {}: {err:#}", ns.name());
            }
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(f).context("cannot start a forwarding thread")
}

/// Opens the TAP device inside `ns` and gives it its address, a fixed MAC and a permanent
/// neighbour entry for the other side, so no ARP crosses the link (a lost ARP request would
/// stall the first packets by a second). IPv6 is off in the namespace: its router and
/// multicast chatter would cross the link as well.
fn open_tap(ns: &Namespace, mtu: u32, (addr, mac): (&str, &str), (peer, peer_mac): (&str, &str)) -> Result<Iface> {
    let tap = ns.run_inside(|| {
        for conf in ["all", "default"] {
            let path = format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
            match std::fs::write(&path, "1") {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    return Err(err).with_context(|| format!("cannot write {path}"))
                }
                _ => {}
            }
        }
        Iface::without_packet_info(DEVICE, Mode::Tap)
            .context("cannot open a TAP device (is /dev/net/tun there, and are we root?)")
    })?;
    let mtu = mtu.to_string();
    ns.ip(&["link", "set", DEVICE, "address", mac, "mtu", &mtu])?;
    ns.ip(&["addr", "add", &format!("{addr}/{PREFIX}"), "dev", DEVICE])?;
    ns.ip(&["link", "set", DEVICE, "up"])?;
    ns.ip(&["neigh", "replace", peer, "lladdr", peer_mac, "dev", DEVICE, "nud", "permanent"])?;
    Ok(tap)
}

/// Reads frames from `from` until the device goes away and offers each to the direction.
fn read_frames(from: &Iface, direction: &Direction, origin: Instant) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let len = match from.recv(&mut buf) {
            Ok(len) => len,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let now = origin.elapsed();
        let mut state = direction.lock();
        if state.stop {
            return;
        }
        let earliest = state.link.next_due();
        if let Verdict::Scheduled(due) = state.link.push(now, len, buf[..len].to_vec()) {
            if earliest.map_or(true, |earliest| due < earliest) {
                direction.wake.notify_one();
            }
        }
    }
}

/// Sends each frame to `to` when it is due, until the link stops.
fn write_frames(to: &Iface, direction: &Direction, origin: Instant) {
    let mut batch = Vec::new();
    let mut state = direction.lock();
    while !state.stop {
        let now = origin.elapsed();
        while let Some(frame) = state.link.pop_due(now) {
            batch.push(frame);
        }
        if !batch.is_empty() {
            drop(state);
            for frame in batch.drain(..) {
                // Like a wire, the link does not care whether anyone listens: a full device
                // queue on the far side loses the frame.
                let _ = to.send(&frame);
            }
            state = direction.lock();
            continue;
        }
        state = match state.link.next_due() {
            None => direction.wake.wait(state).unwrap_or_else(PoisonError::into_inner),
            Some(due) => {
                let waited = direction.wake.wait_timeout(state, due - now);
                waited.unwrap_or_else(PoisonError::into_inner).0
            }
        };
    }
}
