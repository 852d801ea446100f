//! TFTP (RFC 1350 and its option extensions) over UDP, serving the same root as FTP.
//!
//! One listener thread reads requests from the well-known socket; every accepted request gets
//! its own thread and its own ephemeral UDP socket (a new transfer ID) bound to the listener's
//! IP address, up to [`TftpConfig::max_transfers`] at once (beyond that the client gets error 0
//! "server busy"). A request identical to the one that started a running transfer, from the same
//! address and port, is a retransmission: it never starts a second transfer (a different request
//! from that port is a new transfer: some boot ROMs reuse their port) but is handed to the running
//! transfer, which counts it and is woken by an empty datagram from the listener, so a write can
//! answer it with its first reply from its own socket (see `transfer` for why a write waits for
//! the client's retransmitted request instead of repeating its OACK on a timer).
//! When the listener is bound to the unspecified address (`0.0.0.0`, `::`), the kernel picks each
//! transfer's source address by route, which on a multi-homed host may not be the address the
//! client asked; bind a specific address there.
//!
//! Files are reached through the same `crate::storage` as FTP's (with a local directory:
//! confined to the root, symlinks resolved), and uploads (only with [`TftpConfig::writable`])
//! are private storage uploads (`Start::Private`): each writes a temporary of its own that is
//! published only when the short final block has arrived, replacing an existing file with
//! [`TftpConfig::overwrite`], else failing atomically when the name exists (error 6, "file
//! already exists"), so a file that appeared during the upload is never clobbered. A client
//! retrying an upload is never refused because an earlier attempt of it went silent.
//!
//! An interrupted upload (the client's ERROR, retries exhausted, server shutdown, disk full, a
//! malformed block) is **deleted**: TFTP has no way to resume, so unlike an FTP partial file it
//! would only take space, and nothing ever appears under the requested name.
//!
//! Packet formats and option negotiation are in `common::tftp`; the transfer state machines are
//! in `transfer`.

mod transfer;

use crate::storage::Storage;
use common::tftp::{self, ErrorCode, Packet, ParseError};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the TFTP server serves and how.
#[derive(Debug, Clone)]
pub struct TftpConfig {
    /// The directory served (the same root as FTP) by [`spawn`].
    pub root: PathBuf,
    /// Accept write requests (uploads).
    pub writable: bool,
    /// Let an upload replace an existing file (otherwise error 6).
    pub overwrite: bool,
    /// Retransmission timeout when the client does not negotiate one (`--tftp-timeout`).
    pub timeout: Duration,
    /// Retransmissions of one packet before the transfer is given up (`--tftp-retries`).
    pub retries: u32,
    /// Transfers running at once; requests beyond it get error 0 "server busy".
    pub max_transfers: usize,
    /// The largest `blksize` granted (at most 65464).
    pub max_blksize: u16,
    /// The most bytes one window may hold (`windowsize` is lowered to fit, RFC 7440 allows it).
    /// A window arrives as one burst, and a client whose receive buffer is smaller (Linux's
    /// default is 208 KiB) drops its tail every time: atftp with blksize 65464 and windowsize 16
    /// stalls that way. The default, 128 KiB, keeps bursts under that; it also bounds the memory
    /// a read keeps for retransmission.
    pub max_window_bytes: u32,
    /// The largest file an upload may produce (`--max-upload-size`); beyond it, error 3.
    pub max_upload_size: Option<u64>,
}

impl Default for TftpConfig {
    fn default() -> Self {
        TftpConfig {
            root: PathBuf::from("."),
            writable: false,
            overwrite: false,
            timeout: Duration::from_secs(1),
            retries: 5,
            max_transfers: 64,
            max_blksize: tftp::MAX_BLKSIZE,
            max_window_bytes: 128 << 10,
            max_upload_size: None,
        }
    }
}

/// A running TFTP server. [`TftpHandle::shutdown`] or dropping it stops the listener and the
/// running transfers, and waits for them (an interrupted upload is deleted, its client told).
pub struct TftpHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TftpHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TftpHandle").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

/// How long a shutdown waits for running transfers: each notices the stop within its poll
/// interval (half a second), then deletes its partial upload and sends its ERROR.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

