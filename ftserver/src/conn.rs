//! The stream seam: a control or data connection as the rest of the server sees it, plain TCP
//! or TLS (rustls' `StreamOwned<ServerConnection, TcpStream>`). The socket underneath stays
//! reachable ([`Conn::socket`]) for timeouts, poll and shutdown and, on plain connections only,
//! `sendfile(2)` ([`Conn::plain`]).
//!
//! Nothing above this file reads or writes a connection's raw socket: a TLS connection's socket
//! carries ciphertext. Reads and writes through a TLS connection keep the socket's semantics:
//! a read or write timeout (or a non-blocking socket with nothing to do) is a `WouldBlock` or
//! `TimedOut` error after which the call may be repeated; rustls keeps a partial record and
//! unsent ciphertext meanwhile.

use rustls::{ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};

/// A TLS connection over TCP.
pub type TlsStream = StreamOwned<ServerConnection, TcpStream>;

/// A connection to a client: control or data.
#[derive(Debug)]
pub enum Conn {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (FTPS), after a completed handshake.
    Tls(Box<TlsStream>),
}

impl Conn {
    /// The TCP socket underneath: for timeouts, addresses, poll and shutdown (never for bytes).
    pub fn socket(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }

    /// The socket when bytes can go to it directly (a plain connection): `sendfile(2)` needs it.
    pub fn plain(&self) -> Option<&TcpStream> {
        match self {
            Conn::Plain(s) => Some(s),
            Conn::Tls(_) => None,
        }
    }

    /// Is what travels on this connection encrypted?
    pub fn is_encrypted(&self) -> bool {
        match self {
            Conn::Plain(_) => false,
            Conn::Tls(_) => true,
        }
    }

    /// The TLS state, on a TLS connection.
    pub fn tls(&self) -> Option<&ServerConnection> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(s) => Some(&s.conn),
        }
    }

    /// Ends our side of the connection: in stream mode the close is a data connection's
    /// end-of-file mark (RFC 959 3.4.1), and it must happen before the `226` reply. A TLS
    /// connection says `close_notify` first (RFC 4217 section 12.6), so the client can tell
    /// the end of the file from a cut connection.
    pub fn finish(self) {
        match self {
            Conn::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            Conn::Tls(mut s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
                let _ = s.sock.shutdown(Shutdown::Write);
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            // A client that closes without `close_notify` ends the stream as a plain one would
            // (vsftpd's default, `strict_ssl_read_eof=NO`): many clients do, and an upload's
            // completeness is judged by the control connection as well (`upload_settle`).
            Conn::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}
