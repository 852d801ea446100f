//! The stream seam: a control or data connection as the rest of the server sees it. Today it is
//! plain TCP; FTPS adds a TLS variant here (rustls' `StreamOwned<ServerConnection, TcpStream>`),
//! and every `match` on [`Conn`] in this file is where it gets its arm. The socket underneath
//! stays reachable ([`Conn::socket`]) for timeouts, poll, shutdown and, on plain connections,
//! `sendfile(2)` ([`Conn::plain`]).
//!
//! Nothing above this file reads or writes a connection's raw socket: a TLS connection's socket
//! carries ciphertext.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};

/// A connection to a client: control or data.
#[derive(Debug)]
pub enum Conn {
    /// Plain TCP.
    Plain(TcpStream),
}

impl Conn {
    /// The TCP socket underneath: for timeouts, addresses, poll and shutdown (never for bytes).
    pub fn socket(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
        }
    }

    /// The socket when bytes can go to it directly (a plain connection): `sendfile(2)` needs it.
    pub fn plain(&self) -> Option<&TcpStream> {
        match self {
            Conn::Plain(s) => Some(s),
        }
    }

    /// Is what travels on this connection encrypted?
    pub fn is_encrypted(&self) -> bool {
        match self {
            Conn::Plain(_) => false,
        }
    }

    /// Ends our side of the connection: in stream mode the close is a data connection's
    /// end-of-file mark (RFC 959 3.4.1), and it must happen before the `226` reply.
    pub fn finish(self) {
        match self {
            Conn::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
        }
    }
}