impl TftpHandle {
    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the listener and the running transfers, and waits for them.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(listener) = self.listener.take() {
            // Wake the listener from its blocking receive; the read timeout is the fallback.
            if let Ok(waker) = UdpSocket::bind(SocketAddr::new(wake_ip(self.local_addr), 0)) {
                let _ = waker.send_to(&[], SocketAddr::new(wake_ip(self.local_addr), self.local_addr.port()));
            }
            let _ = listener.join();
        }
        // The listener starts no transfer after the stop; wait for the running ones to end.
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        let mut active = self.shared.active.lock().unwrap_or_else(|e| e.into_inner());
        while !active.is_empty() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                log::warn!("tftp: {} transfers still running at shutdown", active.len());
                break;
            };
            active = self.shared.ended.wait_timeout(active, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

impl Drop for TftpHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// A listener bound to the unspecified address is woken through loopback.
fn wake_ip(addr: SocketAddr) -> std::net::IpAddr {
    match addr.ip() {
        ip if !ip.is_unspecified() => ip,
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
    }
}

/// How long the listener blocks before it looks at the stop flag again (a fallback: shutdown
/// also wakes it with an empty datagram).
const LISTENER_POLL: Duration = Duration::from_millis(500);

/// Serves TFTP on `socket` (already bound, e.g. to `0.0.0.0:69`) in a background thread, from
/// the local directory `config.root`.
pub fn spawn(socket: UdpSocket, config: TftpConfig) -> io::Result<TftpHandle> {
    let storage = crate::storage::LocalStorage::new(&config.root)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot serve {}: {e}", config.root.display())))?;
    spawn_with(socket, config, Arc::new(storage))
}

/// [`spawn`] from a storage of the caller's (the one an FTP server shares, or another
/// backend); `config.root` is not used.
pub fn spawn_with(socket: UdpSocket, config: TftpConfig, storage: Arc<dyn Storage>) -> io::Result<TftpHandle> {
    let local_addr = socket.local_addr()?;
    socket.set_read_timeout(Some(LISTENER_POLL))?;
    // Requests are small, but a burst of them (PXE boot of a rack) should not be dropped.
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(1 << 20);
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        config,
        storage,
        stop: stop.clone(),
        active: Mutex::new(HashMap::new()),
        ended: Condvar::new(),
        ids: AtomicU64::new(0),
    });
    let listening = shared.clone();
    let listener = std::thread::Builder::new().name("tftp-listener".into()).spawn(move || listen(socket, listening))?;
    Ok(TftpHandle { local_addr, shared, listener: Some(listener) })
}

/// What the listener and every transfer share.
struct Shared {
    config: TftpConfig,
    /// The served tree.
    storage: Arc<dyn Storage>,
    stop: Arc<AtomicBool>,
    /// Running transfers by client address (the same request datagram again from the same
    /// address is a duplicate, handed to the transfer).
    active: Mutex<HashMap<SocketAddr, Active>>,
    /// Signalled whenever a transfer leaves `active`.
    ended: Condvar,
    /// The source of transfer ids.
    ids: AtomicU64,
}

fn listen(socket: UdpSocket, shared: Arc<Shared>) {
    let local_ip = socket.local_addr().map(|a| a.ip()).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    let mut buf = vec![0u8; tftp::MAX_PACKET + 1];
    while !shared.stop.load(Ordering::SeqCst) {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                log::warn!("tftp: receive on {local_ip}: {}", crate::storage::error::io_text(&e));
                continue;
            }
        };
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        match Packet::parse(&buf[..len]) {
            Ok(Packet::Request(request)) => start(&socket, local_ip, &shared, peer, request, &buf[..len]),
            // Never answer an error (two confused peers would bounce errors forever).
            Ok(Packet::Error { .. }) => {}
            Ok(_) => refuse(&socket, peer, ErrorCode::IllegalOperation, "expected a read or write request"),
            // The empty datagram is the shutdown wake-up (or noise): not worth an answer.
            Err(ParseError::Truncated(0)) => {}
            Err(e) => refuse(&socket, peer, ErrorCode::IllegalOperation, &e.to_string()),
        }
    }
}

