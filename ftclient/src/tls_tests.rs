//! Tests of `tls.rs`: the client configurations against ftserver's TLS over loopback TCP.

use super::*;
use ftserver::tls::{Identity, SessionTls};
use rustls::{ClientConnection, HandshakeKind, ServerConfig, ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

/// A one-connection server: handshake with `config`, answer `check`, say hello, read to the end.
fn serve_one<T: Send + 'static>(
    listener: &TcpListener,
    config: Arc<ServerConfig>,
    check: impl FnOnce(&ServerConnection) -> T + Send + 'static,
) -> thread::JoinHandle<std::io::Result<T>> {
    let listener = listener.try_clone().unwrap();
    thread::spawn(move || {
        let (sock, _) = listener.accept()?;
        let mut tls = StreamOwned::new(ServerConnection::new(config).map_err(std::io::Error::other)?, sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        let answer = check(&tls.conn);
        tls.write_all(b"hello")?;
        tls.flush()?;
        let _ = tls.read_to_end(&mut Vec::new());
        Ok(answer)
    })
}

/// Connects as `host`, reads the hello, closes cleanly.
fn connect(listener: &TcpListener, config: &Arc<ClientConfig>, host: &str) -> std::io::Result<HandshakeKind> {
    let name = server_name(host).unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, TcpStream::connect(listener.local_addr()?)?);
    let mut hello = [0u8; 5];
    tls.read_exact(&mut hello)?;
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(tls.conn.handshake_kind().unwrap())
}

/// Runs one handshake against a fresh session of `identity`; the client's error, if any.
fn try_trust(identity: &Identity, trust: &Trust, host: &str) -> Result<(), String> {
    let client = ClientTls::new(trust).map_err(|e| e.to_string())?.session();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = serve_one(&listener, SessionTls::new(identity.server_config().unwrap()).control_config(), |_| ());
    let result = connect(&listener, &client, host).map(|_| ()).map_err(|e| describe_io(&e));
    let _ = server.join().unwrap();
    result
}

#[test]
fn fingerprints_parse_and_print() {
    let hex = "3cb9f923bd3ab0dc86f84a1c19f606bbcb4f3469944ffbdf05954bc47fdff160";
    let fp: Fingerprint = format!("sha256:{hex}").parse().unwrap();
    assert_eq!(fp.to_string(), format!("sha256:{hex}"));
    let openssl_style =
        hex.to_uppercase().as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(":");
    assert_eq!(format!("SHA256:{openssl_style}").parse::<Fingerprint>(), Ok(fp));
    for bad in ["", "sha256:", &hex[..63], hex, &format!("sha1:{hex}"), &format!("sha256:{}g", &hex[..63]), "sha256:é"]
    {
        let err = bad.parse::<Fingerprint>().unwrap_err();
        assert!(err.starts_with("expected sha256: and 64 hex digits, not `"), "{bad}: {err}");
    }
}

#[test]
fn a_pin_accepts_exactly_that_certificate() {
    let identity = Identity::self_signed(&[]).unwrap();
    let pin: Fingerprint = identity.fingerprint().parse().unwrap();
    assert_eq!(try_trust(&identity, &Trust::Pin(pin), "localhost"), Ok(()));
    assert_eq!(try_trust(&identity, &Trust::Pin(pin), "127.0.0.1"), Ok(()), "the name does not matter");
    let other = Identity::self_signed(&[]).unwrap();
    let err = try_trust(&other, &Trust::Pin(pin), "localhost").unwrap_err();
    let expected = format!("the server's certificate is {}, not the pinned {pin}", other.fingerprint());
    assert_eq!(err, expected);
}

