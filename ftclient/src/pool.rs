//! `--parallel N`: N worker threads, each with its own control connection, take file transfers
//! from one shared queue. A worker whose connection breaks logs in again; the run goes on with
//! the others when one cannot. Each transfer follows the single-file rules (`get`, `put`).

use crate::get::{self, GetOptions};
use crate::interrupt;
use crate::progress::Progress;
use crate::put::{self, PutOptions};
use crate::session::{Login, Session};
use crate::transfer::{DataPortError, Mode};
use anyhow::Result;
use common::Command;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// One file to transfer.
#[derive(Debug)]
pub struct Job {
    /// The file's path inside the tree, for messages.
    pub label: String,
    /// The transfer.
    pub kind: JobKind,
}

/// Which way a job goes.
#[derive(Debug)]
pub enum JobKind {
    /// A download.
    Get(Box<GetOptions>),
    /// An upload.
    Put(Box<PutOptions>),
}

/// What a batch of transfers did.
#[derive(Debug, Default)]
pub struct Report {
    /// Files transferred (or already complete).
    pub files: usize,
    /// Bytes moved in this run.
    pub moved: u64,
    /// Bytes of the transferred files in total (including resumed bytes).
    pub total: u64,
    /// Files saved as NAME.1, NAME.2, ... because the name existed.
    pub renamed: usize,
    /// The files that failed, with the reason.
    pub failed: Vec<(String, String)>,
    /// Files never tried (Ctrl-C, or no connection left), and why.
    pub untried: (usize, String),
    /// Wall time.
    pub elapsed: Duration,
}

struct Shared<'a> {
    queue: Mutex<Queue>,
    /// Signalled when a job is handed back or finished.
    changed: Condvar,
    /// Workers still taking jobs.
    live: AtomicUsize,
    report: Mutex<Report>,
    login: &'a Login,
    progress: &'a Progress,
    files: usize,
}

/// The jobs not started yet, and how many are running: a worker that finds the queue empty
/// waits while others run, since one of them may hand its job back (its data port is taken).
struct Queue {
    waiting: VecDeque<Job>,
    running: usize,
}

/// A wait after which a connection is checked (NOOP) before it is used again.
const LONG_WAIT: Duration = Duration::from_secs(30);

