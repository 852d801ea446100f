//! `cargo run -p xtask -- docs DIR`: writes the man pages and shell completions of `ftserver`
//! and `ftclient` into DIR, generated from the same clap definitions the binaries parse with.

use anyhow::{bail, Context as _};
use clap::CommandFactory;
use clap_complete::Shell;
use std::fs;
use std::path::{Path, PathBuf};

fn main() -> std::process::ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["docs", dir] => docs(Path::new(dir)),
        _ => bail!("usage: xtask docs DIR (writes man pages to DIR/man/man1 and completions to DIR/completions)"),
    }
}

/// Writes `man/man1/NAME.1` and `completions/{NAME.bash,_NAME,NAME.fish,...}` for both programs.
fn docs(dir: &Path) -> anyhow::Result<()> {
    // The derive names a command after the crate that compiles it (here "xtask").
    let commands = [
        ftserver::cli::Args::command().name("ftserver").bin_name("ftserver"),
        ftclient::cli::Cli::command().name("ftclient").bin_name("ftclient"),
    ];
    let man_dir = dir.join("man/man1");
    let completion_dir = dir.join("completions");
    for d in [&man_dir, &completion_dir] {
        fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    for command in commands {
        let name = command.get_name().to_owned();
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone()).render(&mut page).context("cannot render the man page")?;
        write(&man_dir.join(format!("{name}.1")), &page)?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::Elvish, Shell::PowerShell] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command.clone(), &name, &mut script);
            write(&completion_dir.join(completion_name(shell, &name)), &script)?;
        }
    }
    println!("xtask: man pages in {}, completions in {}", man_dir.display(), completion_dir.display());
    Ok(())
}

/// The file name each shell looks for: `ftserver.bash`, `_ftserver` (zsh), `ftserver.fish`, ...
fn completion_name(shell: Shell, name: &str) -> PathBuf {
    match shell {
        Shell::Zsh => PathBuf::from(format!("_{name}")),
        Shell::Bash => PathBuf::from(format!("{name}.bash")),
        Shell::Fish => PathBuf::from(format!("{name}.fish")),
        Shell::Elvish => PathBuf::from(format!("{name}.elv")),
        Shell::PowerShell => PathBuf::from(format!("_{name}.ps1")),
        _ => PathBuf::from(format!("{name}.{shell}")),
    }
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
