//! The client's connections, control and data alike: plain TCP or TLS (rustls). One enum, so
//! the socket stays reachable for timeouts, socket options, shutdown and resets whichever it
//! is (a boxed `dyn Read + Write` would hide it).

use crate::session::TICK;
use crate::tls;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A control or data connection.
#[derive(Debug)]
pub enum Conn {
    /// Clear text.
    Plain(TcpStream),
    /// TLS over the socket (explicit after `AUTH TLS`, implicit from the first byte, or a
    /// protected data connection).
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

/// The TLS handshake failed; the message says why in the user's words (a refused certificate
/// names the options that accept it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandshakeError(pub String);

impl Conn {
    /// Starts TLS on a connected socket as the client, with `config` (one control connection's
    /// configuration, whose session store data connections resume from), and completes the
    /// handshake within `timeout`.
    pub fn tls(
        mut sock: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        timeout: Duration,
    ) -> Result<Conn, HandshakeError> {
        let mut conn = ClientConnection::new(config, name).map_err(|e| HandshakeError(tls::describe(&e)))?;
        // In slices of one tick, so Ctrl-C is noticed during a handshake that stalls; a slice
        // that runs out leaves the connection as it was (nothing half read or half written).
        let deadline = Instant::now() + timeout;
        loop {
            crate::interrupt::check().map_err(|e| HandshakeError(e.to_string()))?;
            let left = deadline.saturating_duration_since(Instant::now());
            match tls::handshake(&mut conn, &mut sock, left.min(TICK)) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::TimedOut && left > TICK => continue,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(HandshakeError(format!(
                        "no tls handshake from the server within {} s",
                        timeout.as_secs()
                    )))
                }
                Err(e) => return Err(HandshakeError(tls::describe_io(&e))),
            }
        }
        log::debug!(
            "tls: {}, {}, {} handshake",
            conn.protocol_version().map_or_else(String::new, |v| format!("{v:?}")),
            conn.negotiated_cipher_suite().map_or_else(String::new, |s| format!("{:?}", s.suite())),
            conn.handshake_kind().map_or_else(String::new, |k| format!("{k:?}").to_lowercase()),
        );
        Ok(Conn::Tls(Box::new(StreamOwned::new(conn, sock))))
    }

    /// Turns a plain control connection into TLS in place (after `234` to `AUTH TLS`). The
    /// socket is kept (a duplicate descriptor of it, the old one closed).
    pub fn upgrade(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        timeout: Duration,
    ) -> Result<(), HandshakeError> {
        let sock = self.socket().try_clone().map_err(|e| HandshakeError(crate::report::io_reason(&e)))?;
        *self = Conn::tls(sock, config, name, timeout)?;
        Ok(())
    }

    /// The TCP socket underneath.
    pub fn socket(&self) -> &TcpStream {
        match self {
            Conn::Plain(sock) => sock,
            Conn::Tls(tls) => &tls.sock,
        }
    }

    /// Is this connection encrypted?
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// Has the peer sent something (data, or the end of the connection)? Waits at most the
    /// socket's read timeout. For TLS only decrypted bytes count: a session ticket is not a
    /// reply.
    pub fn readable(&mut self) -> io::Result<bool> {
        match self {
            Conn::Plain(sock) => sock.peek(&mut [0u8; 1]).map(|_| true),
            Conn::Tls(tls) => {
                let state = tls.conn.process_new_packets().map_err(io::Error::other)?;
                if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
                    return Ok(true);
                }
                if tls.sock.peek(&mut [0u8; 1])? == 0 || tls.conn.read_tls(&mut tls.sock)? == 0 {
                    return Ok(true);
                }
                let state = tls.conn.process_new_packets().map_err(io::Error::other)?;
                Ok(state.plaintext_bytes_to_read() > 0 || state.peer_has_closed())
            }
        }
    }

    /// Ends a connection the client sent on, as the end of the data (RFC 959 stream mode):
    /// plain, shut down writing; TLS, [`tls::finish_sending`] (close_notify, then take in what
    /// the server still sends, its session tickets among it), waiting at most `timeout`.
    pub fn finish_sending(self, timeout: Duration) -> io::Result<()> {
        match self {
            Conn::Plain(sock) => sock.shutdown(std::net::Shutdown::Write),
            Conn::Tls(mut tls) => {
                tls.sock.set_read_timeout(Some(timeout))?;
                tls.sock.set_write_timeout(Some(timeout))?;
                let StreamOwned { conn, sock } = &mut *tls;
                tls::finish_sending(conn, sock)
            }
        }
    }

    /// Ends the connection with a reset (RST) instead of a clean close: in stream mode a clean
    /// close means "that was the whole file" (RFC 959 3.4.1). No close_notify either.
    pub fn abort(self) {
        // SO_LINGER with a zero timeout makes close() discard unsent data and send RST.
        if let Err(e) = socket2::SockRef::from(self.socket()).set_linger(Some(Duration::ZERO)) {
            log::warn!("cannot reset the data connection ({}); closing it", crate::report::io_reason(&e));
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(sock) => sock.read(buf),
            Conn::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(sock) => sock.write(buf),
            Conn::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(sock) => sock.flush(),
            Conn::Tls(tls) => tls.flush(),
        }
    }
}
