//! Network namespaces this process creates, configures with `ip` and removes again, and running
//! code inside one of them (on a thread of its own, so the rest of the process stays put).

use std::fs::File;
use std::process::Command;

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};

/// A network namespace created by this process and deleted when the value is dropped (also
/// when a test fails: the guard runs during unwinding).
#[derive(Debug)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates the namespace `name` (`ip netns add`) with its loopback up; fails if it exists.
    pub fn create(name: &str) -> Result<Self> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            bail!("namespace name '{name}' is not 1-64 letters, digits, '-' or '_'");
        }
        if std::path::Path::new("/run/netns").join(name).exists() {
            bail!("namespace '{name}' already exists (left by an earlier run? ip netns del {name})");
        }
        ip(&["netns", "add", name])?;
        let ns = Namespace { name: name.to_owned() };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns exec` takes it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...` and fails with its message if it does.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns what it returns.
    /// Sockets and devices opened there belong to the namespace for their whole life, whichever
    /// thread later uses them.
    pub fn run_inside<R: Send>(&self, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
        run_in_namespace(&self.name, f)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Err(err) = ip(&["netns", "del", &self.name]) {
            eprintln!("linkem: cannot remove namespace {}: {err:#}", self.name);
        }
    }
}

/// Runs `f` on a new thread that has entered the existing network namespace `name`.
pub fn run_in_namespace<R: Send>(name: &str, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let path = format!("/run/netns/{name}");
                let file = File::open(&path).with_context(|| format!("cannot open {path}"))?;
                setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("cannot enter namespace {name}"))?;
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `ip ARGS...`; its error output becomes the error.
pub fn ip(args: &[&str]) -> Result<()> {
    let output = Command::new("ip").args(args).output().context("cannot run ip (apt install iproute2)")?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        bail!("ip {} failed: {}", args.join(" "), said.trim());
    }
    Ok(())
}
