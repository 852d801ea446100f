//! A stand-alone TFTP server on the `ftserver::tftp` module, for tests that need the server in
//! another process (inside a network namespace) and for benchmarks:
//! `tftpd ROOT [ADDR:]PORT [--writable] [--overwrite] [--timeout SECS] [--retries N]`.
//! It prints `port N` on stdout once it listens and serves until stdin is closed.

use std::io::{BufRead, Write};
use std::net::UdpSocket;
use std::time::Duration;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run() {
        eprintln!("tftpd: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: tftpd ROOT [ADDR:]PORT [--writable] [--overwrite] [--timeout SECS] [--retries N]";
    let root = args.next().ok_or_else(|| anyhow::anyhow!("{usage}"))?;
    let addr = args.next().ok_or_else(|| anyhow::anyhow!("{usage}"))?;
    let addr = if addr.contains(':') { addr } else { format!("0.0.0.0:{addr}") };
    let mut config = ftserver::tftp::TftpConfig { root: root.into(), ..Default::default() };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--writable" => config.writable = true,
            "--overwrite" => config.overwrite = true,
            "--timeout" => config.timeout = Duration::from_secs_f64(number(args.next(), "--timeout")?),
            "--retries" => config.retries = number(args.next(), "--retries")? as u32,
            other => anyhow::bail!("unknown argument {other:?}, {usage}"),
        }
    }
    let socket = UdpSocket::bind(&addr).map_err(|e| anyhow::anyhow!("cannot bind {addr}: {e}"))?;
    let server = ftserver::tftp::spawn(socket, config)?;
    println!("port {}", server.local_addr().port());
    std::io::stdout().flush()?;
    // Serve until the parent closes our stdin (or exits).
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    server.shutdown();
    Ok(())
}

fn number(value: Option<String>, name: &str) -> anyhow::Result<f64> {
    let value = value.ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?;
    value.parse().map_err(|_| anyhow::anyhow!("bad {name} value {value:?}, expected a number"))
}