#[test]
fn a_ca_file_checks_chain_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::self_signed(&[]).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, identity.certificate_pem()).unwrap();
    let trust = Trust::CaFile(ca.clone());
    assert_eq!(try_trust(&identity, &trust, "localhost"), Ok(()));
    assert_eq!(try_trust(&identity, &trust, "::1"), Ok(()));
    let advice = "(use --cacert FILE, --pin sha256:HEX, or --insecure)";
    let wrong_name = try_trust(&identity, &trust, "example.com").unwrap_err();
    assert_eq!(wrong_name, format!("the server's certificate is for another host name {advice}"));
    let stranger = try_trust(&Identity::self_signed(&[]).unwrap(), &trust, "localhost").unwrap_err();
    assert_eq!(stranger, format!("the server's certificate is not signed by a trusted authority {advice}"));

    let missing = dir.path().join("missing.pem");
    let err = ClientTls::new(&Trust::CaFile(missing.clone())).unwrap_err().to_string();
    assert_eq!(err, format!("{}: no such file or directory", missing.display()));
    std::fs::write(&missing, "hello\n").unwrap();
    let err = ClientTls::new(&Trust::CaFile(missing.clone())).unwrap_err().to_string();
    assert_eq!(err, format!("{}: no certificate (expected -----BEGIN CERTIFICATE-----)", missing.display()));
}

/// The system's roots do not know a self-signed certificate; `--insecure` takes it.
#[test]
fn system_roots_refuse_self_signed_and_insecure_accepts_it() {
    let identity = Identity::self_signed(&[]).unwrap();
    let err = try_trust(&identity, &Trust::System, "localhost").unwrap_err();
    assert!(err.starts_with("the server's certificate is not signed by a trusted authority"), "{err}");
    assert_eq!(try_trust(&identity, &Trust::Insecure, "localhost"), Ok(()));
}

/// One control connection, then data connections that each resume its session: what
/// vsftpd's `require_ssl_reuse=YES` and ftserver demand.
#[test]
fn data_connections_resume_the_control_session() {
    let identity = Identity::self_signed(&[]).unwrap();
    let session = SessionTls::new(identity.server_config().unwrap());
    let client = ClientTls::new(&Trust::Pin(identity.fingerprint().parse().unwrap())).unwrap().session();
    let control = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = serve_one(&control, session.control_config(), |_| ());
    assert_eq!(connect(&control, &client, "localhost").unwrap(), HandshakeKind::Full);
    server.join().unwrap().unwrap();
    let data = TcpListener::bind("127.0.0.1:0").unwrap();
    for i in 0..6 {
        let tls = session.data();
        let server = serve_one(&data, tls.config(), move |c| tls.resumed(c));
        assert_eq!(connect(&data, &client, "localhost").unwrap(), HandshakeKind::Resumed, "data connection {i}");
        assert!(server.join().unwrap().unwrap(), "data connection {i}");
    }
    // Another control connection of the same run has its own store: nothing to resume.
    let fresh = ClientTls::new(&Trust::Insecure).unwrap().session();
    let tls = session.data();
    let server = serve_one(&data, tls.config(), move |c| tls.resumed(c));
    assert_eq!(connect(&data, &fresh, "localhost").unwrap(), HandshakeKind::Full);
    assert!(!server.join().unwrap().unwrap());
}

#[test]
fn server_names() {
    for (host, ok) in [
        ("localhost", true),
        ("ftp.example.com", true),
        ("127.0.0.1", true),
        ("::1", true),
        ("[::1]", true),
        ("a b", false),
        ("", false),
    ] {
        assert_eq!(server_name(host).is_ok(), ok, "{host}");
    }
}

#[test]
fn other_errors_keep_their_words() {
    let err = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
    assert_eq!(describe_io(&err), "cannot decrypt peer's message");
    assert_eq!(describe_io(&std::io::Error::from_raw_os_error(111)), "connection refused");
    let alert = rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure);
    assert_eq!(describe(&alert), "the server ended the TLS handshake (HandshakeFailure)");
}

