//! Ctrl-C: the handler only raises a flag; every blocking wait in the client wakes up often
//! enough (see `session::TICK`) to call [`check`] and unwind with an error, so a download in
//! progress ends through the normal error path and never leaves a file under its final name.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C (and SIGTERM) handler.
pub fn install() -> anyhow::Result<()> {
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))
}

/// Fails with "interrupted" once Ctrl-C was pressed.
pub fn check() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        anyhow::bail!("interrupted");
    }
    Ok(())
}
