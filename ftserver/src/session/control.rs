//! The control connection as a session reads it, and what a session learns from it while a
//! transfer or a long job runs: an ABOR waiting, the client saying something, or the client
//! gone. Those looks work on what the control reader has buffered plus a non-blocking read
//! ahead through the connection ([`Conn`]), never on the raw socket's bytes, so they keep
//! working when the bytes on the wire are encrypted. Only a hang-up is seen on the socket
//! itself (a FIN is not part of the byte stream).

use crate::conn::Conn;
use common::line::{find_line, Line};
use common::{Command, Control};
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// The control connection as the session reads it: every read ends at the deadline of the
/// command line being read. A read timeout alone restarts with every byte, so a client
/// dribbling one byte at a time (never a whole line) would hold its connection, and a slot
/// under `--max-clients`/`--max-per-ip`, for ever; vsftpd bounds each command the same way.
pub(crate) struct ControlSocket {
    pub(crate) conn: Conn,
    /// When the line being read must be complete (`--idle-timeout` after the wait began).
    pub(crate) deadline: Instant,
    /// Reading ahead during a transfer: return what is there without waiting.
    nonblocking: bool,
}

impl ControlSocket {
    /// Wraps a connection; the deadline is set before each command is read.
    pub(crate) fn new(conn: Conn) -> ControlSocket {
        ControlSocket { conn, deadline: Instant::now(), nonblocking: false }
    }
}

impl Read for ControlSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.nonblocking {
            return self.conn.read(buf);
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no complete command within the idle timeout"));
        }
        self.conn.socket().set_read_timeout(Some(left))?;
        self.conn.read(buf)
    }
}

impl Write for ControlSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.conn.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.conn.flush()
    }
}

/// The control connection with its reader.
pub(crate) type ControlConn = Control<ControlSocket>;

/// How much a client may send ahead during a transfer before the server stops reading it (the
/// rest waits in the socket until the transfer ends).
const READ_AHEAD: usize = 2 * common::MAX_COMMAND_LINE;

/// Reads whatever the client has sent, without waiting, into the control reader's buffer (up
/// to [`READ_AHEAD`] bytes pending). Returns false when the client closed its side or the
/// connection failed.
fn read_ahead(ctrl: &mut ControlConn) -> bool {
    if ctrl.get_ref().conn.socket().set_nonblocking(true).is_err() {
        return true;
    }
    ctrl.get_mut().nonblocking = true;
    let alive = loop {
        let before = ctrl.pending().len();
        match ctrl.fill_more(READ_AHEAD) {
            Ok(true) if ctrl.pending().len() > before => {}
            Ok(true) => break true,
            Ok(false) => break false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break false,
        }
    };
    ctrl.get_mut().nonblocking = false;
    alive && ctrl.get_ref().conn.socket().set_nonblocking(false).is_ok()
}

/// Has the client sent something beyond the first `before` pending bytes, or hung up? Used to
/// abort a long job (HASH) when the client moves on.
pub(super) fn client_spoke(ctrl: &mut ControlConn, before: usize) -> bool {
    !read_ahead(ctrl) || ctrl.pending().len() > before
}

/// Is an ABOR waiting on the control connection? The command stays buffered, to be read and
/// answered normally afterwards. Other commands do not stop a transfer (RFC 959 allows e.g.
/// STAT meanwhile); they wait their turn, and an ABOR behind them (a client that sent NOOP
/// during the download, then ABOR) is still seen.
pub(super) fn abor_pending(ctrl: &mut ControlConn) -> bool {
    read_ahead(ctrl);
    let mut pending = ctrl.pending();
    // An urgent ABOR comes as `IAC IP IAC DM ABOR`, and a read stops at the urgent mark, so
    // the last line may not be complete yet: a Telnet interrupt (IP) or "ABOR" starting it is
    // enough. Other Telnet commands (option negotiation) say nothing.
    let starts_abor = |line: &[u8]| {
        let text = common::telnet::strip(line);
        text.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"ABOR"))
            || (text.is_empty() && line.windows(2).any(|w| w == [0xff, 0xf4]))
    };
    loop {
        match find_line(pending, READ_AHEAD) {
            Line::Complete { line, consumed } => {
                if common::command::parse(line) == Ok(Command::Abor) {
                    return true;
                }
                pending = &pending[consumed..];
            }
            _ => return starts_abor(pending),
        }
    }
}