/// Uploads never read, so the tickets a resumed data connection brings are only taken in by
/// [`finish_sending`]; with it every upload resumes, however many there are.
#[test]
fn uploads_keep_resuming() {
    let identity = Identity::self_signed(&[]).unwrap();
    let session = SessionTls::new(identity.server_config().unwrap());
    let client = ClientTls::new(&Trust::Insecure).unwrap().session();
    let control = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = serve_one(&control, session.control_config(), |_| ());
    connect(&control, &client, "localhost").unwrap();
    server.join().unwrap().unwrap();
    let data = TcpListener::bind("127.0.0.1:0").unwrap();
    for i in 0..6 {
        let tls = session.data();
        let (config, listener) = (tls.config(), data.try_clone().unwrap());
        let server = thread::spawn(move || -> std::io::Result<(bool, Vec<u8>)> {
            let (sock, _) = listener.accept()?;
            let mut stream = StreamOwned::new(ServerConnection::new(config).map_err(std::io::Error::other)?, sock);
            while stream.conn.is_handshaking() {
                stream.conn.complete_io(&mut stream.sock)?;
            }
            let resumed = tls.resumed(&stream.conn);
            let mut file = Vec::new();
            stream.read_to_end(&mut file)?;
            stream.conn.send_close_notify();
            stream.flush()?;
            Ok((resumed, file))
        });
        let conn = ClientConnection::new(Arc::clone(&client), server_name("localhost").unwrap()).unwrap();
        let mut tls = StreamOwned::new(conn, TcpStream::connect(data.local_addr().unwrap()).unwrap());
        tls.write_all(format!("file {i}").as_bytes()).unwrap();
        finish_sending(&mut tls.conn, &mut tls.sock).unwrap();
        assert_eq!(tls.conn.handshake_kind(), Some(HandshakeKind::Resumed), "upload {i}");
        let (resumed, file) = server.join().unwrap().unwrap();
        assert!(resumed, "upload {i}");
        assert_eq!(file, format!("file {i}").as_bytes());
    }
}

#[test]
fn handshake_with_a_deadline() {
    let identity = Identity::self_signed(&[]).unwrap();
    let session = SessionTls::new(identity.server_config().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = ClientTls::new(&Trust::Insecure).unwrap().session();
    let start = |sock| (ClientConnection::new(Arc::clone(&client), server_name("localhost").unwrap()).unwrap(), sock);
    let timeout = std::time::Duration::from_millis(300);

    let server = serve_one(&listener, session.control_config(), |_| ());
    let (mut conn, mut sock) = start(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
    handshake(&mut conn, &mut sock, timeout).unwrap();
    assert_eq!(sock.read_timeout().unwrap(), None, "the socket's timeouts are restored");
    let mut tls = StreamOwned::new(conn, sock);
    tls.read_exact(&mut [0u8; 5]).unwrap();
    tls.conn.send_close_notify();
    tls.flush().unwrap();
    server.join().unwrap().unwrap();

    // A server that accepts and says nothing.
    let (mut conn, mut sock) = start(TcpStream::connect(listener.local_addr().unwrap()).unwrap());
    let err = handshake(&mut conn, &mut sock, timeout).unwrap_err();
    assert_eq!((err.kind(), err.to_string().as_str()), (std::io::ErrorKind::TimedOut, "tls handshake timed out"));
    let (silent, _) = listener.accept().unwrap();
    drop(silent);

    // A pinned client meeting another certificate.
    let other =
        ClientTls::new(&Trust::Pin(Identity::self_signed(&[]).unwrap().fingerprint().parse().unwrap())).unwrap();
    let server = serve_one(&listener, session.control_config(), |_| ());
    let mut conn = ClientConnection::new(other.session(), server_name("localhost").unwrap()).unwrap();
    let mut sock = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let err = handshake(&mut conn, &mut sock, timeout).unwrap_err();
    assert!(describe_io(&err).starts_with("the server's certificate is sha256:"), "{err}");
    assert!(server.join().unwrap().is_err(), "the server hears the alert");
}
