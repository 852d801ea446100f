//! Tests of `tls.rs`: real rustls clients against the server configurations over loopback
//! TCP, handshakes and resumption included.

use super::*;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

/// A client that trusts `identity`'s certificate, speaking only `version`. One config is one
/// client: its session store is shared by every connection made with it.
fn client(identity: &Identity, version: &'static rustls::SupportedProtocolVersion) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(identity.certificate().clone()).unwrap();
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Accepts one connection on `listener`, completes the handshake with `config`, asks `check`
/// about it, says hello and reads until the client's close_notify.
fn serve_one<T: Send + 'static>(
    listener: &TcpListener,
    config: Arc<ServerConfig>,
    check: impl FnOnce(&ServerConnection) -> T + Send + 'static,
) -> thread::JoinHandle<Result<T, std::io::Error>> {
    let listener = listener.try_clone().unwrap();
    thread::spawn(move || {
        let (mut sock, _) = listener.accept()?;
        let mut conn = ServerConnection::new(config).map_err(std::io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)?;
        }
        let answer = check(&conn);
        let mut tls = StreamOwned::new(conn, sock);
        tls.write_all(b"hello")?;
        tls.flush()?;
        let mut rest = Vec::new();
        match tls.read_to_end(&mut rest) {
            // Python closes without waiting for our close_notify; that is not what is tested.
            Err(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => Err(e),
            _ => Ok(answer),
        }
    })
}

/// Connects, reads the hello and closes cleanly; returns how the handshake went.
fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<HandshakeKind, std::io::Error> {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, TcpStream::connect(addr)?);
    let mut hello = [0u8; 5];
    tls.read_exact(&mut hello)?;
    assert_eq!(&hello, b"hello");
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(tls.conn.handshake_kind().unwrap())
}

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

#[test]
fn shared_by_session_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<ServerTls>();
    shareable::<SessionTls>();
    shareable::<DataTls>();
}

#[test]
fn self_signed_fingerprint_is_sha256_hex() {
    let identity = Identity::self_signed(&["192.0.2.1".parse().unwrap(), "0.0.0.0".parse().unwrap()]).unwrap();
    let fp = identity.fingerprint();
    let hex = fp.strip_prefix("sha256:").unwrap();
    assert_eq!(hex.len(), 64);
    assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{fp}");
    assert_eq!(fp, fingerprint(identity.certificate()));
    assert!(!format!("{identity:?}").contains("key"), "{identity:?}");
}

/// The control connection makes a full handshake; every data connection after it resumes,
/// as `require_ssl_reuse` wants, with both TLS versions (1.3 tickets, 1.2 session ids). A
/// rustls client spends each 1.3 ticket once; the data connections' fresh tickets keep it
/// supplied past the control connection's two.
#[test]
fn data_connections_resume_the_control_session() {
    let identity = Identity::self_signed(&[]).unwrap();
    let base = identity.server_config().unwrap();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let session = SessionTls::new(Arc::clone(&base));
        let client = client(&identity, version);
        let control = listener();
        let server = serve_one(&control, session.control_config(), |c| c.handshake_kind());
        assert_eq!(connect(control.local_addr().unwrap(), &client).unwrap(), HandshakeKind::Full);
        assert_eq!(server.join().unwrap().unwrap(), Some(HandshakeKind::Full));
        let data = listener();
        for i in 0..5 {
            let tls = session.data();
            let config = tls.config();
            let server = serve_one(&data, config, move |c| tls.resumed(c));
            let kind = connect(data.local_addr().unwrap(), &client).unwrap();
            assert_eq!(kind, HandshakeKind::Resumed, "{version:?} data connection {i}");
            assert!(server.join().unwrap().unwrap(), "{version:?} data connection {i}");
        }
    }
}

