//! Segmented downloads (`-g FILE --segments N`): one file over N control and data connections at
//! once, each fetching one byte range (REST start, RETR, read exactly the range, then ABOR),
//! written in place into the temporary `.NAME.ftpart` with positioned writes. Progress is kept
//! in a sidecar file `.NAME.ftpart.segs` so `--resume` continues every range; it is removed once
//! every range is complete. Verifying the whole file is left to the caller (`get`).
//!
//! The sidecar is a few lines of text, rewritten (write, then rename) at most once a second or
//! every 16 MiB a range moves, and only after the bytes it counts were written:
//! ```text
//! ftclient segments 1
//! size 268435456
//! 0 67108864 1048576
//! 67108864 134217728 0
//! ```
//! one line per range: its first byte, the byte after its last, and how many of its bytes are in
//! the file (counted from its start).

use crate::interrupt;
use crate::progress::Progress;
use crate::session::{Login, ServerError, Session};
use crate::transfer::{self, Mode, READ_BUF};
use anyhow::{bail, Context, Result};
use common::text::sanitize;
use common::Command;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Files at least this big are downloaded in segments without `--segments` (when the server
/// said their size and supports `REST STREAM`).
pub const AUTO_MIN: u64 = 64 << 20;

/// How many segments a large file gets without `--segments`.
pub const AUTO_SEGMENTS: usize = 4;

/// A connection left idle takes half of the largest range still running when that range has
/// at least this much left: less is not worth the round trips of a new transfer (NOOP after
/// the ABOR, EPSV, the data connection's handshake, REST and RETR) and its slow start.
const STEAL_MIN: u64 = 1 << 20;

/// The first line of a sidecar file: its format and version.
const MAGIC: &str = "ftclient segments 1";

/// The sidecar is rewritten when a range moved this much since the last write...
const SAVE_EVERY: u64 = 16 << 20;

/// ... or this long passed.
const SAVE_AFTER: Duration = Duration::from_secs(1);

/// One byte range of the file and how much of it is in the temporary file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The first byte.
    pub start: u64,
    /// The byte after the last.
    pub end: u64,
    /// How many bytes from `start` are written.
    pub done: u64,
}

impl Range {
    /// The first byte not yet written.
    fn next(&self) -> u64 {
        self.start + self.done
    }

    /// Whether every byte is written.
    fn complete(&self) -> bool {
        self.next() >= self.end
    }
}

/// What the sidecar file records: the file's size and its ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The remote file's size.
    pub size: u64,
    /// The ranges, in any order, together covering what this run fetches.
    pub ranges: Vec<Range>,
}

impl Record {
    /// The sidecar text (see the module documentation).
    pub fn format(&self) -> String {
        let mut text = format!("{MAGIC}\nsize {}\n", self.size);
        for r in &self.ranges {
            text.push_str(&format!("{} {} {}\n", r.start, r.end, r.done));
        }
        text
    }

    /// Reads sidecar text; `None` when it is not one (or is inconsistent).
    pub fn parse(text: &str) -> Option<Record> {
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let size = lines.next()?.strip_prefix("size ")?.parse().ok()?;
        let mut ranges = Vec::new();
        for line in lines {
            let numbers: Vec<u64> = line.split(' ').map(str::parse).collect::<Result<_, _>>().ok()?;
            let [start, end, done] = numbers[..] else { return None };
            if start > end || end > size || done > end - start {
                return None;
            }
            ranges.push(Range { start, end, done });
        }
        Some(Record { size, ranges })
    }

    /// Bytes not yet written.
    pub fn remaining(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.next()).sum()
    }
}

/// Splits `from..size` into `n` ranges of nearly equal length (the first ones one byte longer);
/// fewer when there are fewer bytes than `n`.
pub fn split(from: u64, size: u64, n: usize) -> Vec<Range> {
    let len = size.saturating_sub(from);
    let n = (n.max(1) as u64).min(len.max(1));
    let (each, extra) = (len / n, len % n);
    let mut start = from;
    (0..n)
        .map(|i| {
            let end = start + each + u64::from(i < extra);
            let range = Range { start, end, done: 0 };
            start = end;
            range
        })
        .collect()
}

