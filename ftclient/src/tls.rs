//! FTPS on the client side (RFC 4217): the rustls `ClientConfig` for `--tls`/`--implicit-tls`,
//! trusting the system's roots, `--cacert FILE`, exactly one certificate (`--pin sha256:HEX`),
//! or anything (`--insecure`), and one session store per control connection that its data
//! connections resume from.
//!
//! Resumption: servers such as vsftpd with `require_ssl_reuse=YES` (and ftserver) refuse a
//! `PROT P` data connection that does not resume the control connection's TLS session. Every
//! connection of one control connection therefore uses the same `Arc<ClientConfig>` from
//! [`ClientTls::session`], whose store holds that session. rustls spends a TLS 1.3 ticket per
//! resumption; servers send a fresh one on each resumed data connection, which the client only
//! sees when it reads from that connection: end an upload with [`finish_sending`], or the
//! tickets run out after two uploads.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// Which server certificates to accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Certificates that chain to the system's root certificates (`rustls-native-certs`:
    /// `/etc/ssl/certs` and friends, or `SSL_CERT_FILE`/`SSL_CERT_DIR`), for the host name.
    System,
    /// `--cacert FILE`: certificates that chain to the PEM certificates in FILE (only those,
    /// as curl does), for the host name.
    CaFile(PathBuf),
    /// `--pin sha256:HEX`: exactly the certificate with this fingerprint, whatever its issuer,
    /// name or dates (what `ftserver --tls-self-signed` prints). The handshake signature is
    /// still checked, so only the holder of its key passes.
    Pin(Fingerprint),
    /// `--insecure`: any certificate. The caller says so on stderr.
    Insecure,
}

/// A certificate's SHA-256 fingerprint.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(cert: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(cert).into())
    }
}

impl FromStr for Fingerprint {
    type Err = String;

    /// `sha256:` and 64 hex digits; colons between the digit pairs and upper case (as
    /// `openssl x509 -fingerprint` prints them) are accepted too.
    fn from_str(text: &str) -> Result<Fingerprint, String> {
        let expected = || format!("expected sha256: and 64 hex digits, not `{}`", text.escape_debug());
        let hex =
            text.get(..7).filter(|p| p.eq_ignore_ascii_case("sha256:")).map(|_| &text[7..]).ok_or_else(expected)?;
        let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 64 {
            return Err(expected());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| expected())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| expected())?;
        }
        Ok(Fingerprint(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why the TLS client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The system has no usable root certificates.
    #[error("no system root certificates found (install ca-certificates, or use --cacert FILE or --pin)")]
    NoSystemRoots,
    /// The `--cacert` file could not be read or holds no certificate.
    #[error("{path}: {problem}")]
    CaFile {
        /// The file as given.
        path: PathBuf,
        /// What went wrong, lower case.
        problem: String,
    },
    /// A host name that cannot be a TLS server name.
    #[error("`{0}` is not a valid host name for TLS")]
    ServerName(String),
}

/// The client's TLS configuration; one per run, shared by all control connections.
#[derive(Debug, Clone)]
pub struct ClientTls {
    base: ClientConfig,
}

impl ClientTls {
    /// The configuration for `trust`: TLS 1.2 and 1.3 only.
    pub fn new(trust: &Trust) -> Result<ClientTls, TlsSetupError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("ring supports TLS 1.2 and 1.3");
        let base = match trust {
            Trust::System => builder.with_root_certificates(system_roots()?).with_no_client_auth(),
            Trust::CaFile(path) => builder.with_root_certificates(ca_file(path)?).with_no_client_auth(),
            Trust::Pin(pin) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Verifier { pin: Some(*pin), provider: provider() }))
                .with_no_client_auth(),
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Verifier { pin: None, provider: provider() }))
                .with_no_client_auth(),
        };
        Ok(ClientTls { base })
    }

    /// The configuration for one control connection and all its data connections: a fresh
    /// session store, so data connections resume this control connection's session (and no
    /// other's).
    pub fn session(&self) -> Arc<ClientConfig> {
        let mut config = self.base.clone();
        config.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(32)));
        Arc::new(config)
    }
}

/// The TLS server name for `host`: a DNS name, or an IP address (`[::1]` or `::1`), which
/// certificates can name too.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsSetupError> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    ServerName::try_from(bare.to_owned()).map_err(|_| TlsSetupError::ServerName(host.escape_debug().to_string()))
}

/// Completes the client side of a handshake within `timeout` in all (rustls's `complete_io`
/// would wait a full socket timeout per read, so a server that trickles bytes could stall the
/// client indefinitely). A refused certificate is an `InvalidData` error that [`describe_io`]
/// words; a stall is `TimedOut`. The socket's timeouts are as they were afterwards.
pub fn handshake(
    conn: &mut rustls::ClientConnection,
    sock: &mut std::net::TcpStream,
    timeout: std::time::Duration,
) -> std::io::Result<()> {
    let saved = (sock.read_timeout()?, sock.write_timeout()?);
    let result = drive_handshake(conn, sock, std::time::Instant::now() + timeout);
    sock.set_read_timeout(saved.0)?;
    sock.set_write_timeout(saved.1)?;
    result
}

