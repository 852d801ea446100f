//! Usage errors (exit 2) and failures before any server is involved (exit 1).

use crate::support::ftclient;

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (&["127.0.0.1", "0", "-l"][..], "ftclient: invalid value '0' for '<PORT>': 0 is not in 1..=65535"),
        (&["127.0.0.1", "65536", "-l"], "invalid value '65536' for '<PORT>'"),
        (&["127.0.0.1", "21", "-l", "80"], "invalid value '80' for '[DATA_PORT]'"),
        (&["127.0.0.1", "21", "-l", "x"], "invalid value 'x' for '[DATA_PORT]'"),
        (&["127.0.0.1", "21"], "required"),
        (&["127.0.0.1", "21", "-r", "-g", "t", "-o", "-"], "ftclient: -r cannot be used with -o - (stdout)"),
        (&["127.0.0.1", "21", "-l", "-g", "a"], "cannot be used with"),
        (&["127.0.0.1", "21", "-g", "a", "-o", "-", "--resume"], "--resume cannot be used with -o -"),
        (&["127.0.0.1", "21", "-g", "a", "--checksum", "sha256:12"], "64 hex digits"),
        (
            &["127.0.0.1", "21", "-r", "-g", "t", "--checksum", "crc32:cbf43926"],
            "'--recursive' cannot be used with '--checksum <ALGO:HEX>'",
        ),
        (
            &["127.0.0.1", "21", "-g", "a\nb"],
            "invalid value 'a\\x0ab' for '--get <REMOTE_FILE>': \"a\\nb\" contains a CR, LF",
        ),
        (
            &["127.0.0.1", "21", "-l", "--password", "hunter\n2"],
            "invalid value for '--password <PASSWORD>': the password",
        ),
    ] {
        let run = ftclient(dir.path(), args);
        assert_eq!(run.code(), 2, "{args:?}: {run:?}");
        // One line, `ftclient: <message>`, as for every other error.
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.starts_with("ftclient: ") && !run.stderr.contains("error:"), "{}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty());
        assert!(!run.stderr.contains("hunter"), "the password was echoed: {}", run.stderr);
    }
}

#[test]
fn help_shows_examples() {
    let dir = tempfile::tempdir().unwrap();
    let run = ftclient(dir.path(), &["--help"]).ok();
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let help = run.out();
    for needle in ["Examples:", "-g docs/a.txt", "--resume", "DATA_PORT", ".NAME.ftpart"] {
        assert!(help.contains(needle), "{needle} missing from --help");
    }
}

#[test]
fn unreachable_servers_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was just free: nothing listens there.
    let port = crate::support::free_port().to_string();
    ftclient(dir.path(), &["127.0.0.1", &port, "-l"]).fails_with("cannot connect to 127.0.0.1:");
    ftclient(dir.path(), &["no-such-host.invalid", "21", "-l"]).fails_with("cannot resolve host no-such-host.invalid");
}