/// How many connections a download should use: `asked` is `--segments` (`None`: not given),
/// `size` the remote size if known, `rest` whether the server advertised `REST STREAM`.
/// `None` means one ordinary stream. The rule without `--segments`: files of at least
/// [`AUTO_MIN`] bytes get [`AUTO_SEGMENTS`] when the server supports REST.
pub fn choose(asked: Option<u16>, size: Option<u64>, rest: bool) -> Option<usize> {
    let size = size?;
    match asked {
        Some(n) if n > 1 => Some(usize::from(n)),
        Some(_) => None,
        None if rest && size >= AUTO_MIN => Some(AUTO_SEGMENTS),
        None => None,
    }
}

/// The sidecar of the temporary file `part`: `.NAME.ftpart.segs`.
pub fn sidecar(part: &Path) -> PathBuf {
    let mut name = part.as_os_str().to_owned();
    name.push(".segs");
    PathBuf::from(name)
}

/// Whether an interrupted segmented download left a record next to `part`.
pub fn has_record(part: &Path) -> bool {
    std::fs::symlink_metadata(sidecar(part)).is_ok_and(|m| m.is_file())
}

/// Everything a segmented download needs from `get`.
#[derive(Debug)]
pub struct Job<'a> {
    /// The remote path.
    pub remote: &'a str,
    /// The remote size (SIZE).
    pub size: u64,
    /// How many connections.
    pub segments: usize,
    /// Continue from the sidecar (or, without one, after the bytes the temporary file holds).
    pub resume: bool,
    /// How to open the extra connections.
    pub login: &'a Login,
    /// Passive, or active from this data port (connection i on port + i).
    pub mode: Mode,
    /// `--fsync`: data on disk before each sidecar update and at the end.
    pub fsync: bool,
    /// Where the progress bar goes.
    pub progress: &'a Progress,
}

/// Downloads `job.remote` into `part` (already locked, `file` a handle to it) over
/// `job.segments` connections, `session` being one of them. Returns the bytes moved in this
/// run; on success every byte of the file is written and the sidecar is gone.
pub fn download(session: &mut Session, job: &Job<'_>, part: &Path, file: &File) -> Result<u64> {
    let side = sidecar(part);
    let record = plan(job, part, file, &side)?;
    let remaining = record.remaining();
    if remaining > 0 {
        crate::localfile::check_space(part.parent().unwrap_or(Path::new("")), remaining)?;
    }
    file.set_len(job.size).with_context(|| format!("cannot write {}", part.display()))?;
    let name = sanitize(job.remote);
    log::info!("downloading {name} over {} connections ({} ranges)", job.segments, record.ranges.len());
    let already = job.size - remaining;
    let shared = Shared {
        queue: Mutex::new(Queue {
            waiting: (0..record.ranges.len()).filter(|&i| !record.ranges[i].complete()).collect(),
            live: job.segments,
        }),
        changed: Condvar::new(),
        state: Mutex::new(State {
            record,
            saved_at: Instant::now(),
            moved_since_save: 0,
            bar: job.progress.file(Some(job.size), already, &name),
        }),
        stop: AtomicBool::new(false),
        side: &side,
        file,
        job,
    };
    shared.save()?;
    let errors: Vec<anyhow::Error> = std::thread::scope(|scope| {
        let shared = &shared;
        let mut main = Some(session);
        let workers: Vec<_> = (0..job.segments)
            .map(|index| {
                let mine = main.take();
                scope.spawn(move || shared.work(index, mine))
            })
            .collect();
        let joined = workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a download thread panicked"))));
        joined.filter_map(Result::err).collect()
    });
    let state = shared.state.into_inner().unwrap_or_else(|e| e.into_inner());
    state.bar.finish();
    let left = state.record.remaining();
    let moved = remaining - left;
    if left > 0 || !errors.is_empty() {
        let _ = save_record(&side, &state.record, file, job.fsync);
        // The first failure is the cause; the others are mostly "stopped" echoes of it.
        let cause = errors.into_iter().find(|e| e.downcast_ref::<Stopped>().is_none());
        let cause = cause.unwrap_or_else(|| anyhow::anyhow!("no connection was left to fetch the rest"));
        let have = job.size - left;
        return Err(cause.context(format!(
            "download of {name} stopped with {have} of {} bytes in {} ({} is kept; run the same command with \
             --resume to continue)",
            job.size,
            part.display(),
            part.display()
        )));
    }
    if job.fsync {
        file.sync_data().with_context(|| format!("cannot write {}", part.display()))?;
    }
    std::fs::remove_file(&side).with_context(|| format!("cannot remove {}", side.display()))?;
    Ok(moved)
}

