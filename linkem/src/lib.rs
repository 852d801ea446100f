//! linkem, a userspace link emulator for ft's tests and benchmarks: two network namespaces joined
//! through a forwarder that delays, jitters, loses, reorders and rate-limits frames, with a
//! bounded router queue, in each direction independently.
//!
//! This kernel has no `sch_netem`, so the impairments happen in this process:
//!
//! ```text
//!   namespace A                      this process (root namespace)               namespace B
//!  10.77.0.1/24 ── linkem0 (TAP) ──▶ reader ─▶ Scheduler a->b ─▶ writer ──▶ linkem0 (TAP) ── 10.77.0.2/24
//!                                ◀── writer ◀─ Scheduler b->a ◀─ reader ◀──
//! ```
//!
//! Each TAP device is opened by a thread that has entered its namespace, so the device is born
//! there and nothing ever appears in the root namespace; the addresses exist only inside the
//! two namespaces. Per direction one thread reads frames and hands them to a `Scheduler` (the
//! pure model in `sched`), and another thread sleeps until the earliest frame is due and writes
//! it to the other device. The random choices follow a seed, so a run can be repeated.
//!
//! Why TAP devices through the `tun-tap` crate rather than veth pairs and packet sockets: a TAP
//! device without `IFF_VNET_HDR` offers the kernel no segmentation or checksum offloads, so
//! every frame the forwarder sees is a real wire-sized Ethernet frame with finished checksums
//! and the rate limit counts what a wire would carry; veth ends would hand a packet socket
//! 64 KiB GSO frames with partial checksums unless offloads were switched off with `ethtool`.
//! Opening a TAP device needs the `TUNSETIFF` ioctl; `tun-tap` does it, so this crate keeps the
//! workspace's `unsafe_code = "forbid"`.
//!
//! What is not modelled: the rate counts Ethernet frames (header included; no preamble, FCS or
//! inter-frame gap); loss is decided before the queue, so a lost frame takes no wire time;
//! jitter never reorders (use `reorder` for that, which like netem's needs a delay); IPv6 is
//! off inside the namespaces, and neighbours are static, so only the traffic the tests make
//! crosses the link.

pub mod forward;
pub mod netns;
pub mod sched;
pub mod spec;

pub use forward::{Link, Settings, ADDR_A, ADDR_B, DEVICE};
pub use sched::{Scheduler, Stats, Verdict};
pub use spec::{Impairment, QueueLimit};