/// What the control connection says once an upload's data connection reached end-of-file.
pub(super) enum ControlState {
    /// Still connected and quiet (waiting for our reply) or sending other commands.
    Present,
    /// Closed or reset: the client vanished (a killed client closes both connections, and the
    /// data connection's end-of-file then proves nothing about the file being complete).
    Gone,
    /// An ABOR is waiting.
    Aborting,
}

/// Watches the control connection for up to `settle` for the client shutting down its side
/// (POLLRDHUP), then looks at what it sent.
///
/// Why wait at all: when a client process is killed, the kernel closes its sockets one after
/// the other (the data connection, opened last, first), and the dying process can be preempted
/// in between: the control connection's FIN was measured arriving up to 4 ms (one scheduler
/// tick) after the data connection's on a loaded 2-CPU machine. A live client, in contrast,
/// does not close its control connection until it has our reply. So a live client costs
/// `settle` per upload, and a killed one is recognised unless its machine stalls it for longer
/// than `settle`.
///
/// Commands the client sent during the upload (a NOOP to keep a NAT alive) prove nothing: a
/// client killed after sending them closes the connection behind them. Only a lone complete
/// `QUIT` before the close says the client meant to end after this transfer.
pub(super) fn control_state(ctrl: &mut ControlConn, settle: Duration) -> ControlState {
    if abor_pending(ctrl) {
        return ControlState::Aborting;
    }
    if !peer_hung_up(ctrl.get_ref().conn.socket(), settle) {
        return ControlState::Present;
    }
    read_ahead(ctrl);
    if only_quit(ctrl.pending()) {
        ControlState::Present
    } else if abor_pending(ctrl) {
        ControlState::Aborting
    } else {
        ControlState::Gone
    }
}

// `TCP_INFO` (tcp(7)), which neither std nor socket2 offers; nix's macro defines it.
use nix::{getsockopt_impl, libc, sockopt_impl};
sockopt_impl!(TcpInfo, GetOnly, libc::SOL_TCP, libc::TCP_INFO, libc::tcp_info);

/// How long to watch the control connection after an upload nobody announced the size of:
/// `least`, or twice the connection's retransmission timeout when that is longer (a lost FIN
/// comes again one timeout later; over a long path the timeout is long too), at most 10 s.
pub(super) fn unannounced_settle(ctrl: &ControlConn, least: Duration) -> Duration {
    let rto = nix::sys::socket::getsockopt(ctrl.get_ref().conn.socket(), TcpInfo)
        .map_or(Duration::ZERO, |info| Duration::from_micros(u64::from(info.tcpi_rto)));
    (2 * rto).clamp(least, least.max(Duration::from_secs(10)))
}

/// Waits up to `wait` for the peer to shut down its side of `control` (or for the connection
/// to fail). Bytes waiting to be read do not end the wait.
fn peer_hung_up(control: &std::net::TcpStream, wait: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    // nix names no POLLRDHUP ("the peer shut down writing", Linux), so it is built from libc's
    // value, and `revents` is `None` exactly when the kernel reports it (a flag nix does not
    // know); POLLHUP and POLLERR are reported without being asked for.
    let rdhup = PollFlags::from_bits_retain(nix::libc::POLLRDHUP);
    let deadline = crate::config::deadline_after(wait);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(control.as_fd(), rdhup)];
        match poll(&mut fds, PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)) {
            Ok(0) => return false,
            Ok(_) => return fds[0].revents().map_or(true, |r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
            Err(nix::errno::Errno::EINTR) if !left.is_zero() => {}
            // A socket poll(2) cannot watch: say nothing about the client.
            Err(_) => return false,
        }
    }
}

/// Are `pending` bytes exactly one complete `QUIT` command line?
fn only_quit(pending: &[u8]) -> bool {
    match find_line(pending, pending.len()) {
        Line::Complete { line, consumed } => {
            consumed == pending.len() && common::command::parse(line) == Ok(Command::Quit)
        }
        _ => false,
    }
}