impl<'a> Shared<'a> {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next job, once one is waiting; `None` when none is left and none is running (or
    /// after Ctrl-C). The job counts as running while the [`Running`] lives.
    fn take(&self) -> Option<(Job, Running<'_, 'a>)> {
        let mut queue = self.queue();
        loop {
            // Ctrl-C is looked at every session::TICK while waiting.
            if interrupt::check().is_err() {
                return None;
            }
            if let Some(job) = queue.waiting.pop_front() {
                queue.running += 1;
                return Some((job, Running(self)));
            }
            if queue.running == 0 {
                return None;
            }
            queue = self.changed.wait_timeout(queue, crate::session::TICK).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// A job taken with [`Shared::take`] goes back to the front of the queue for another
    /// worker (its [`Running`] is dropped right after).
    fn hand_back(&self, job: Job) {
        self.queue().waiting.push_front(job);
    }
}

/// A job being run: dropping it (the job finished, failed or was handed back, or the worker
/// panicked) lets the workers waiting in [`Shared::take`] look again.
struct Running<'s, 'a>(&'s Shared<'a>);

impl Drop for Running<'_, '_> {
    fn drop(&mut self) {
        self.0.queue().running -= 1;
        self.0.changed.notify_all();
    }
}

/// Runs `jobs` on up to `parallel` connections: `first` (already logged in) and `parallel - 1`
/// more. In active mode connection i listens on data port `port + i`.
pub fn run(first: Session, login: &Login, mode: Mode, parallel: usize, jobs: Vec<Job>, progress: &Progress) -> Report {
    let started = Instant::now();
    let files = jobs.len();
    let workers = parallel.clamp(1, files.max(1));
    let shared = Shared {
        queue: Mutex::new(Queue { waiting: jobs.into(), running: 0 }),
        changed: Condvar::new(),
        live: AtomicUsize::new(workers),
        report: Mutex::default(),
        login,
        progress,
        files,
    };
    std::thread::scope(|scope| {
        let shared = &shared;
        let mut first = Some(first);
        for index in 0..workers {
            let session = first.take();
            let mode = match mode {
                Mode::Active(port) => Mode::Active(port + index as u16),
                Mode::Passive => Mode::Passive,
            };
            scope.spawn(move || worker(index, session, mode, shared));
        }
    });
    let mut report = shared.report.into_inner().unwrap_or_else(|e| e.into_inner());
    // Whatever is left was never tried: every connection failed, or Ctrl-C.
    let left = shared.queue.into_inner().unwrap_or_else(|e| e.into_inner()).waiting.len();
    if left > 0 {
        let reason = match interrupt::check() {
            Err(e) => e.to_string(),
            Ok(()) => "no connection to the server was left".to_owned(),
        };
        report.untried = (left, reason);
    }
    report.elapsed = started.elapsed();
    report
}

/// Logs in, asks FEAT and for block mode (one data connection for all of this connection's
/// files, when the server has it).
fn connect(login: &Login) -> Result<Session> {
    let mut session = login.connect()?;
    session.feat()?;
    session.try_block_mode()?;
    Ok(session)
}

fn worker(index: usize, session: Option<Session>, mode: Mode, shared: &Shared<'_>) {
    if !work(index, session, mode, shared) {
        shared.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Takes jobs until the queue is empty; `true` when it left early and already counted itself
/// out of [`Shared::live`].
fn work(index: usize, session: Option<Session>, mode: Mode, shared: &Shared<'_>) -> bool {
    let mut session = match session.map_or_else(|| connect(shared.login), Ok) {
        Ok(session) => session,
        Err(e) => {
            log::warn!("connection {} of the transfer could not log in: {}", index + 1, crate::report::render(&e));
            return false;
        }
    };
    loop {
        if interrupt::check().is_err() {
            break;
        }
        let waiting = Instant::now();
        let Some((job, running)) = shared.take() else { break };
        // A connection that waited long for a handed-back job may have been closed by the
        // server's idle timeout meanwhile.
        if waiting.elapsed() > LONG_WAIT && !alive(&mut session) {
            match connect(shared.login) {
                Ok(fresh) => session = fresh,
                Err(e) => {
                    log::warn!(
                        "connection {} of the transfer is lost and cannot log in again: {}",
                        index + 1,
                        crate::report::render(&e)
                    );
                    shared.hand_back(job);
                    drop(running);
                    return false;
                }
            }
        }
        let outcome = transfer_one(&mut session, mode, &job);
        // This connection's data port is unusable (another program has it): leave its jobs to
        // the other connections rather than failing one file after another, unless none is left.
        if let Err(e) = &outcome {
            if let Some(port) = e.downcast_ref::<DataPortError>() {
                let leave = shared.live.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n > 1).then(|| n - 1));
                if leave.is_ok() {
                    log::warn!("connection {} of the transfer stops: {port}", index + 1);
                    shared.hand_back(job);
                    drop(running);
                    session.quit();
                    return true;
                }
            }
        }
        let failed = outcome.is_err();
        {
            let mut report = shared.report.lock().unwrap_or_else(|e| e.into_inner());
            match outcome {
                Ok((moved, total, renamed)) => {
                    report.files += 1;
                    report.moved += moved;
                    report.total += total;
                    report.renamed += usize::from(renamed);
                }
                Err(e) => {
                    log::info!("{} failed: {}", job.label, crate::report::render(&e));
                    report.failed.push((job.label, crate::report::render(&e)));
                }
            }
            shared.progress.file_done(report.files + report.failed.len(), shared.files);
        }
        drop(running);
        if failed && interrupt::check().is_err() {
            return false;
        }
        if failed && !alive(&mut session) {
            match connect(shared.login) {
                Ok(fresh) => session = fresh,
                Err(e) => {
                    log::warn!(
                        "connection {} of the transfer is lost and cannot log in again: {}",
                        index + 1,
                        crate::report::render(&e)
                    );
                    return false;
                }
            }
        }
    }
    session.quit();
    false
}

/// Runs one job: (bytes moved, file size, saved under a numbered name).
fn transfer_one(session: &mut Session, mode: Mode, job: &Job) -> Result<(u64, u64, bool)> {
    match &job.kind {
        JobKind::Get(opts) => get::run(session, mode, opts).map(|d| (d.moved, d.total, d.instead_of.is_some())),
        JobKind::Put(opts) => put::run(session, mode, opts).map(|s| (s.moved, s.total, false)),
    }
}

/// Does the control connection still work after a failure? A transfer that failed on our side
/// may leave its final reply (226, 426, 451) unread: NOOP's 200 is awaited past a few of those
/// so the next command pairs with its own reply.
pub fn alive(session: &mut Session) -> bool {
    if session.send(&Command::Noop).is_err() {
        return false;
    }
    for _ in 0..4 {
        match session.read_reply() {
            Ok(reply) if reply.code == 200 => return true,
            Ok(reply) => log::debug!("discarded a late reply {}", reply.code),
            Err(_) => return false,
        }
    }
    false
}
