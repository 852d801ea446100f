//! Error text for people: an error chain on one line (`cause: cause: reason`), with the
//! system's words for an I/O error ("permission denied") and never Rust's "(os error N)"
//! suffix, which tells a user nothing they can act on; and clap's usage errors on one line.

use std::io;

/// The whole chain of `err` on one line, as `{err:#}` would print it, without "(os error N)".
pub fn render(err: &anyhow::Error) -> String {
    err.chain().map(plain).collect::<Vec<_>>().join(": ")
}

/// One error (not its sources) on one line, without "(os error N)".
pub fn plain(err: &(dyn std::error::Error + 'static)) -> String {
    match err.downcast_ref::<io::Error>() {
        Some(io) => io_reason(io),
        None => strip_os_error(&err.to_string()),
    }
}

/// Why an I/O operation failed, in the system's words starting lower case ("no space left on
/// device"), without the error number.
pub fn io_reason(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(n) => lower_first(nix::errno::Errno::from_raw(n).desc()),
        None => strip_os_error(&err.to_string()),
    }
}

/// Removes every " (os error N)" from `text`.
fn strip_os_error(text: &str) -> String {
    const MARK: &str = " (os error ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let after = &rest[at + MARK.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(')') {
            out.push_str(&rest[..at]);
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[..at + MARK.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// "No such file" -> "no such file"; "EPSV refused" stays (an acronym).
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && second.is_lowercase() => {
            first.to_lowercase().chain(text[first.len_utf8()..].chars()).collect()
        }
        _ => text.to_owned(),
    }
}

/// Turns clap's rendered error (`error: ...`, details on indented lines, a blank line, then
/// usage hints) into one line without the `error: ` prefix: `invalid value '0' for '<PORT>': 0
/// is not in 1..=65535`, `the following required arguments were not provided: <PORT>`.
pub fn one_line_error(rendered: &str) -> String {
    let mut lines = rendered.lines();
    let first = lines.next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first).trim();
    let details = lines.take_while(|l| l.starts_with(' ') && !l.trim().is_empty()).map(str::trim);
    std::iter::once(first).chain(details).collect::<Vec<_>>().join(" ")
}

/// The one-line usage error for a clap error. A value the user gave is shown with control
/// characters escaped (a raw newline would cut the line and lose the reason), and a
/// `--password` value is never shown at all.
pub fn usage_message(err: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.as_str(),
        _ => "",
    };
    if arg.starts_with("--password") {
        let reason = std::error::Error::source(err).map_or_else(String::new, |e| format!(": {e}"));
        return format!("invalid value for '{arg}'{reason}");
    }
    let mut rendered = err.to_string();
    for (_, value) in err.context() {
        let values: Vec<&str> = match value {
            ContextValue::String(s) => vec![s],
            ContextValue::Strings(v) => v.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        for v in values.into_iter().filter(|v| v.contains(char::is_control)) {
            rendered = rendered.replace(v, &common::text::sanitize(v));
        }
    }
    one_line_error(&rendered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn no_error_numbers_reach_the_user() {
        for (text, expected) in [
            ("Address already in use (os error 98)", "Address already in use"),
            ("a (os error 2): b (os error 13)", "a: b"),
            ("kept (os error x)", "kept (os error x)"),
            ("plain", "plain"),
        ] {
            assert_eq!(strip_os_error(text), expected, "{text}");
        }
        let err = Err::<(), _>(io::Error::from_raw_os_error(nix::libc::ENOSPC)).context("cannot write f").unwrap_err();
        assert_eq!(render(&err), "cannot write f: no space left on device");
        let custom = io::Error::new(io::ErrorKind::TimedOut, "no answer within 3 s");
        assert_eq!(io_reason(&custom), "no answer within 3 s");
        assert_eq!(lower_first("EPSV refused"), "EPSV refused");
    }
}
