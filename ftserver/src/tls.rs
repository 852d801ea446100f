//! FTPS on the server side (RFC 4217): the rustls `ServerConfig` from `--tls-cert`/`--tls-key`
//! or a throwaway self-signed certificate, its fingerprint, a holder that SIGHUP can reload,
//! and the per-session session caches that make `PROT P` data connections prove they resume
//! the control connection's TLS session.
//!
//! How the data-connection check works (vsftpd's `require_ssl_reuse`): every control
//! connection gets its own session cache ([`SessionTls`]). Only the control connection's own
//! handshake adds to it; a data connection may resume from it, and the tickets a data connection
//! is given join it only if that data connection itself resumed ([`DataTls::resumed`]). So a
//! data connection that resumes can only be the client that holds the control connection's
//! keys, and a stranger who connects to the passive port first gets a full handshake, is
//! refused, and cannot resume the session it made. Resuming never takes an entry out of the
//! cache: clients (FileZilla, curl, Python's `ssl`) offer the same session for every data
//! connection, and libunftp found that single-use entries break FileZilla. Stateless tickets
//! stay off: one could resume any connection of the server.

use crate::storage::error::io_text;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, StoresServerSessions};
use rustls::{HandshakeKind, ServerConfig, ServerConnection};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Entries a control connection's own handshakes may keep (TLS 1.3 sends 2 tickets).
const CONTROL_ENTRIES: usize = 8;
/// Entries from resumed data connections: their fresh tickets replace the ones a client
/// that uses each ticket once (rustls) has spent.
const DATA_ENTRIES: usize = 32;
/// Tickets sent on a resumed data connection: one replaces the one it used.
const DATA_TICKETS: usize = 1;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("{path}: {problem}")]
    Read {
        /// The file as named on the command line.
        path: PathBuf,
        /// What went wrong, lower case.
        problem: String,
    },
    /// The certificate and key are not usable together (or at all).
    #[error("certificate and key: {0}")]
    Config(rustls::Error),
    /// The self-signed certificate could not be made.
    #[error("self-signed certificate: {0}")]
    SelfSigned(rcgen::Error),
}

/// A certificate chain and its private key. `Debug` never shows the key.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
    /// SEC1). Errors name the file.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| TlsError::Read { path: path.to_owned(), problem: io_text(&e).to_lowercase() })
        };
        let bad = |path: &Path, problem: String| TlsError::Read { path: path.to_owned(), problem };
        let cert_pem = read(cert)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(cert, format!("not a PEM certificate file: {}", pem_problem(&e))))?;
        if chain.is_empty() {
            return Err(bad(cert, "no certificate (expected -----BEGIN CERTIFICATE-----)".into()));
        }
        let key_pem = read(key)?;
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                bad(key, "no private key (expected -----BEGIN PRIVATE KEY-----)".into())
            }
            e => bad(key, format!("not a PEM private key file: {}", pem_problem(&e))),
        })?;
        Ok(Identity { chain, key: key_der })
    }

    /// A throwaway self-signed certificate for `localhost`, 127.0.0.1, ::1 and `addresses`
    /// (the bind address; unspecified ones are skipped), with a fresh ECDSA P-256 key.
    pub fn self_signed(addresses: &[IpAddr]) -> Result<Identity, TlsError> {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        for address in addresses.iter().filter(|a| !a.is_unspecified()) {
            let name = address.to_string();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let mut params = rcgen::CertificateParams::new(names).map_err(TlsError::SelfSigned)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, "ftserver self-signed");
        let key_pair = rcgen::KeyPair::generate().map_err(TlsError::SelfSigned)?;
        let cert = params.self_signed(&key_pair).map_err(TlsError::SelfSigned)?;
        let key = PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
        Ok(Identity { chain: vec![cert.der().clone()], key })
    }

    /// The leaf certificate's fingerprint, `sha256:` and 64 lower-case hex digits: what
    /// `ftclient --pin` takes.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.chain[0])
    }

    /// The leaf's public key pin in curl's form, `sha256//BASE64` of its SubjectPublicKeyInfo,
    /// for `curl -k --pinnedpubkey ...` (curl pins keys, not certificates); `None` if the
    /// certificate does not parse.
    pub fn curl_pin(&self) -> Option<String> {
        let parsed = rustls::server::ParsedCertificate::try_from(&self.chain[0]).ok()?;
        Some(format!("sha256//{}", base64(&Sha256::digest(parsed.subject_public_key_info().as_ref()))))
    }

    /// The leaf certificate as PEM, for a client's `--cacert` (curl, ftclient) when the
    /// certificate is self-signed.
    pub fn certificate_pem(&self) -> String {
        pem("CERTIFICATE", &self.chain[0])
    }

    /// The leaf certificate (DER), for a test client's root store.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// A rustls server configuration: TLS 1.2 and 1.3 with ring's default cipher suites, no
    /// client certificates, no resumption (each session adds its own cache, [`SessionTls`]).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(TlsError::Config)?;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        Ok(Arc::new(config))
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("fingerprint", &self.fingerprint()).finish_non_exhaustive()
    }
}