fn refuse(socket: &UdpSocket, peer: SocketAddr, code: ErrorCode, message: &str) {
    log::debug!("tftp: {peer}: refused: {message}");
    let _ = socket.send_to(&tftp::error_bytes(code, message), peer);
}

/// The share of one client address once half the transfer slots are taken: an eighth of the
/// slots, at least 4. 64 silent requests from one address (1.3 KB of UDP) no longer refuse
/// everyone else, and a lab of clients behind one address still gets half the slots.
fn per_client_limit(max_transfers: usize) -> usize {
    (max_transfers / 8).max(4).min(max_transfers)
}

/// What the listener and a running transfer tell each other.
#[derive(Debug, Default)]
pub(super) struct Signals {
    /// Copies of the request received since the transfer last looked.
    pub(super) repeats: AtomicU32,
    /// The client has answered the transfer (or repeated its request): it is really there.
    pub(super) answered: AtomicBool,
    /// The listener took the slot away for a new client (the transfer was never answered).
    pub(super) evicted: AtomicBool,
}

impl Signals {
    fn new(repeats: u32) -> Arc<Signals> {
        Arc::new(Signals { repeats: AtomicU32::new(repeats), ..Signals::default() })
    }
}

/// A running transfer as the listener knows it.
struct Active {
    id: u64,
    /// The request datagram that started it.
    request: Vec<u8>,
    /// The transfer's socket address (its TID), where the listener's wake-ups go.
    tid: SocketAddr,
    /// Copies of the request received since the transfer last looked.
    /// What the listener and the transfer tell each other.
    signals: Arc<Signals>,
}

/// Starts a transfer thread for `request`; a duplicate of a running one is handed to it instead,
/// and beyond the limit the client is told the server is busy.
fn start(
    socket: &UdpSocket,
    local_ip: std::net::IpAddr,
    shared: &Arc<Shared>,
    peer: SocketAddr,
    request: tftp::Request,
    datagram: &[u8],
) {
    let id = shared.ids.fetch_add(1, Ordering::Relaxed);
    let (tid_socket, repeats) = {
        let mut active = shared.active.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = active.get(&peer).filter(|running| running.request == datagram) {
            log::debug!("tftp: {peer}: duplicate request handed to its transfer");
            running.signals.repeats.fetch_add(1, Ordering::AcqRel);
            // A client that asks again is there: its transfer keeps its slot.
            running.signals.answered.store(true, Ordering::Release);
            // The datagram's content does not matter (the count is the message); it only ends
            // the transfer's blocking receive.
            let _ = socket.send_to(&[], SocketAddr::new(wake_ip(running.tid), running.tid.port()));
            return;
        }
        // Full: a transfer whose client never answered (a flood of requests from many
        // addresses, or spoofed ones) gives its slot to this request: a new client is never
        // refused for them. Only when every slot is in real use is the client told to wait.
        if active.len() >= shared.config.max_transfers {
            let silent = active
                .iter()
                .filter(|(_, running)| !running.signals.answered.load(Ordering::Acquire))
                .min_by_key(|(_, running)| running.id)
                .map(|(addr, _)| *addr);
            if let Some(addr) = silent.and_then(|addr| active.remove(&addr).map(|evicted| (addr, evicted))) {
                log::info!("tftp: {}: transfer given up for {peer}: it was never answered", addr.0);
                addr.1.signals.evicted.store(true, Ordering::Release);
            }
        }
        if active.len() >= shared.config.max_transfers {
            drop(active);
            log::info!("tftp: {peer}: refused, {} transfers running", shared.config.max_transfers);
            refuse(socket, peer, ErrorCode::NotDefined, "server busy, try again later");
            return;
        }
        let (max, per_client) = (shared.config.max_transfers, per_client_limit(shared.config.max_transfers));
        // While half the slots are free anyone may start more; past that an address that holds
        // its share already must wait, so the other half stays open to new clients.
        if active.len() * 2 >= max && active.keys().filter(|a| a.ip() == peer.ip()).count() >= per_client {
            drop(active);
            log::info!("tftp: {peer}: refused, {per_client} transfers running for this address");
            refuse(socket, peer, ErrorCode::NotDefined, "too many transfers from your address, try again later");
            return;
        }
        // The transfer's socket is bound here, so the listener knows where to wake it.
        let tid_socket = match transfer::bind(local_ip) {
            Ok(bound) => bound,
            Err(e) => {
                drop(active);
                log::warn!("tftp: {peer}: cannot bind a transfer socket on {local_ip}: {e}");
                refuse(socket, peer, ErrorCode::NotDefined, "server busy, try again later");
                return;
            }
        };
        let tid = tid_socket.local_addr().unwrap_or(SocketAddr::new(local_ip, 0));
        let repeats = Signals::new(0);
        active.insert(peer, Active { id, request: datagram.to_vec(), tid, signals: repeats.clone() });
        (tid_socket, repeats)
    };
    let guard = ActiveGuard { shared: shared.clone(), peer, id };
    let spawned = std::thread::Builder::new().name(format!("tftp-{peer}")).spawn(move || {
        let mut next = Some((guard, tid_socket, repeats));
        while let Some((guard, tid_socket, repeats)) = next.take() {
            next = transfer::run(guard, tid_socket, repeats, peer, request.clone())
                .and_then(|(guard, seen)| guard.restart(local_ip, seen));
        }
    });
    if let Err(e) = spawned {
        // The closure (and its guard) was dropped, so the peer is no longer marked active.
        log::warn!("tftp: {peer}: cannot start a transfer thread: {e}");
        refuse(socket, peer, ErrorCode::NotDefined, "server busy, try again later");
    }
}