/// A stranger who reaches the passive port is not resuming the control session: refused.
/// Nor can it resume the session its own full handshake made, nor one of another control
/// connection.
#[test]
fn a_stranger_cannot_pass_for_the_control_connection() {
    let identity = Identity::self_signed(&[]).unwrap();
    let base = identity.server_config().unwrap();
    let (alice, mallory) = (SessionTls::new(Arc::clone(&base)), SessionTls::new(Arc::clone(&base)));
    let (alice_client, mallory_client) =
        (client(&identity, &rustls::version::TLS13), client(&identity, &rustls::version::TLS13));
    let control = listener();
    let server = serve_one(&control, mallory.control_config(), |_| ());
    connect(control.local_addr().unwrap(), &mallory_client).unwrap();
    server.join().unwrap().unwrap();
    let server = serve_one(&control, alice.control_config(), |_| ());
    connect(control.local_addr().unwrap(), &alice_client).unwrap();
    server.join().unwrap().unwrap();

    let data = listener();
    for attempt in 0..2 {
        let tls = alice.data();
        let server = serve_one(&data, tls.config(), move |c| tls.resumed(c));
        // Mallory holds tickets, but from his own control connection: a full handshake.
        assert_eq!(connect(data.local_addr().unwrap(), &mallory_client).unwrap(), HandshakeKind::Full);
        assert!(!server.join().unwrap().unwrap(), "attempt {attempt}");
    }
    let tls = alice.data();
    let server = serve_one(&data, tls.config(), move |c| tls.resumed(c));
    assert_eq!(connect(data.local_addr().unwrap(), &alice_client).unwrap(), HandshakeKind::Resumed);
    assert!(server.join().unwrap().unwrap());
}

/// Like `serve_one`, with [`handshake`] and its deadline in place of `complete_io`.
fn handshake_one(
    listener: &TcpListener,
    config: Arc<ServerConfig>,
) -> thread::JoinHandle<std::io::Result<HandshakeKind>> {
    let listener = listener.try_clone().unwrap();
    thread::spawn(move || {
        let (mut sock, _) = listener.accept()?;
        let mut conn = ServerConnection::new(config).map_err(std::io::Error::other)?;
        handshake(&mut conn, &mut sock, Duration::from_millis(300))?;
        assert_eq!(sock.read_timeout().unwrap(), None, "the socket's timeouts are restored");
        let mut tls = StreamOwned::new(conn, sock);
        tls.write_all(b"hello")?;
        tls.flush()?;
        let _ = tls.read_to_end(&mut Vec::new());
        Ok(tls.conn.handshake_kind().unwrap())
    })
}

#[test]
fn handshake_with_a_deadline() {
    let identity = Identity::self_signed(&[]).unwrap();
    let session = SessionTls::new(identity.server_config().unwrap());
    let port = listener();
    let server = handshake_one(&port, session.control_config());
    assert_eq!(
        connect(port.local_addr().unwrap(), &client(&identity, &rustls::version::TLS13)).unwrap(),
        HandshakeKind::Full
    );
    assert_eq!(server.join().unwrap().unwrap(), HandshakeKind::Full);

    // A client that connects and says nothing is cut off at the deadline.
    let server = handshake_one(&port, session.control_config());
    let silent = TcpStream::connect(port.local_addr().unwrap()).unwrap();
    let err = server.join().unwrap().unwrap_err();
    assert_eq!((err.kind(), err.to_string().as_str()), (std::io::ErrorKind::TimedOut, "tls handshake timed out"));
    drop(silent);

    // A plaintext FTP command instead of a ClientHello: refused with an alert.
    let server = handshake_one(&port, session.control_config());
    let mut plain = TcpStream::connect(port.local_addr().unwrap()).unwrap();
    plain.write_all(b"USER anonymous\r\n").unwrap();
    let err = server.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    let mut alert = Vec::new();
    plain.read_to_end(&mut alert).unwrap();
    assert_eq!(alert.first(), Some(&21), "a TLS alert record: {alert:?}");

    // A client that leaves mid-handshake.
    let server = handshake_one(&port, session.control_config());
    drop(TcpStream::connect(port.local_addr().unwrap()).unwrap());
    let err = server.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
}

#[test]
fn garbage_instead_of_a_client_hello_is_an_error() {
    let identity = Identity::self_signed(&[]).unwrap();
    let session = SessionTls::new(identity.server_config().unwrap());
    let data = listener();
    let server = serve_one(&data, session.control_config(), |_| ());
    let mut sock = TcpStream::connect(data.local_addr().unwrap()).unwrap();
    sock.write_all(b"USER anonymous\r\n").unwrap();
    let err = server.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    for (input, expected) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(input.as_bytes()), expected, "{input}");
    }
}