/// A PEM parsing error in words: the markers as text, not as the bytes rustls shows.
fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    let text = |bytes: &[u8]| common::text::sanitize(&String::from_utf8_lossy(bytes));
    match e {
        Error::MissingSectionEnd { end_marker } => format!("no -----END {}----- line", text(end_marker)),
        Error::IllegalSectionStart { line } => format!("malformed line {}", text(line)),
        Error::Base64Decode(why) => format!("bad base64: {}", why.to_lowercase()),
        other => other.to_string(),
    }
}

/// The crypto provider: rustls on *ring*. rustls 0.23.48 deprecated *ring*'s provider because
/// it lacks post-quantum key exchange (X25519MLKEM768, which aws-lc-rs has); *ring* is kept for
/// now because aws-lc-rs takes several times as long to build on the project's 2 cores.
/// Moving is one line here and the `rustls` features in Cargo.toml.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// A certificate's fingerprint as `sha256:HEX` (64 lower-case hex digits, no colons).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = Sha256::digest(cert.as_ref());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// PEM (RFC 7468): base64 in 64-character lines between the markers (`label`: `CERTIFICATE`,
/// `PRIVATE KEY`).
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap_or_default()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]) } else { '=' });
        }
    }
    out
}

/// Where the certificate comes from, so a reload knows what to re-read.
#[derive(Debug)]
pub enum TlsSource {
    /// `--tls-cert FILE --tls-key FILE`: re-read on reload.
    Files {
        /// The certificate chain, PEM.
        cert: PathBuf,
        /// The private key, PEM.
        key: PathBuf,
    },
    /// `--tls-self-signed`: made once, kept across reloads.
    SelfSigned(Identity),
}

/// The server's TLS setup, shared by all sessions and replaced whole by [`ServerTls::reload`].
/// Sessions already running keep the configuration they started with.
#[derive(Debug)]
pub struct ServerTls {
    source: TlsSource,
    current: RwLock<(Arc<ServerConfig>, String)>,
}

impl ServerTls {
    /// Loads the certificate (or takes the self-signed one) and builds the configuration.
    pub fn new(source: TlsSource) -> Result<ServerTls, TlsError> {
        let current = RwLock::new(build(&source)?);
        Ok(ServerTls { source, current })
    }

    /// Re-reads the certificate and key files (SIGHUP). On success new sessions use them and
    /// the new fingerprint is returned; on error the old ones stay. A self-signed certificate
    /// stays the same.
    pub fn reload(&self) -> Result<String, TlsError> {
        let (config, fingerprint) = build(&self.source)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (config, fingerprint.clone());
        Ok(fingerprint)
    }

    /// The fingerprint of the certificate new sessions get.
    pub fn fingerprint(&self) -> String {
        self.current.read().unwrap_or_else(|e| e.into_inner()).1.clone()
    }

    /// The TLS state of one new control connection: call once per control connection (at
    /// `AUTH TLS`, or on accepting an implicit-TLS connection).
    pub fn session(&self) -> SessionTls {
        let base = Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()).0);
        SessionTls::new(base)
    }
}

fn build(source: &TlsSource) -> Result<(Arc<ServerConfig>, String), TlsError> {
    match source {
        TlsSource::Files { cert, key } => {
            let identity = Identity::from_pem_files(cert, key)?;
            Ok((identity.server_config()?, identity.fingerprint()))
        }
        TlsSource::SelfSigned(identity) => Ok((identity.server_config()?, identity.fingerprint())),
    }
}

/// One control connection's TLS: its configuration and its private session cache.
#[derive(Debug, Clone)]
pub struct SessionTls {
    base: Arc<ServerConfig>,
    cache: Arc<SessionCache>,
    control: Arc<ServerConfig>,
}

impl SessionTls {
    /// A session with an empty cache on top of `base` (from [`Identity::server_config`]).
    pub fn new(base: Arc<ServerConfig>) -> SessionTls {
        let cache = Arc::new(SessionCache::default());
        let mut control = (*base).clone();
        control.session_storage = Arc::new(ControlStore(Arc::clone(&cache)));
        SessionTls { base, cache, control: Arc::new(control) }
    }

    /// The configuration for the control connection's handshake.
    pub fn control_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.control)
    }

    /// The TLS setup for one data connection: make one per data connection.
    pub fn data(&self) -> DataTls {
        let store = Arc::new(DataStore { cache: Arc::clone(&self.cache), pending: Mutex::default() });
        let mut config = (*self.base).clone();
        config.session_storage = Arc::clone(&store) as Arc<dyn StoresServerSessions>;
        config.send_tls13_tickets = DATA_TICKETS;
        DataTls { config: Arc::new(config), store }
    }
}

/// One data connection's TLS configuration, and the check that it resumed the control
/// connection's session.
#[derive(Debug)]
pub struct DataTls {
    config: Arc<ServerConfig>,
    store: Arc<DataStore>,
}

