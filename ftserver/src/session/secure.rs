//! FTPS in a session (RFC 4217): `AUTH TLS` turns the control connection into TLS, `PBSZ` and
//! `PROT` choose whether data connections are encrypted, `CCC` is refused, and
//! [`Session::secure_data`] wraps a data connection in TLS after its `150`, refusing one that
//! does not resume the control connection's TLS session (`522`, vsftpd's
//! `require_ssl_reuse`). An implicit-TLS connection starts with [`Session::implicit_tls`].

use super::control::ControlSocket;
use super::{Flow, Session};
use crate::conn::Conn;
use crate::tls::{self, SessionTls};
use common::text::sanitize;
use common::{Control, MAX_COMMAND_LINE};
use log::{debug, info, warn};
use rustls::{ServerConnection, StreamOwned};
use std::io;
use std::net::TcpStream;

/// The answer to the TLS commands when the server has no certificate.
const NO_TLS: &str = "TLS is not enabled on this server.";

/// A connection's TLS, made and shaken hands with, or why not.
fn accept_tls(
    config: std::sync::Arc<rustls::ServerConfig>,
    mut tcp: TcpStream,
    timeout: std::time::Duration,
) -> io::Result<(ServerConnection, TcpStream)> {
    let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
    tls::handshake(&mut conn, &mut tcp, timeout)?;
    Ok((conn, tcp))
}

/// The protocol version of a TLS connection, for STAT and the log.
fn version_name(conn: &ServerConnection) -> &'static str {
    match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
        _ => "TLS",
    }
}