/// The ranges this run fetches: from the sidecar when resuming one, else the rest of the file
/// (after what the temporary file holds when resuming a one-stream download) split in `n`.
fn plan(job: &Job<'_>, part: &Path, file: &File, side: &Path) -> Result<Record> {
    if job.resume {
        match std::fs::read_to_string(side) {
            Ok(text) => {
                let Some(old) = Record::parse(&text) else {
                    bail!("{} is not a segment record; delete it and {} to start over", side.display(), part.display());
                };
                if old.size != job.size {
                    bail!(
                        "{} was recorded for a file of {} bytes but the remote file has {}; delete it and {} to \
                         start over",
                        side.display(),
                        old.size,
                        job.size,
                        part.display()
                    );
                }
                // The first run made the file full size before its first byte: anything else
                // means the file is not the one the record describes.
                let held = file.metadata().with_context(|| format!("cannot read {}", part.display()))?.len();
                if held != old.size {
                    bail!(
                        "{} holds {held} bytes but its segment record {} expects {}; delete both to start over",
                        part.display(),
                        side.display(),
                        old.size
                    );
                }
                // What is left of each range becomes a range of its own.
                let mut ranges: Vec<Range> = old
                    .ranges
                    .iter()
                    .filter(|r| !r.complete())
                    .map(|r| Range { start: r.next(), end: r.end, done: 0 })
                    .collect();
                ranges.sort_by_key(|r| r.start);
                log::info!("resuming {} ranges ({} bytes left) from {}", ranges.len(), old.remaining(), side.display());
                return Ok(Record { size: job.size, ranges });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", side.display())),
        }
        let held = file.metadata().with_context(|| format!("cannot read {}", part.display()))?.len();
        if held > job.size {
            bail!(
                "{} holds {held} bytes but the remote file has only {}; delete it or run without --resume",
                part.display(),
                job.size
            );
        }
        return Ok(Record { size: job.size, ranges: split(held, job.size, job.segments) });
    }
    match std::fs::remove_file(side) {
        Ok(()) => log::info!("removed the old segment record {}", side.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", side.display())),
    }
    file.set_len(0).with_context(|| format!("cannot write {}", part.display()))?;
    Ok(Record { size: job.size, ranges: split(0, job.size, job.segments) })
}

/// Writes the sidecar: a new file renamed over the old, so it is never half written. With
/// `fsync` the data it counts is made durable first.
fn save_record(side: &Path, record: &Record, file: &File, fsync: bool) -> Result<()> {
    if fsync {
        file.sync_data().context("cannot sync the downloaded data")?;
    }
    let mut fresh = side.as_os_str().to_owned();
    fresh.push(".new");
    let fresh = PathBuf::from(fresh);
    std::fs::write(&fresh, record.format()).with_context(|| format!("cannot write {}", fresh.display()))?;
    std::fs::rename(&fresh, side).with_context(|| format!("cannot write {}", side.display()))
}

/// Another connection failed or Ctrl-C: this one stopped too.
#[derive(Debug, thiserror::Error)]
#[error("stopped because another connection failed")]
struct Stopped;

/// What the connections share while they run.
struct Shared<'a> {
    queue: Mutex<Queue>,
    /// Signalled when a range is handed back or a connection ends.
    changed: Condvar,
    state: Mutex<State>,
    /// Set on the first failure: the others stop at their next read.
    stop: AtomicBool,
    side: &'a Path,
    file: &'a File,
    job: &'a Job<'a>,
}

/// The ranges nobody has taken yet, and how many connections still run.
struct Queue {
    waiting: VecDeque<usize>,
    live: usize,
}

/// Counts a connection out of [`Queue::live`] however it ends.
struct Leaving<'s, 'a>(&'s Shared<'a>);

impl Drop for Leaving<'_, '_> {
    fn drop(&mut self) {
        self.0.queue().live -= 1;
        self.0.changed.notify_all();
    }
}

/// The record, when it was last saved, and the progress bar.
struct State {
    record: Record,
    saved_at: Instant,
    moved_since_save: u64,
    bar: crate::progress::FileBar,
}

impl Shared<'_> {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the sidecar now.
    fn save(&self) -> Result<()> {
        let mut state = self.state();
        save_record(self.side, &state.record, self.file, self.job.fsync)?;
        state.saved_at = Instant::now();
        state.moved_since_save = 0;
        Ok(())
    }

    /// Counts `n` more bytes of range `index` as written; saves the sidecar now and then.
    /// Returns where the range ends now: another connection may have taken its second half
    /// (bytes read past that end before it was moved are right, only not counted here).
    fn advance(&self, index: usize, n: u64) -> Result<u64> {
        let mut state = self.state();
        let range = &mut state.record.ranges[index];
        let counted = n.min(range.end - range.next());
        range.done += counted;
        let end = range.end;
        state.moved_since_save += counted;
        let have = self.job.size - state.record.remaining();
        state.bar.set(have);
        if state.moved_since_save >= SAVE_EVERY || state.saved_at.elapsed() >= SAVE_AFTER {
            save_record(self.side, &state.record, self.file, self.job.fsync)?;
            state.saved_at = Instant::now();
            state.moved_since_save = 0;
        }
        Ok(end)
    }

    /// Splits the range with the most bytes left (when at least [`STEAL_MIN`]): its connection
    /// stops half way, and the second half becomes a new range, returned, for an idle
    /// connection. Without it the download waits for its slowest connection, and on a lossy
    /// link one of them is always slow.
    fn steal(&self) -> Option<usize> {
        let mut state = self.state();
        let (victim, left) =
            state.record.ranges.iter().enumerate().map(|(i, r)| (i, r.end - r.next())).max_by_key(|&(_, left)| left)?;
        if left < STEAL_MIN {
            return None;
        }
        let range = state.record.ranges[victim];
        let middle = range.next() + left / 2;
        state.record.ranges[victim].end = middle;
        state.record.ranges.push(Range { start: middle, end: range.end, done: 0 });
        log::debug!("split {}..{} at {middle}", range.start, range.end);
        Some(state.record.ranges.len() - 1)
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next range for connection `index`: the main connection (`index` 0) prefers the one
    /// that ends the file (its transfer ends with a clean 226, so the connection stays usable
    /// for the check afterwards); the others take from the front. The main connection also
    /// waits while others run, since one that cannot log in hands its range back.
    fn take(&self, index: usize) -> Option<usize> {
        let mut queue = self.queue();
        loop {
            if index == 0 {
                let state = self.state();
                if let Some(at) = queue.waiting.iter().position(|&i| state.record.ranges[i].end == self.job.size) {
                    return queue.waiting.remove(at);
                }
            }
            if let Some(range) = queue.waiting.pop_front() {
                return Some(range);
            }
            if let Some(range) = self.steal() {
                return Some(range);
            }
            if index != 0 || queue.live <= 1 || self.stop.load(Ordering::SeqCst) || interrupt::check().is_err() {
                return None;
            }
            queue = self.changed.wait_timeout(queue, crate::session::TICK).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Connection `index`: fetches ranges until none is left. `main` is the caller's session
    /// (used only for the range that ends the file); the others log in once and keep their
    /// connection from range to range (a range that ended with ABOR is followed by a NOOP that
    /// brings the replies back in step: one round trip, where a new login costs five or more).
    fn work(&self, index: usize, mut main: Option<&mut Session>) -> Result<()> {
        let mode = match self.job.mode {
            Mode::Active(port) => Mode::Active(port.saturating_add(index as u16)),
            Mode::Passive => Mode::Passive,
        };
        let _leaving = Leaving(self);
        let mut own: Option<Session> = None;
        while let Some(range) = self.take(index) {
            let result = (|| {
                let ends_file = self.state().record.ranges[range].end == self.job.size;
                if let (Some(session), true) = (main.as_deref_mut(), ends_file) {
                    // Its second half may have been taken: then it ended with ABOR.
                    if !self.fetch(session, mode, range)? {
                        resync(session)?;
                    }
                    return Ok(true);
                }
                if own.is_none() {
                    let connected = self.job.login.connect().and_then(|mut session| {
                        session.binary()?;
                        Ok(session)
                    });
                    match (connected, main.as_deref_mut()) {
                        (Ok(session), _) => own = Some(session),
                        (Err(e), Some(session)) => {
                            // The main connection is the one that never goes away: when the
                            // server allows no other, it fetches the rest itself.
                            log::info!(
                                "no more connections ({}); continuing on the main one",
                                crate::report::render(&e)
                            );
                            if !self.fetch(session, mode, range)? {
                                resync(session)?;
                            }
                            return Ok(true);
                        }
                        (Err(e), None) => {
                            // Fewer connections than asked for (a server limit, say): the
                            // others take this range.
                            log::warn!(
                                "connection {} of the segmented download could not log in: {}",
                                index + 1,
                                crate::report::render(&e)
                            );
                            self.hand_back(range);
                            return Ok(false);
                        }
                    }
                }
                let Some(session) = own.as_mut() else { return Ok(false) };
                if !self.fetch(session, mode, range)? {
                    // Aborted: in step again before the next range, or closed when that fails.
                    if let Err(e) = resync(session) {
                        log::debug!("connection {} closed after ABOR: {}", index + 1, crate::report::render(&e));
                        own = None;
                    }
                }
                Ok(true)
            })();
            match result {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => {
                    self.stop.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            }
        }
        if let Some(session) = own {
            session.quit();
        }
        Ok(())
    }

    /// Puts range `index` back for another connection.
    fn hand_back(&self, index: usize) {
        self.queue().waiting.push_front(index);
        self.changed.notify_all();
    }

    /// REST, RETR, and exactly the bytes of range `index` into the file at their offsets. A
    /// range that ends the file ends with the server's 226; any other with ABOR once its last
    /// byte is here, which leaves the connection fit only to be closed or resynchronised.
    /// Returns whether it ended cleanly (226).
    fn fetch(&self, session: &mut Session, mode: Mode, index: usize) -> Result<bool> {
        let Range { mut end, .. } = self.state().record.ranges[index];
        let mut pos = self.state().record.ranges[index].next();
        let remote = self.job.remote;
        let pending = transfer::prepare(session, mode)?;
        let what = format!("cannot get {}", sanitize(remote));
        let retr = Command::Retr(remote.to_owned());
        let (_, mut stream) = if pos > 0 {
            // REST and RETR in one write: a round trip less per range. A refused REST (the
            // server then sends the whole file for the RETR) fails the range at once.
            session.send_pipelined(&[&Command::Rest(pos), &retr])?;
            let reply = session.read_reply()?;
            if reply.code != 350 {
                return Err(ServerError(reply))
                    .context("the server cannot start a transfer in the middle (REST refused); use --segments 1");
            }
            let reply = session.read_reply()?;
            let stream = transfer::established(session, pending, reply.clone(), &what)?;
            (reply, stream)
        } else {
            transfer::start(session, pending, &retr, &what)?
        };
        let mut buf = vec![0u8; usize::try_from(end - pos).map_or(READ_BUF, |n| n.clamp(1, READ_BUF))];
        let mut deadline = Instant::now() + session.timeout();
        while pos < end {
            let want = usize::try_from(end - pos).map_or(buf.len(), |n| n.min(buf.len()));
            let n = match self.read(session, &mut stream, &mut buf[..want], &mut deadline)? {
                0 => bail!("short transfer: the server ended the data connection at byte {pos}, before byte {end}"),
                n => n,
            };
            self.file.write_all_at(&buf[..n], pos).context("cannot write the data")?;
            pos += n as u64;
            end = self.advance(index, n as u64)?;
        }
        if end == self.job.size {
            // The server closes the data connection after the last byte: anything more is an error.
            let mut probe = [0u8; 1];
            if self.read(session, &mut stream, &mut probe, &mut deadline)? != 0 {
                return Err(transfer::TooMuchData(self.job.size).into());
            }
            drop(stream);
            transfer::finish(session)?;
        } else {
            // A reset tells the server at once that the rest is not wanted.
            transfer::abort(stream);
            abort_transfer(session);
            return Ok(false);
        }
        Ok(true)
    }

    /// One read from the data connection into `buf`, waiting through the read timeout's ticks
    /// until `deadline` (moved on by every byte), noticing Ctrl-C and the other connections'
    /// failures.
    fn read(
        &self,
        session: &Session,
        stream: &mut crate::conn::Conn,
        buf: &mut [u8],
        deadline: &mut Instant,
    ) -> Result<usize> {
        loop {
            interrupt::check()?;
            if self.stop.load(Ordering::SeqCst) {
                return Err(Stopped.into());
            }
            match stream.read(buf) {
                Ok(n) => {
                    *deadline = Instant::now() + session.timeout();
                    return Ok(n);
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if Instant::now() >= *deadline {
                        bail!("no data from the server within {} s", session.timeout().as_secs());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("the data connection failed"),
            }
        }
    }
}

/// Ends a RETR whose data connection was closed early: ABOR, and the connection is closed
/// next without waiting for the answer (servers answer 426 for the broken transfer and 225 or
/// 226, in either order, and a slow answer must not hold up the whole download). The range is
/// complete by now, so a failure here changes nothing.
fn abort_transfer(session: &mut Session) {
    if let Err(e) = session.send(&Command::Abor) {
        log::debug!("cannot send ABOR: {}", crate::report::render(&e));
    }
}

/// After [`abort_transfer`] on a connection that goes on: servers answer the RETR (226 or 426)
/// and the ABOR (225 or 226) in either order, or once for both, so a NOOP marks the end: its
/// 200 is the last reply that belongs to this range.
fn resync(session: &mut Session) -> Result<()> {
    session.send(&Command::Noop)?;
    for _ in 0..4 {
        let reply = session.read_reply()?;
        if reply.code == 200 {
            return Ok(());
        }
        log::debug!("after ABOR: {}", ServerError(reply));
    }
    bail!("the server did not answer NOOP after ABOR")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_into_nearly_equal_ranges() {
        let check = |from, size, n, expected: &[(u64, u64)]| {
            let got: Vec<(u64, u64)> = split(from, size, n).iter().map(|r| (r.start, r.end)).collect();
            assert_eq!(got, expected, "split({from}, {size}, {n})");
        };
        check(0, 10, 3, &[(0, 4), (4, 7), (7, 10)]);
        check(0, 10, 1, &[(0, 10)]);
        check(4, 10, 2, &[(4, 7), (7, 10)]);
        // Fewer bytes than connections: one byte each.
        check(0, 2, 8, &[(0, 1), (1, 2)]);
        check(0, 0, 4, &[(0, 0)]);
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let record = Record {
            size: 100,
            ranges: vec![Range { start: 0, end: 50, done: 7 }, Range { start: 50, end: 100, done: 50 }],
        };
        assert_eq!(Record::parse(&record.format()), Some(record.clone()));
        assert_eq!(record.remaining(), 43);
        for bad in [
            "",
            "ftclient segments 2\nsize 1\n",
            "ftclient segments 1\nsize x\n",
            "ftclient segments 1\nsize 10\n0 11 0\n",
            "ftclient segments 1\nsize 10\n5 4 0\n",
            "ftclient segments 1\nsize 10\n0 5 6\n",
            "ftclient segments 1\nsize 10\n0 5\n",
        ] {
            assert_eq!(Record::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn chooses_segments_by_the_documented_rule() {
        let big = Some(AUTO_MIN);
        assert_eq!(choose(None, big, true), Some(AUTO_SEGMENTS));
        assert_eq!(choose(None, big, false), None, "no REST STREAM advertised");
        assert_eq!(choose(None, Some(AUTO_MIN - 1), true), None);
        assert_eq!(choose(Some(1), big, true), None, "--segments 1 turns it off");
        assert_eq!(choose(Some(8), Some(10), false), Some(8), "asked for: tried even without the feature");
        assert_eq!(choose(Some(8), None, true), None, "no size, no ranges");
    }

    #[test]
    fn the_sidecar_sits_next_to_the_temporary_file() {
        assert_eq!(sidecar(Path::new("d/.a b.ftpart")), PathBuf::from("d/.a b.ftpart.segs"));
    }
}