#[test]
fn curl_pin_is_the_key_hash() {
    let identity = Identity::self_signed(&[]).unwrap();
    let pin = identity.curl_pin().unwrap();
    let b64 = pin.strip_prefix("sha256//").unwrap();
    assert_eq!(b64.len(), 44, "{pin}");
}

fn write_identity(dir: &Path, identity: &Identity) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, identity.certificate_pem()).unwrap();
    std::fs::write(&key, pem("PRIVATE KEY", identity.key.secret_der())).unwrap();
    (cert, key)
}

#[test]
fn pem_files_load_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let first = Identity::self_signed(&[]).unwrap();
    let (cert, key) = write_identity(dir.path(), &first);
    let loaded = Identity::from_pem_files(&cert, &key).unwrap();
    assert_eq!(loaded.fingerprint(), first.fingerprint());

    let tls = ServerTls::new(TlsSource::Files { cert: cert.clone(), key: key.clone() }).unwrap();
    assert_eq!(tls.fingerprint(), first.fingerprint());
    let second = Identity::self_signed(&[]).unwrap();
    write_identity(dir.path(), &second);
    assert_eq!(tls.reload().unwrap(), second.fingerprint());
    assert_eq!(tls.fingerprint(), second.fingerprint());

    // A broken file on reload keeps the certificate in use.
    std::fs::write(&key, "not a key\n").unwrap();
    let err = tls.reload().unwrap_err().to_string();
    assert_eq!(err, format!("{}: no private key (expected -----BEGIN PRIVATE KEY-----)", key.display()));
    assert_eq!(tls.fingerprint(), second.fingerprint());
    let client = client(&second, &rustls::version::TLS13);
    let control = listener();
    let server = serve_one(&control, tls.session().control_config(), |_| ());
    connect(control.local_addr().unwrap(), &client).unwrap();
    server.join().unwrap().unwrap();
}

#[test]
fn bad_certificate_and_key_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::self_signed(&[]).unwrap();
    let (cert, key) = write_identity(dir.path(), &identity);
    let missing = dir.path().join("missing.pem");
    let err = Identity::from_pem_files(&missing, &key).unwrap_err().to_string();
    assert_eq!(err, format!("{}: no such file or directory", missing.display()));
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = Identity::from_pem_files(&empty, &key).unwrap_err().to_string();
    assert_eq!(err, format!("{}: no certificate (expected -----BEGIN CERTIFICATE-----)", empty.display()));
    // The key of another certificate.
    let other = tempfile::tempdir().unwrap();
    let (_, other_key) = write_identity(other.path(), &Identity::self_signed(&[]).unwrap());
    let mismatched = Identity::from_pem_files(&cert, &other_key).unwrap();
    let err = mismatched.server_config().unwrap_err().to_string();
    assert!(err.starts_with("certificate and key: "), "{err}");
}

/// OpenSSL clients (Python's `ssl` here; curl and lftp's GnuTLS behave alike) offer the control
/// connection's one session on every data connection: it must resume each time, which works
/// only because the cache never takes an entry out.
#[test]
fn an_openssl_client_reuses_one_session_for_every_data_connection() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::self_signed(&[]).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, identity.certificate_pem()).unwrap();
    let session = SessionTls::new(identity.server_config().unwrap());
    let (control, data) = (listener(), listener());
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
def talk(port, session=None):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost", session=session)
    assert s.recv(5) == b"hello"
    reused, sess = s.session_reused, s.session
    s.close()
    return reused, sess
_, sess = talk(int(sys.argv[2]))
print(" ".join(str(talk(int(sys.argv[3]), sess)[0]) for _ in range(3)))
"#;
    let server_control = serve_one(&control, session.control_config(), |_| ());
    let mut python = std::process::Command::new("python3")
        .args(["-c", script, &ca.display().to_string()])
        .arg(control.local_addr().unwrap().port().to_string())
        .arg(data.local_addr().unwrap().port().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (the OpenSSL client of this test) must be installed");
    server_control.join().unwrap().unwrap();
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        let tls = session.data();
        verdicts.push(serve_one(&data, tls.config(), move |c| tls.resumed(c)).join().unwrap().unwrap());
    }
    let mut out = String::new();
    python.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(python.wait().unwrap().success());
    assert_eq!(out.trim(), "True True True");
    assert_eq!(verdicts, [true, true, true]);
}
