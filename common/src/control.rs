//! The control connection's buffer: one type that owns a byte stream and reads commands or
//! replies from it and writes them to it. It works over any `Read + Write`, so tests drive it
//! with in-memory buffers and the binaries with a `TcpStream`.

use crate::command::{self, Command, ParseError};
use crate::line::{find_line, Line};
use crate::reply::{Reply, ReplyError};
use std::io::{self, Read, Write};

/// Why reading from the control connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket failed (including read timeouts: `WouldBlock`/`TimedOut`).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The peer closed the connection in the middle of a line or reply.
    #[error("connection closed in the middle of a line")]
    UnexpectedEof,
    /// The peer closed the connection before a reply (clients see this when a server drops them).
    #[error("connection closed by the server")]
    Closed,
    /// A line over the limit. For commands this is recoverable: the rest of the line is skipped.
    #[error("line longer than {0} bytes")]
    LineTooLong(usize),
    /// A reply that is not FTP.
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

impl ControlError {
    /// Is this a read timeout?
    pub fn is_timeout(&self) -> bool {
        matches!(self, ControlError::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

/// A control connection: the stream, a read buffer, and the line limit.
#[derive(Debug)]
pub struct Control<S> {
    stream: S,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    start: usize,
    max_line: usize,
    /// Skipping the rest of an over-long line.
    discarding: bool,
}

const READ_CHUNK: usize = 4096;

impl<S: Read + Write> Control<S> {
    /// Wraps a stream. `max_line` is the longest line accepted (see
    /// [`crate::MAX_COMMAND_LINE`] and [`crate::MAX_REPLY_LINE`]).
    pub fn new(stream: S, max_line: usize) -> Self {
        Control { stream, buf: Vec::with_capacity(READ_CHUNK), start: 0, max_line, discarding: false }
    }

    /// The stream, for socket options and addresses.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Are there buffered bytes not yet returned (a pipelining client)?
    pub fn has_buffered(&self) -> bool {
        self.start < self.buf.len()
    }

    /// The bytes received but not yet returned as lines (what a client sent ahead).
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Reads once more into the buffer, unless `limit` bytes are pending already; returns false
    /// on EOF. On a non-blocking stream this is how a server looks at what a client sent during
    /// a transfer without waiting for it (and, on an encrypted stream, at the decrypted bytes);
    /// the lines are still returned by [`Control::read_line`] in order.
    pub fn fill_more(&mut self, limit: usize) -> io::Result<bool> {
        if self.pending().len() >= limit {
            return Ok(true);
        }
        self.fill()
    }

    /// Reads more bytes into the buffer. Returns false on EOF.
    fn fill(&mut self) -> io::Result<bool> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let n = loop {
            match self.stream.read(&mut self.buf[len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(len);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(len + n);
        Ok(n > 0)
    }

    /// Reads one line without its terminator. `Ok(None)` is a clean EOF between lines.
    pub fn read_line(&mut self) -> Result<Option<Vec<u8>>, ControlError> {
        loop {
            let pending = &self.buf[self.start..];
            if self.discarding {
                if let Some(lf) = pending.iter().position(|&b| b == b'\n') {
                    self.start += lf + 1;
                    self.discarding = false;
                    return Err(ControlError::LineTooLong(self.max_line));
                }
                self.start = self.buf.len();
            } else {
                match find_line(pending, self.max_line) {
                    Line::Complete { line, consumed } => {
                        let line = line.to_vec();
                        self.start += consumed;
                        return Ok(Some(line));
                    }
                    Line::TooLong => {
                        self.discarding = true;
                        continue;
                    }
                    Line::Incomplete => {}
                }
            }
            if !self.fill()? {
                return if self.discarding || self.start < self.buf.len() {
                    Err(ControlError::UnexpectedEof)
                } else {
                    Ok(None)
                };
            }
        }
    }

    /// Reads and parses one command. `Ok(None)` is a clean EOF; `Ok(Some(Err(_)))` is a line
    /// that did not parse (answer it and go on); an over-long line is
    /// `Err(ControlError::LineTooLong)` and is also safe to answer and go on from.
    pub fn read_command(&mut self) -> Result<Option<Result<Command, ParseError>>, ControlError> {
        Ok(self.read_line()?.map(|line| command::parse(&line)))
    }

    /// Reads one whole reply, multi-line or not. EOF before it is [`ControlError::Closed`].
    pub fn read_reply(&mut self) -> Result<Reply, ControlError> {
        let mut builder = crate::reply::ReplyBuilder::default();
        let mut started = false;
        loop {
            match self.read_line() {
                Ok(Some(line)) => {
                    started = true;
                    if let Some(reply) = builder.push_line(&line)? {
                        return Ok(reply);
                    }
                }
                Ok(None) if started => return Err(ControlError::UnexpectedEof),
                Ok(None) => return Err(ControlError::Closed),
                Err(ControlError::UnexpectedEof) if !started => return Err(ControlError::Closed),
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes a reply and flushes.
    pub fn write_reply(&mut self, reply: &Reply) -> io::Result<()> {
        self.stream.write_all(&reply.to_bytes())?;
        self.stream.flush()
    }

    /// Writes a single-line reply and flushes.
    pub fn reply(&mut self, code: u16, text: impl Into<String>) -> io::Result<()> {
        self.write_reply(&Reply::new(code, text))
    }

    /// Writes a command and flushes.
    pub fn write_command(&mut self, cmd: &Command) -> io::Result<()> {
        self.stream.write_all(&cmd.to_line())?;
        self.stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// An in-memory duplex stream: reads from `input`, records writes.
    struct Duplex {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
        /// Deliver input at most this many bytes per read, to exercise partial reads.
        chunk: usize,
    }

    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.chunk);
            self.input.read(&mut buf[..n])
        }
    }

    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn control(input: &[u8], chunk: usize, max_line: usize) -> Control<Duplex> {
        Control::new(Duplex { input: Cursor::new(input.to_vec()), output: Vec::new(), chunk }, max_line)
    }

    #[test]
    fn reads_pipelined_commands_in_any_chunking() {
        for chunk in [1, 3, 4096] {
            let mut c = control(b"USER a\r\nPASS b\nQUIT\r\n", chunk, 64);
            assert_eq!(c.read_command().unwrap(), Some(Ok(Command::User("a".into()))));
            assert_eq!(c.read_command().unwrap(), Some(Ok(Command::Pass("b".into()))));
            assert_eq!(c.read_command().unwrap(), Some(Ok(Command::Quit)));
            assert_eq!(c.read_command().unwrap(), None);
        }
    }

    #[test]
    fn skips_an_over_long_line_and_recovers() {
        let mut input = b"RETR ".to_vec();
        input.extend(std::iter::repeat(b'x').take(10_000));
        input.extend(b"\r\nNOOP\r\n");
        for chunk in [7, 4096] {
            let mut c = control(&input, chunk, 100);
            assert!(matches!(c.read_command(), Err(ControlError::LineTooLong(100))));
            assert_eq!(c.read_command().unwrap(), Some(Ok(Command::Noop)));
            assert_eq!(c.read_command().unwrap(), None);
        }
    }

    #[test]
    fn bytes_read_ahead_are_seen_and_still_returned_in_order() {
        let mut c = control(b"NOOP\r\nABOR\r\n", 6, 64);
        assert!(c.fill_more(64).unwrap());
        assert_eq!(c.pending(), b"NOOP\r\n");
        assert!(c.fill_more(64).unwrap());
        assert_eq!(c.pending(), b"NOOP\r\nABOR\r\n");
        // Enough pending: nothing more is read.
        assert!(c.fill_more(4).unwrap());
        assert_eq!(c.read_command().unwrap(), Some(Ok(Command::Noop)));
        assert_eq!(c.read_command().unwrap(), Some(Ok(Command::Abor)));
        assert!(!c.fill_more(64).unwrap());
        assert_eq!(c.read_command().unwrap(), None);
    }

    #[test]
    fn eof_mid_line_is_an_error() {
        let mut c = control(b"USER a", 4096, 64);
        assert!(matches!(c.read_command(), Err(ControlError::UnexpectedEof)));
    }

    #[test]
    fn reads_replies() {
        for chunk in [1, 4096] {
            let mut c = control(b"220-hello\r\n220 ready\r\n331 pass\r\n", chunk, 8192);
            assert_eq!(c.read_reply().unwrap(), Reply::multi(220, vec!["hello".into(), "ready".into()]));
            assert_eq!(c.read_reply().unwrap(), Reply::new(331, "pass"));
            assert!(matches!(c.read_reply(), Err(ControlError::Closed)));
        }
        let mut c = control(b"220-hello\r\n", 4096, 8192);
        assert!(matches!(c.read_reply(), Err(ControlError::UnexpectedEof)));
        let mut c = control(b"HTTP/1.1 400 Bad\r\n", 4096, 8192);
        assert!(matches!(c.read_reply(), Err(ControlError::Reply(ReplyError::Malformed(_)))));
    }

    #[test]
    fn writes_commands_and_replies() {
        let mut c = control(b"", 4096, 64);
        c.write_command(&Command::Retr("a b".into())).unwrap();
        c.reply(226, "done").unwrap();
        assert_eq!(c.get_ref().output, b"RETR a b\r\n226 done\r\n");
    }
}
