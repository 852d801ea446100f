//! Ctrl-C, SIGTERM and SIGHUP: they are blocked in every thread and taken by one thread that
//! waits for them (`sigwait`), which only raises a flag; every blocking wait in the client wakes
//! up often enough (see `session::TICK`) to call [`check`] and unwind with an error, so a
//! download in progress ends through the normal error path, keeps its resumable `.NAME.ftpart`
//! and never leaves a file under its final name. `main` then exits with 128 + the signal's
//! number (130 for Ctrl-C, 143 for SIGTERM), as shells and curl do. A second signal ends the
//! process at once (the temporary file stays, resumable).
//!
//! Waiting for the signals on a thread, rather than with a handler, tells which signal came
//! and needs no `unsafe` (the workspace forbids it).

use nix::sys::signal::{SigSet, Signal};
use std::sync::atomic::{AtomicI32, Ordering};

/// The number of the first signal received; 0 while none came.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The signals that stop the client.
const STOPPING: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// Blocks the stopping signals in this thread (and so in every thread it starts afterwards:
/// call it first, from `main`'s thread) and starts the thread that waits for them.
pub fn install() -> anyhow::Result<()> {
    let set = SigSet::from_iter(STOPPING);
    set.thread_block().map_err(|e| anyhow::anyhow!("cannot block the stopping signals: {}", e.desc()))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let Ok(signal) = set.wait() else { continue };
            let number = signal as i32;
            if RECEIVED.compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                // The second one: the user does not want to wait for the cleanup.
                std::process::exit(128 + RECEIVED.load(Ordering::SeqCst));
            }
        })
        .map_err(|e| anyhow::anyhow!("cannot start the signal thread: {}", crate::report::io_reason(&e)))?;
    Ok(())
}

/// Fails with "interrupted" once a stopping signal came.
pub fn check() -> anyhow::Result<()> {
    if RECEIVED.load(Ordering::SeqCst) != 0 {
        anyhow::bail!("interrupted");
    }
    Ok(())
}

/// The exit status for a run that a signal stopped: 128 + its number (130 for Ctrl-C, 143 for
/// SIGTERM, 129 for SIGHUP); `None` when no signal came.
pub fn exit_status() -> Option<u8> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        n => u8::try_from(128 + n).ok(),
    }
}
