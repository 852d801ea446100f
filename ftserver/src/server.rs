//! The accept loop: connection limits, one thread per control connection, and a handle that
//! stops it all.

use crate::auth::{Anonymous, Authenticator, Rights};
use crate::config::Config;
use crate::context::Context;
use crate::data::PassiveShares;
use crate::hash::{DigestCache, JobSlots};
use crate::session::Session;
use crate::storage::{LocalStorage, Storage};
use common::hostport::canonical_ip;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long [`ServerHandle::shutdown`] waits for sessions to notice and end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// State shared by the accept loop and the handle; the sessions see only its [`Context`].
#[derive(Debug)]
struct Shared {
    ctx: Context,
    /// Refused connections, logged at most once a second.
    refusals: RefusalLog,
    next_id: AtomicU64,
    sessions: Mutex<Sessions>,
    /// Signalled whenever a session ends.
    ended: Condvar,
}

/// The live sessions: per-address counts for the limits and a clone of each control stream, so
/// shutdown can wake sessions blocked in a read.
#[derive(Debug, Default)]
struct Sessions {
    per_ip: HashMap<IpAddr, usize>,
    streams: HashMap<u64, TcpStream>,
}

impl Shared {
    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        // A panicking session thread cannot leave the counts half-updated (each update is one
        // statement), so a poisoned lock is still consistent.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a session from the registry when its thread ends, however it ends.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
    ip: IpAddr,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut sessions = self.shared.sessions();
        sessions.streams.remove(&self.id);
        if let Some(n) = sessions.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                sessions.per_ip.remove(&self.ip);
            }
        }
        drop(sessions);
        self.shared.ended.notify_all();
    }
}

/// A listening socket for control connections on `addr`, with the longest accept queue the
/// system allows (`net.core.somaxconn`, 4096 on current Linux): std's 128 let 60 of 1000
/// clients that connected at once go unanswered.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    // As std does: a restarted server can listen again at once, whatever is in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    // The kernel lowers a larger backlog to somaxconn.
    socket.listen(i32::from(u16::MAX))?;
    Ok(socket.into())
}

/// Raises this process's soft limit on open files to its hard limit: every session uses a few
/// descriptors (control, its registry clone, a data connection, a passive listener), and the
/// usual soft limit of 1024 would refuse clients long before `--max-clients`.
pub fn raise_file_limit() -> io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard)
}

/// Starts FTP servers.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Serves `config.root` on an already bound listener, on a background thread, and returns
    /// at once, with anonymous logins that have the rights `--writable` and `--overwrite` give.
    /// Tests bind `127.0.0.1:0`; the binary binds what the user asked for.
    pub fn spawn(listener: TcpListener, mut config: Config) -> io::Result<ServerHandle> {
        let storage = LocalStorage::new(&config.root)?.with_dotfiles(config.dotfiles);
        config.root = storage.path().to_owned();
        Self::spawn_with(listener, config, Arc::new(storage), None)
    }

    /// [`Server::spawn`] with a storage of the caller's (shared with a TFTP server, or another
    /// backend), and an authenticator (`None`: anonymous logins as [`Server::spawn`]).
    pub fn spawn_with(
        listener: TcpListener,
        config: Config,
        storage: Arc<dyn Storage>,
        auth: Option<Arc<dyn Authenticator>>,
    ) -> io::Result<ServerHandle> {
        Self::spawn_with_implicit(listener, None, config, storage, auth)
    }

    /// [`Server::spawn_with`], and with `implicit` (which needs `config.tls`) a second
    /// listener whose connections start with the TLS handshake (`--implicit-tls`, `ftps://`).
    pub fn spawn_with_implicit(
        listener: TcpListener,
        implicit: Option<TcpListener>,
        config: Config,
        storage: Arc<dyn Storage>,
        auth: Option<Arc<dyn Authenticator>>,
    ) -> io::Result<ServerHandle> {
        if implicit.is_some() && config.tls.is_none() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "implicit tls needs a certificate"));
        }
        let auth = auth
            .unwrap_or_else(|| Arc::new(Anonymous { rights: Rights::from_options(config.writable, config.overwrite) }));
        let local_addr = listener.local_addr()?;
        let ctx = Context {
            hash_jobs: JobSlots::new(config.max_hash_jobs),
            digests: DigestCache::default(),
            passive: PassiveShares::new(config.pasv_ports.as_ref()),
            config,
            storage,
            auth,
            stop: AtomicBool::new(false),
        };
        let shared = Arc::new(Shared {
            ctx,
            refusals: RefusalLog::default(),
            next_id: AtomicU64::new(1),
            sessions: Mutex::new(Sessions::default()),
            ended: Condvar::new(),
        });
        let waker = listener.try_clone()?;
        let implicit = match implicit {
            Some(listener) => {
                let addr = listener.local_addr()?;
                let waker = listener.try_clone()?;
                let shared = Arc::clone(&shared);
                let acceptor = thread::Builder::new()
                    .name("ftps-accept".into())
                    .spawn(move || accept_loop(&listener, &shared, true))?;
                Some(Implicit { addr, waker, acceptor })
            }
            None => None,
        };
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new().name("ftp-accept".into()).spawn(move || accept_loop(&listener, &shared, false))?
        };
        Ok(ServerHandle { local_addr, shared, waker, acceptor: Some(acceptor), implicit })
    }
}

