//! Tests of `credentials.rs`: which source wins, and that no password leaks into text.

use super::*;

fn netrc(text: &str) -> Netrc {
    Netrc::parse("netrc", text).unwrap()
}

/// Resolves with a prompt that answers `typed` (or finds no terminal) and records its prompts.
fn run(inputs: Inputs<'_>, typed: Option<&str>) -> (Result<Credentials, CredentialsError>, Vec<String>) {
    let mut asked = Vec::new();
    let result = resolve(inputs, &mut |prompt| {
        asked.push(prompt.to_owned());
        Ok(typed.map(Secret::new))
    });
    (result, asked)
}

fn ok(result: Result<Credentials, CredentialsError>) -> (String, String, Source) {
    let c = result.unwrap();
    (c.user.clone(), c.password.expose().to_owned(), c.source)
}

fn triple(user: &str, password: &str, source: Source) -> (String, String, Source) {
    (user.into(), password.into(), source)
}

#[test]
fn sources_in_order_of_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "from-file\r\nsecond line\n").unwrap();
    let n = netrc("machine h login alice password from-netrc\n");
    let base = || Inputs { host: "h", user: Some("alice"), netrc: Some(&n), ..Inputs::default() };
    let all = Inputs {
        password: Some(Secret::new("from-cli")),
        password_file: Some(&file),
        env_password: Some(Secret::new("from-env")),
        ..base()
    };
    assert_eq!(ok(run(all, None).0), triple("alice", "from-cli", Source::CommandLine));
    let no_cli = Inputs { password_file: Some(&file), env_password: Some(Secret::new("from-env")), ..base() };
    assert_eq!(ok(run(no_cli, None).0), triple("alice", "from-file", Source::PasswordFile));
    let env = Inputs { env_password: Some(Secret::new("from-env")), ..base() };
    assert_eq!(ok(run(env, None).0), triple("alice", "from-env", Source::Environment));
    assert_eq!(ok(run(base(), None).0), triple("alice", "from-netrc", Source::Netrc));
    let (typed, asked) = run(Inputs { user: Some("bob"), ..base() }, Some("typed"));
    assert_eq!(ok(typed), triple("bob", "typed", Source::Prompt));
    assert_eq!(asked, ["password for bob@h: "]);
}

#[test]
fn anonymous_by_name_needs_no_password() {
    // `ftp://anonymous@host/` and `--user ftp`: no prompt, the conventional address.
    for user in ["anonymous", "FTP"] {
        let (found, asked) = run(Inputs { host: "h", user: Some(user), ..Inputs::default() }, Some("typed"));
        assert_eq!(ok(found), triple(user, ANONYMOUS_PASSWORD, Source::Anonymous));
        assert!(asked.is_empty());
    }
    let env =
        Inputs { host: "h", user: Some("anonymous"), env_password: Some(Secret::new("me@x")), ..Inputs::default() };
    assert_eq!(ok(run(env, None).0), triple("anonymous", "me@x", Source::Environment));
}

#[test]
fn without_user_netrc_then_anonymous() {
    let n = netrc("machine h login alice password pw\nmachine nopass login carol\n");
    let inputs = |host| Inputs { host, netrc: Some(&n), ..Inputs::default() };
    assert_eq!(ok(run(inputs("h"), None).0), triple("alice", "pw", Source::Netrc));
    assert_eq!(ok(run(inputs("elsewhere"), None).0), triple("anonymous", ANONYMOUS_PASSWORD, Source::Anonymous));
    let (typed, asked) = run(inputs("nopass"), Some("typed"));
    assert_eq!(ok(typed), triple("carol", "typed", Source::Prompt));
    assert_eq!(asked, ["password for carol@nopass: "]);
    let plain = Inputs { host: "h", ..Inputs::default() };
    assert_eq!(ok(run(plain, None).0), triple("anonymous", ANONYMOUS_PASSWORD, Source::Anonymous));
}

#[test]
fn no_password_and_no_terminal_is_an_error_naming_the_way_out() {
    let (result, _) = run(Inputs { host: "h", user: Some("alice"), ..Inputs::default() }, None);
    assert_eq!(
        result.unwrap_err().to_string(),
        "no password for `alice`: set FTP_PASSWORD, use --password-file FILE, or run on a terminal"
    );
}

#[test]
fn bad_passwords_and_files_are_named_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let inputs = |file| Inputs { host: "h", user: Some("u"), password_file: Some(file), ..Inputs::default() };
    let err = run(inputs(&missing), None).0.unwrap_err().to_string();
    assert_eq!(err, format!("--password-file {}: no such file or directory", missing.display()));
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\nsecret-on-line-2\n").unwrap();
    let err = run(inputs(&empty), None).0.unwrap_err().to_string();
    assert_eq!(err, format!("--password-file {}: empty first line", empty.display()));
    let env = Inputs { host: "h", user: Some("u"), env_password: Some(Secret::new("a\0secret")), ..Inputs::default() };
    let err = run(env, None).0.unwrap_err().to_string();
    assert_eq!(err, "the password from FTP_PASSWORD contains a CR, LF or NUL character, which FTP cannot carry");
    let n = netrc("machine h login u password \"multi\\nline\"\n");
    let err = run(Inputs { host: "h", netrc: Some(&n), ..Inputs::default() }, None).0.unwrap_err().to_string();
    assert!(err.contains("from netrc") && !err.contains("multi"), "{err}");
}

#[test]
fn secrets_never_print() {
    let secret = Secret::new("hunter2");
    assert_eq!(format!("{secret} {secret:?}"), "**** ****");
    let c = Credentials { user: "u".into(), password: secret, source: Source::Prompt };
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn io_problems_read_as_phrases() {
    let e = std::io::Error::from_raw_os_error(2);
    assert_eq!(io_problem(&e), "no such file or directory");
}