impl DataTls {
    /// The configuration for this data connection's handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// After the handshake: did this connection resume the control connection's session?
    /// If so, the tickets it was given are kept for later data connections; if not (a full
    /// handshake, or the handshake is not done), they are dropped, and with reuse required
    /// the connection must be refused (`522`) before any byte of the file is sent.
    pub fn resumed(&self, conn: &ServerConnection) -> bool {
        let resumed = !conn.is_handshaking() && conn.handshake_kind() == Some(HandshakeKind::Resumed);
        let pending = std::mem::take(&mut *self.store.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if resumed {
            for (id, value) in pending {
                self.store.cache.put_data(id, value);
            }
        }
        resumed
    }
}

/// Completes the server side of a handshake within `timeout` in all, so a client that sends its
/// ClientHello a byte at a time (or nothing) cannot hold the connection longer: rustls's
/// `complete_io` would wait a full socket timeout per read. Garbage instead of a ClientHello
/// is an `InvalidData` error (after the alert is sent), a stall a `TimedOut` one. The socket's
/// timeouts are as they were afterwards; what the server sends after the handshake (tickets)
/// is flushed.
pub fn handshake(conn: &mut ServerConnection, sock: &mut std::net::TcpStream, timeout: Duration) -> io::Result<()> {
    let saved = (sock.read_timeout()?, sock.write_timeout()?);
    let result = drive_handshake(conn, sock, Instant::now() + timeout);
    sock.set_read_timeout(saved.0)?;
    sock.set_write_timeout(saved.1)?;
    result
}

fn drive_handshake(conn: &mut ServerConnection, sock: &mut std::net::TcpStream, deadline: Instant) -> io::Result<()> {
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "tls handshake timed out");
    loop {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()).ok_or_else(timed_out)?;
        sock.set_read_timeout(Some(left))?;
        sock.set_write_timeout(Some(left))?;
        let stalled = |e: io::Error| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
            _ => e,
        };
        if conn.wants_write() {
            conn.write_tls(sock).map_err(stalled)?;
        } else if !conn.is_handshaking() {
            return Ok(());
        } else if conn.read_tls(sock).map_err(stalled)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed during the tls handshake"));
        } else if let Err(e) = conn.process_new_packets() {
            // rustls has queued an alert saying why; the peer may as well hear it.
            let _ = conn.write_tls(sock);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
}

/// The sessions of one control connection. Lookups never remove an entry.
#[derive(Default)]
struct SessionCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    control: VecDeque<(Vec<u8>, Vec<u8>)>,
    data: VecDeque<(Vec<u8>, Vec<u8>)>,
}

impl SessionCache {
    fn get(&self, id: &[u8]) -> Option<Vec<u8>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.control.iter().chain(&entries.data).find(|(k, _)| k == id).map(|(_, v)| v.clone())
    }

    fn put_control(&self, id: Vec<u8>, value: Vec<u8>) {
        push_bounded(&mut self.entries.lock().unwrap_or_else(|e| e.into_inner()).control, id, value, CONTROL_ENTRIES);
    }

    fn put_data(&self, id: Vec<u8>, value: Vec<u8>) {
        push_bounded(&mut self.entries.lock().unwrap_or_else(|e| e.into_inner()).data, id, value, DATA_ENTRIES);
    }
}

fn push_bounded(list: &mut VecDeque<(Vec<u8>, Vec<u8>)>, id: Vec<u8>, value: Vec<u8>, limit: usize) {
    if list.len() >= limit {
        list.pop_front();
    }
    list.push_back((id, value));
}

impl fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The entries hold session secrets: show only how many there are.
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        write!(f, "SessionCache({} control, {} data)", entries.control.len(), entries.data.len())
    }
}

/// The control connection's view: its handshakes add entries.
#[derive(Debug)]
struct ControlStore(Arc<SessionCache>);

impl StoresServerSessions for ControlStore {
    fn put(&self, id: Vec<u8>, value: Vec<u8>) -> bool {
        self.0.put_control(id, value);
        true
    }
    fn get(&self, id: &[u8]) -> Option<Vec<u8>> {
        self.0.get(id)
    }
    fn take(&self, id: &[u8]) -> Option<Vec<u8>> {
        self.0.get(id)
    }
    fn can_cache(&self) -> bool {
        true
    }
}

/// A data connection's view: it resumes from the cache, and what it would add waits until
/// [`DataTls::resumed`] has seen how the handshake went.
struct DataStore {
    cache: Arc<SessionCache>,
    pending: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl fmt::Debug for DataStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataStore").field("cache", &self.cache).finish_non_exhaustive()
    }
}

impl StoresServerSessions for DataStore {
    fn put(&self, id: Vec<u8>, value: Vec<u8>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() < CONTROL_ENTRIES {
            pending.push((id, value));
        }
        true
    }
    fn get(&self, id: &[u8]) -> Option<Vec<u8>> {
        self.cache.get(id)
    }
    fn take(&self, id: &[u8]) -> Option<Vec<u8>> {
        self.cache.get(id)
    }
    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