/// A running server. Dropping it stops the server, like [`ServerHandle::shutdown`].
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    /// A clone of the listening socket, used to wake the blocked `accept`.
    waker: TcpListener,
    acceptor: Option<JoinHandle<()>>,
    /// The implicit-TLS listener, when there is one.
    implicit: Option<Implicit>,
}

/// The implicit-TLS listener's address, waker and accept thread.
#[derive(Debug)]
struct Implicit {
    addr: SocketAddr,
    waker: TcpListener,
    acceptor: JoinHandle<()>,
}

impl ServerHandle {
    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The implicit-TLS address, when there is one.
    pub fn implicit_addr(&self) -> Option<SocketAddr> {
        self.implicit.as_ref().map(|i| i.addr)
    }

    /// Re-reads the users file and the certificate (SIGHUP). What cannot be read is kept as it
    /// was; each line of the result says what happened, for the log.
    pub fn reload(&self) -> Vec<Result<String, String>> {
        let ctx = &self.shared.ctx;
        let mut outcome = Vec::new();
        if ctx.auth.has_accounts() {
            outcome.push(match ctx.auth.reload() {
                Ok(n) => Ok(format!("reloaded {n} account(s)")),
                Err(e) => Err(format!("kept the old accounts: {e}")),
            });
        }
        if let Some(tls) = &ctx.config.tls {
            outcome.push(match tls.reload() {
                Ok(fingerprint) => Ok(format!("reloaded the certificate, {fingerprint}")),
                Err(e) => Err(format!("kept the old certificate: {e}")),
            });
        }
        outcome
    }

    /// What is served (the canonical root directory, or another storage's description).
    pub fn serving(&self) -> String {
        self.shared.ctx.storage.describe()
    }

    /// How many control connections are open right now.
    pub fn active_sessions(&self) -> usize {
        self.shared.sessions().streams.len()
    }

