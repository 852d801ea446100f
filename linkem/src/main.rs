//! The linkem binary: parse the arguments, start the link, print the ready line, forward until
//! SIGINT or SIGTERM, then remove the namespaces and print each direction's counters.

mod cli;

use std::io::Write;
use std::process::ExitCode;
use std::sync::mpsc;

use anyhow::{Context, Result};
use clap::Parser;
use linkem::{Link, Stats, ADDR_A, ADDR_B};

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("linkem: {}", without_os_error_codes(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run(args: &cli::Args) -> Result<()> {
    // The handler is in place before anything is created, so a signal during the set-up still
    // ends in the clean-up below.
    let (stop, stopped) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop.send(());
    })
    .context("cannot handle SIGINT and SIGTERM")?;
    let settings = args.settings();
    let link = Link::start(&args.ns_a, &args.ns_b, &settings)?;
    eprintln!("linkem: a->b {}", settings.a_to_b);
    eprintln!("linkem: b->a {}", settings.b_to_a);
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {} {ADDR_A} {} {ADDR_B}", link.ns_a(), link.ns_b())
        .and_then(|()| out.flush())
        .context("cannot write the ready line")?;
    drop(out);
    let _ = stopped.recv();
    let [a_to_b, b_to_a] = link.stats();
    drop(link);
    report("a->b", a_to_b);
    report("b->a", b_to_a);
    Ok(())
}

fn report(direction: &str, stats: Stats) {
    eprintln!(
        "linkem: {direction} {} frames ({} bytes), {} lost, {} dropped by the queue, {} delivered",
        stats.frames, stats.bytes, stats.lost, stats.queue_drops, stats.delivered
    );
}

/// Drops Rust's " (os error N)" suffixes: the system's words are enough for a person.
fn without_os_error_codes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" (os error ") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + " (os error ".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(')') {
            rest = &tail[digits + 1..];
        } else {
            out.push_str(" (os error ");
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::without_os_error_codes;

    #[test]
    fn os_error_codes_are_dropped() {
        let check = |text: &str, expected: &str| assert_eq!(without_os_error_codes(text), expected);
        check("cannot open x: Permission denied (os error 13)", "cannot open x: Permission denied");
        check("a (os error 1): b (os error 22)", "a: b");
        check("kept (os error x)", "kept (os error x)");
        check("plain", "plain");
    }
}