/// Removes the peer from the active set when its transfer ends, however it ends.
struct ActiveGuard {
    shared: Arc<Shared>,
    peer: SocketAddr,
    id: u64,
}

impl ActiveGuard {
    /// Removes this transfer's entry, unless a newer transfer from the same port replaced it.
    fn release(&self, active: &mut HashMap<SocketAddr, Active>) {
        if active.get(&self.peer).is_some_and(|running| running.id == self.id) {
            active.remove(&self.peer);
        }
    }

    /// The peer ended this transfer with an ERROR. Copies of the request that came after our
    /// last packet and since the peer last sent anything else (`seen` by the transfer, or
    /// counted by the listener and not yet seen) were sent around that ERROR, not before our
    /// answer (a retransmission that answer already covered is forgotten when it goes out): a new request
    /// (PXE firmware asks for `tsize`, aborts with error 8 and asks again at once, from the same
    /// port with the same bytes). It gets a new transfer on a new socket in this slot. Decided
    /// under the lock the listener takes, so no copy is lost between the look and the release.
    fn restart(self, local_ip: std::net::IpAddr, seen: u32) -> Option<(ActiveGuard, UdpSocket, Arc<Signals>)> {
        let mut active = self.shared.active.lock().unwrap_or_else(|e| e.into_inner());
        let ours = active.get(&self.peer).filter(|running| running.id == self.id);
        let pending = ours.map_or(0, |running| running.signals.repeats.swap(0, Ordering::AcqRel).saturating_add(seen));
        if pending == 0 {
            self.release(&mut active);
            return None;
        }
        let tid_socket = match transfer::bind(local_ip) {
            Ok(bound) => bound,
            Err(e) => {
                log::warn!("tftp: {}: cannot bind a transfer socket on {local_ip}: {e}", self.peer);
                self.release(&mut active);
                return None;
            }
        };
        log::debug!("tftp: {}: the request came again after the client's error: a new transfer", self.peer);
        let id = self.shared.ids.fetch_add(1, Ordering::Relaxed);
        let repeats = Signals::new(pending - 1);
        let running = active.get_mut(&self.peer)?;
        running.id = id;
        running.tid = tid_socket.local_addr().unwrap_or(SocketAddr::new(local_ip, 0));
        running.signals = repeats.clone();
        drop(active);
        Some((ActiveGuard { shared: self.shared.clone(), peer: self.peer, id }, tid_socket, repeats))
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut active = self.shared.active.lock().unwrap_or_else(|e| e.into_inner());
        self.release(&mut active);
        self.shared.ended.notify_all();
    }
}