    /// Stops accepting, tells every session to end (each gets `421`), and waits a few seconds
    /// for them to finish.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else { return };
        self.shared.ctx.stop.store(true, Ordering::SeqCst);
        wake_accept(&self.waker, self.local_addr);
        if acceptor.join().is_err() {
            log::error!("the accept thread panicked");
        }
        if let Some(implicit) = self.implicit.take() {
            wake_accept(&implicit.waker, implicit.addr);
            if implicit.acceptor.join().is_err() {
                log::error!("the implicit-tls accept thread panicked");
            }
        }
        // Half-close each control stream for reading: the session's blocked read returns EOF,
        // it sees the stop flag, says 421 and ends.
        for stream in self.shared.sessions().streams.values() {
            let _ = stream.shutdown(Shutdown::Read);
        }
        let deadline = crate::config::deadline_after(SHUTDOWN_GRACE);
        let mut sessions = self.shared.sessions();
        while !sessions.streams.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn!("{} session(s) still busy at shutdown", sessions.streams.len());
                break;
            }
            sessions = self.shared.ended.wait_timeout(sessions, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes a thread blocked in `accept` on this listener return. On Linux, shutting down a
/// listening socket does it; elsewhere a connection to ourselves does.
fn wake_accept(listener: &TcpListener, addr: SocketAddr) {
    if socket2::SockRef::from(listener).shutdown(Shutdown::Read).is_ok() {
        return;
    }
    let target = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    let _ = TcpStream::connect_timeout(&target, Duration::from_secs(1));
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, implicit: bool) {
    loop {
        let accepted = listener.accept();
        if shared.ctx.stopping() {
            return;
        }
        match accepted {
            Ok((stream, peer)) => admit(stream, peer, shared, implicit),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Typically EMFILE: out of descriptors. Back off instead of spinning; the
                // sessions that end will free some.
                log::warn!("accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Applies the connection limits and starts a session thread, or answers 421 and closes.
fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>, implicit: bool) {
    let ip = canonical_ip(peer.ip());
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let refusal = {
        let mut sessions = shared.sessions();
        let from_ip = sessions.per_ip.get(&ip).copied().unwrap_or(0);
        if sessions.streams.len() >= shared.ctx.config.max_clients {
            Some("Too many users, server is full.")
        } else if from_ip >= shared.ctx.config.max_per_ip {
            Some("Too many connections from your address.")
        } else {
            match stream.try_clone() {
                Ok(clone) => {
                    sessions.streams.insert(id, clone);
                    *sessions.per_ip.entry(ip).or_insert(0) += 1;
                    None
                }
                Err(_) => Some("Server out of resources."),
            }
        }
    };
    if let Some(text) = refusal {
        shared.refusals.log(peer, text);
        if implicit {
            // A TLS client would take a clear-text 421 for a broken handshake: just close.
            let _ = stream.shutdown(Shutdown::Both);
        } else {
            refuse(stream, text);
        }
        return;
    }
    let registration = Registration { shared: Arc::clone(shared), id, ip };
    let session_shared = Arc::clone(shared);
    let spawned = thread::Builder::new().name(format!("ftp-session-{id}")).spawn(move || {
        let _registration = registration;
        Session::run(stream, peer, id, &session_shared.ctx, implicit);
    });
    if let Err(e) = spawned {
        // The closure (and with it the registration and the stream) was dropped.
        log::warn!("{peer}: cannot start a session thread: {e}");
    }
}

/// The log of refused connections: one line at most every second, with how many more were
/// refused since (a flood must not become a flood of log lines).
#[derive(Debug, Default)]
struct RefusalLog {
    /// When the last line was written, and the refusals not written since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RefusalLog {
    fn log(&self, peer: SocketAddr, text: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if state.0.is_some_and(|last| now.duration_since(last) < Duration::from_secs(1)) {
            state.1 += 1;
            return;
        }
        match std::mem::take(&mut state.1) {
            0 => log::warn!("{peer}: refused: {text}"),
            more => log::warn!("{peer}: refused: {text} ({more} more refused since the last line)"),
        }
        state.0 = Some(now);
    }
}

/// Answers `421` without ever blocking the accept loop, then closes.
fn refuse(stream: TcpStream, text: &str) {
    let _ = stream.set_nonblocking(true);
    let _ = (&stream).write_all(format!("421 {text}\r\n").as_bytes());
    let _ = stream.shutdown(Shutdown::Both);
}