impl Session<'_> {
    /// Is the control connection encrypted?
    pub(super) fn encrypted(&self) -> bool {
        self.ctrl.get_ref().conn.is_encrypted()
    }

    /// Takes the plain TCP socket out of the control reader, leaving a clone in its place (the
    /// reader is replaced right after).
    fn take_control_socket(&mut self) -> io::Result<TcpStream> {
        let placeholder = Conn::Plain(self.ctrl.get_ref().conn.socket().try_clone()?);
        match std::mem::replace(&mut self.ctrl.get_mut().conn, placeholder) {
            Conn::Plain(tcp) => Ok(tcp),
            tls @ Conn::Tls(_) => {
                self.ctrl.get_mut().conn = tls;
                Err(io::Error::other("the control connection is already encrypted"))
            }
        }
    }

    /// Makes the control connection TLS. A new reader replaces the old one: whatever the
    /// client sent in clear after the command that asked for TLS is dropped unread, so no
    /// plaintext command injected by a man in the middle runs with the encrypted session's
    /// rights. `Err`: the handshake failed and the session must end.
    fn upgrade_control(&mut self) -> Result<(), String> {
        let Some(server) = self.ctx.config.tls.clone() else { return Err("tls is not configured".into()) };
        let dropped = self.ctrl.pending().len();
        if dropped > 0 {
            warn!("{}: dropped {dropped} bytes sent in clear after the tls request", self.peer);
        }
        let tcp = self.take_control_socket().map_err(|e| e.to_string())?;
        let session = server.session();
        let (conn, tcp) = accept_tls(session.control_config(), tcp, self.ctx.config.data_timeout)
            .map_err(|e| format!("tls handshake failed: {e}"))?;
        info!("{}: control connection encrypted ({})", self.peer, version_name(&conn));
        let stream = Conn::Tls(Box::new(StreamOwned::new(conn, tcp)));
        self.ctrl = Control::new(ControlSocket::new(stream), MAX_COMMAND_LINE);
        self.tls = Some(session);
        Ok(())
    }

    /// An implicit-TLS connection (`--implicit-tls`): the handshake comes before the greeting,
    /// and data connections are protected unless the client says `PROT C`.
    pub(super) fn implicit_tls(&mut self) -> Result<(), String> {
        self.upgrade_control()?;
        self.protect = true;
        Ok(())
    }

    /// AUTH TLS (RFC 4217 section 4): `234`, then the handshake on the control connection.
    pub(super) fn auth(&mut self, mechanism: &str) -> io::Result<Flow> {
        if self.ctx.config.tls.is_none() {
            return self.reply(502, NO_TLS).map(|()| Flow::Continue);
        }
        if self.encrypted() {
            return self.reply(503, "Already using TLS.").map(|()| Flow::Continue);
        }
        let mechanism = mechanism.trim();
        if !["TLS", "TLS-C", "SSL"].iter().any(|m| mechanism.eq_ignore_ascii_case(m)) {
            return self
                .reply(504, format!("AUTH {} not supported, use AUTH TLS.", sanitize(mechanism)))
                .map(|()| Flow::Continue);
        }
        self.reply(234, "Proceed with negotiation.")?;
        match self.upgrade_control() {
            Ok(()) => {
                // A login made in clear does not carry over to the encrypted session.
                self.user = None;
                self.principal = None;
                Ok(Flow::Continue)
            }
            Err(why) => {
                info!("{}: {why}", self.peer);
                Ok(Flow::Close)
            }
        }
    }

    /// PBSZ (RFC 4217 section 8): TLS has no buffer size; `0` is the only answer.
    pub(super) fn pbsz(&mut self, _size: &str) -> io::Result<()> {
        if self.ctx.config.tls.is_none() {
            return self.reply(502, NO_TLS);
        }
        if !self.encrypted() {
            return self.reply(503, "PBSZ needs AUTH TLS first.");
        }
        self.reply(200, "PBSZ=0")
    }

    /// PROT (RFC 4217 section 9): `P` encrypts data connections, `C` leaves them clear
    /// (refused at the transfer with `--require-tls`).
    pub(super) fn prot(&mut self, level: &str) -> io::Result<()> {
        if self.ctx.config.tls.is_none() {
            return self.reply(502, NO_TLS);
        }
        if !self.encrypted() {
            return self.reply(503, "PROT needs AUTH TLS first.");
        }
        let level = level.trim().to_ascii_uppercase();
        if level == "P" || level == "C" {
            // A kept block-mode data connection has the old protection level: it goes.
            self.kept = None;
        }
        match level.as_str() {
            "P" => {
                self.protect = true;
                self.reply(200, "PROT now Private.")
            }
            "C" => {
                self.protect = false;
                self.reply(200, "PROT now Clear.")
            }
            "S" | "E" => self.reply(536, "PROT S and E are not supported, use P or C."),
            _ => self.reply(504, "Unknown PROT level, use P or C."),
        }
    }

    /// Is a data connection about to be opened allowed at this protection level? With
    /// `--require-tls` only `PROT P` ones are (`521`, as vsftpd's `force_local_data_ssl`).
    pub(super) fn data_protection_ok(&mut self) -> io::Result<bool> {
        if self.ctx.config.require_tls && !self.protect {
            self.data = None;
            self.reply(521, "Data connections must be encrypted: use PROT P.")?;
            return Ok(false);
        }
        Ok(true)
    }

    /// After the `150`: wraps a data connection in TLS when `PROT P` is in force. The client
    /// starts its handshake once it has the `150` (Python's ftplib waits for it), so this
    /// cannot come earlier. A failed handshake is `425`; a connection that did not resume the
    /// control connection's session is `522` and is closed before any byte of the file.
    pub(super) fn secure_data(&mut self, conn: Conn) -> io::Result<Option<Conn>> {
        let Conn::Plain(tcp) = conn else { return Ok(Some(conn)) };
        if !self.protect {
            return Ok(Some(Conn::Plain(tcp)));
        }
        let Some(session) = self.tls.as_ref().map(SessionTls::data) else {
            return self.reply(425, "No TLS session for the data connection.").map(|()| None);
        };
        match accept_tls(session.config(), tcp, self.ctx.config.data_timeout) {
            Ok((conn, tcp)) if session.resumed(&conn) => {
                debug!("{}: data connection encrypted ({}, resumed)", self.peer, version_name(&conn));
                Ok(Some(Conn::Tls(Box::new(StreamOwned::new(conn, tcp)))))
            }
            Ok((_, tcp)) => {
                warn!("{}: data connection refused: it did not resume the control connection's tls session", self.peer);
                let _ = tcp.shutdown(std::net::Shutdown::Both);
                self.reply(522, "Data connections must resume the TLS session of the control connection.")
                    .map(|()| None)
            }
            Err(e) => {
                warn!("{}: tls handshake on the data connection failed: {e}", self.peer);
                self.reply(425, "TLS handshake on the data connection failed.").map(|()| None)
            }
        }
    }

    /// STAT's lines about encryption.
    pub(super) fn tls_status(&self) -> [String; 2] {
        let control = match self.ctrl.get_ref().conn.tls() {
            Some(conn) => format!(" Control connection is encrypted ({})", version_name(conn)),
            None => " Control connection is plain text".to_owned(),
        };
        let data = if self.protect && self.encrypted() {
            " Data connections will be encrypted"
        } else {
            " Data connections will be plain text"
        };
        [control, data.to_owned()]
    }
}