fn drive_handshake(
    conn: &mut rustls::ClientConnection,
    sock: &mut std::net::TcpStream,
    deadline: std::time::Instant,
) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    let timed_out = || Error::new(ErrorKind::TimedOut, "tls handshake timed out");
    loop {
        let left = deadline
            .checked_duration_since(std::time::Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(timed_out)?;
        sock.set_read_timeout(Some(left))?;
        sock.set_write_timeout(Some(left))?;
        let stalled = |e: Error| match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => timed_out(),
            _ => e,
        };
        if conn.wants_write() {
            conn.write_tls(sock).map_err(stalled)?;
        } else if !conn.is_handshaking() {
            return Ok(());
        } else if conn.read_tls(sock).map_err(stalled)? == 0 {
            return Err(Error::new(
                ErrorKind::UnexpectedEof,
                "the server closed the connection during the tls handshake",
            ));
        } else if let Err(e) = conn.process_new_packets() {
            // Tell the server why (rustls has queued the alert).
            let _ = conn.write_tls(sock);
            return Err(Error::new(ErrorKind::InvalidData, e));
        }
    }
}

/// Ends a data connection the client sent on (an upload): close_notify, shut down writing
/// (the server's end-of-file), then read until the server closes, which takes in the tickets
/// it sent after the handshake (rustls reads them only when reading) and its close_notify.
/// Without this a client that uploads runs out of tickets to resume with after a couple of
/// files. The socket's read timeout bounds the wait.
pub fn finish_sending(conn: &mut rustls::ClientConnection, sock: &mut std::net::TcpStream) -> std::io::Result<()> {
    use std::io::Read;
    conn.send_close_notify();
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    sock.shutdown(std::net::Shutdown::Write)?;
    let mut sink = [0u8; 4096];
    while conn.read_tls(sock)? != 0 {
        let state = conn.process_new_packets().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        if state.plaintext_bytes_to_read() > 0 {
            while conn.reader().read(&mut sink).is_ok_and(|n| n > 0) {}
        }
        if state.peer_has_closed() {
            break;
        }
    }
    Ok(())
}

/// A TLS failure in the user's words: why the server's certificate was refused (and how to
/// accept it), rather than rustls's debug names (`UnknownIssuer`, `Other(OtherError(..))`).
pub fn describe(err: &rustls::Error) -> String {
    use CertificateError as C;
    let certificate = match err {
        rustls::Error::InvalidCertificate(e) => e,
        rustls::Error::AlertReceived(alert) => return format!("the server ended the TLS handshake ({alert:?})"),
        other => return other.to_string(),
    };
    let why = match certificate {
        C::Other(OtherError(inner)) if inner.is::<PinMismatch>() => return inner.to_string(),
        C::Other(OtherError(inner)) => format!("was refused: {inner}"),
        // webpki reports the last candidate path's failure: a signature that a root with the
        // same name did not make (or could not make, with another key type) is still an
        // unknown issuer to the user.
        C::UnknownIssuer
        | C::BadSignature
        | C::UnsupportedSignatureAlgorithmContext { .. }
        | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "is not signed by a trusted authority".to_owned()
        }
        C::Expired | C::ExpiredContext { .. } => "has expired".to_owned(),
        C::NotValidYet | C::NotValidYetContext { .. } => "is not valid yet".to_owned(),
        C::NotValidForName | C::NotValidForNameContext { .. } => "is for another host name".to_owned(),
        other => format!("was refused: {other}"),
    };
    format!("the server's certificate {why} (use --cacert FILE, --pin sha256:HEX, or --insecure)")
}

/// [`describe`] for the `io::Error` a TLS stream returns (rustls wraps its error in one);
/// other I/O errors as a lower-case phrase.
pub fn describe_io(err: &std::io::Error) -> String {
    match err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(tls) => describe(tls),
        None => crate::credentials::io_problem(err),
    }
}

/// The crypto provider: rustls on *ring*, as the server (rustls 0.23.48 deprecated it for lack
/// of post-quantum key exchange; aws-lc-rs builds several times slower).
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn system_roots() -> Result<RootCertStore, TlsSetupError> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        log::debug!("system root certificates: {error}");
    }
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsSetupError::NoSystemRoots);
    }
    Ok(roots)
}

fn ca_file(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let fail = |problem: String| TlsSetupError::CaFile { path: path.to_owned(), problem };
    let pem = std::fs::read(path).map_err(|e| fail(crate::credentials::io_problem(&e)))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("not a PEM certificate file: {e}")))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(fail("no certificate (expected -----BEGIN CERTIFICATE-----)".into()));
    }
    Ok(roots)
}

/// `--pin` (with `pin`) and `--insecure` (without): the certificate is taken or refused by
/// its fingerprint alone, and the handshake signatures are checked against its key as usual.
#[derive(Debug)]
struct Verifier {
    pin: Option<Fingerprint>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pin) = self.pin else { return Ok(ServerCertVerified::assertion()) };
        let got = Fingerprint::of(end_entity);
        if got == pin {
            Ok(ServerCertVerified::assertion())
        } else {
            let mismatch = PinMismatch { got, pin };
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(mismatch)))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The server's certificate is not the pinned one.
#[derive(Debug, thiserror::Error)]
#[error("the server's certificate is {got}, not the pinned {pin}")]
struct PinMismatch {
    got: Fingerprint,
    pin: Fingerprint,
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
