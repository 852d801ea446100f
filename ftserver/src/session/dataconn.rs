//! Setting up data connections: PASV, EPSV, PORT and EPRT plan one, and the transfer
//! commands open it with [`Session::start_data`] (RFC 2577's rules: only the control peer, no
//! privileged ports). MODE chooses stream or block mode; in block mode a complete transfer's
//! connection is kept for the next one ([`Session::end_data`]).

use super::Session;
use crate::conn::Conn;
use crate::data::{self, DataPlan, PassiveListener};
use common::command::EpsvArg;
use common::hostport::{canonical_ip, format_227, format_229};
use common::text::sanitize;
use log::{debug, warn};
use std::io;
use std::net::{IpAddr, SocketAddr};

impl Session<'_> {
    /// The EPRT network protocol the control peer's address family allows (RFC 2428: 1 for
    /// IPv4, an IPv4-mapped IPv6 peer included, 2 for IPv6).
    pub(super) fn peer_family(&self) -> u16 {
        if canonical_ip(self.peer.ip()).is_ipv4() {
            1
        } else {
            2
        }
    }

    /// The IP passive listeners bind to, and active connections come from: the control
    /// connection's local address (an IPv4-mapped address on a dual-stack socket becomes plain
    /// IPv4).
    fn passive_ip(&self) -> IpAddr {
        canonical_ip(self.local.ip())
    }

    /// Opens a passive listener and answers `code` with `text(port)` (227 or 229), or 425 when
    /// no port can be had or the client's address holds its share of the range already.
    fn offer_passive(&mut self, code: u16, text: impl FnOnce(u16) -> String) -> io::Result<()> {
        self.data = None;
        let Some(share) = self.ctx.passive.claim(self.peer.ip()) else {
            warn!("{}: refused a passive port: the address holds its share of --pasv-ports", self.peer);
            return self.reply(425, "Too many passive data ports held from your address; try again later.");
        };
        match PassiveListener::bind(self.passive_ip(), self.ctx.config.pasv_ports.as_ref(), Some(share)) {
            Ok(listener) => {
                let text = text(listener.port());
                self.data = Some(DataPlan::Passive(listener));
                self.reply(code, text)
            }
            Err(e) => {
                warn!("{}: cannot open a passive port: {e}", self.peer);
                self.reply(425, "Cannot open a passive data port.")
            }
        }
    }

    pub(super) fn pasv(&mut self) -> io::Result<()> {
        // A new data connection is asked for: a kept one goes, even when this fails.
        self.kept = None;
        if self.epsv_all {
            return self.reply(503, "EPSV ALL in effect: only EPSV is allowed.");
        }
        let IpAddr::V4(local) = self.passive_ip() else {
            return self.reply(425, "PASV needs an IPv4 connection, use EPSV.");
        };
        let shown = self.ctx.config.pasv_address.unwrap_or(local);
        self.offer_passive(227, |port| format_227(std::net::SocketAddrV4::new(shown, port)))
    }

    pub(super) fn epsv(&mut self, arg: EpsvArg) -> io::Result<()> {
        self.kept = None;
        let ours: u16 = if self.passive_ip().is_ipv4() { 1 } else { 2 };
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                self.data = None;
                return self.reply(200, "EPSV ALL ok.");
            }
            EpsvArg::Protocol(p) if p != ours => {
                return self.reply(522, format!("Network protocol not supported, use ({ours})"));
            }
            EpsvArg::Protocol(_) | EpsvArg::Any => {}
        }
        self.offer_passive(229, format_229)
    }

    /// PORT and EPRT. RFC 2577 section 3: the address must be the control peer's and the port
    /// must not be privileged, or the server could be used to attack third parties.
    pub(super) fn port(&mut self, target: SocketAddr, verb: &str) -> io::Result<()> {
        self.data = None;
        self.kept = None;
        if self.epsv_all {
            return self.reply(503, "EPSV ALL in effect: only EPSV is allowed.");
        }
        let peer_ip = canonical_ip(self.peer.ip());
        let target_ip = canonical_ip(target.ip());
        if verb == "EPRT" && target_ip.is_ipv4() != peer_ip.is_ipv4() {
            return self.reply(522, format!("Network protocol not supported, use ({})", self.peer_family()));
        }
        if target_ip != peer_ip || target.port() < 1024 {
            warn!("{}: refused {verb} to {target}: not the control peer or a privileged port", self.peer);
            return self.reply(500, "Illegal PORT command.");
        }
        self.data = Some(DataPlan::Active(target));
        self.reply(200, format!("{verb} command successful. Consider using EPSV."))
    }

    /// MODE: `S` (stream, RFC 959 3.4.1: the connection's end is the file's end) and `B`
    /// (block, 3.4.2: blocks and an EOF block, so the connection can stay). Leaving block mode
    /// closes a kept data connection.
    pub(super) fn mode(&mut self, arg: &str) -> io::Result<()> {
        match arg.trim().to_ascii_uppercase().as_str() {
            "S" => {
                self.block = false;
                self.kept = None;
                self.reply(200, "Mode set to S.")
            }
            "B" => {
                self.block = true;
                self.reply(200, "Mode set to B.")
            }
            _ => self.reply(504, format!("MODE {} not supported, use S or B.", sanitize(arg.trim()))),
        }
    }

    /// The data connection for a transfer, after its preliminary reply: in block mode the kept
    /// one with `125 {already}` (no new TLS handshake: it is secured already); otherwise the
    /// planned one, opened, `150 {opening}`, and secured when `PROT P`. `None`: refused and
    /// answered. `download`: a kept connection the client has closed is refused with `426`
    /// (and dropped) rather than written into; for an upload the blocks' reader finds out.
    pub(super) fn start_data(&mut self, opening: String, already: String, download: bool) -> io::Result<Option<Conn>> {
        if let Some(conn) = self.kept.take() {
            if download && data::block::client_left(&conn) {
                debug!("{}: the kept data connection was closed by the client", self.peer);
                self.reply(426, "The kept data connection was closed; open a new one with PASV or EPSV.")?;
                return Ok(None);
            }
            self.reply(125, already)?;
            return Ok(Some(conn));
        }
        let Some(conn) = self.open_data()? else { return Ok(None) };
        self.reply(150, opening)?;
        let Some(conn) = self.secure_data(conn)? else { return Ok(None) };
        if self.block {
            if let Err(e) = data::block::prepare(&conn) {
                debug!("{}: TCP_NODELAY refused on a data connection: {e}", self.peer);
            }
        }
        Ok(Some(conn))
    }

    /// Ends a transfer's use of its data connection. Stream mode closes it: its end is the
    /// file's end (RFC 959 3.4.1), and it must come before the `226`. Block mode keeps the
    /// connection of a `complete` transfer (answered with [`Session::transfer_done`]) for the
    /// next one, and closes it after any failure: where its blocks stand is then unknown.
    pub(super) fn end_data(&mut self, conn: Conn, complete: bool) {
        match (self.block, complete) {
            (false, _) => conn.finish(),
            (true, true) => self.kept = Some(conn),
            (true, false) => drop(conn),
        }
    }

    /// The final reply of a complete transfer, `text` without its full stop: `226` in stream
    /// mode, where the data connection is closed; `250` in block mode, where it stays open
    /// (RFC 959 4.2: 226 means "closing data connection").
    pub(super) fn transfer_done(&mut self, text: &str) -> io::Result<()> {
        if self.block {
            self.reply(250, format!("{text}; data connection kept open (block mode)."))
        } else {
            self.reply(226, format!("{text}."))
        }
    }

    /// Opens the data connection planned by PASV/EPSV/PORT/EPRT, replying 425 when that fails
    /// (and 521 when `--require-tls` wants `PROT P` first). Still plain: after its `150` the
    /// caller passes it through [`Session::secure_data`].
    fn open_data(&mut self) -> io::Result<Option<Conn>> {
        let timeout = self.ctx.config.data_timeout;
        if self.data.is_some() && !self.data_protection_ok()? {
            return Ok(None);
        }
        let opened = match self.data.take() {
            None => return self.reply(425, "Use PORT, EPRT, PASV or EPSV first.").map(|()| None),
            Some(DataPlan::Passive(listener)) => listener.accept_from(self.peer.ip(), timeout, &self.ctx.stop),
            Some(DataPlan::Active(target)) => data::connect(self.passive_ip(), target, timeout),
        };
        let stream = opened.and_then(|s| {
            s.set_write_timeout(Some(timeout))?;
            s.set_read_timeout(Some(timeout))?;
            Ok(s)
        });
        match stream {
            Ok(s) => Ok(Some(Conn::Plain(s))),
            Err(e) => {
                warn!("{}: no data connection: {e}", self.peer);
                self.reply(425, "Failed to establish the data connection.").map(|()| None)
            }
        }
    }
}
