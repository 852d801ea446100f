//! `-r`: whole directory trees. Downloads walk the remote tree (MLSD when FEAT lists MLST, else
//! LIST) and recreate it locally; uploads walk the local tree and recreate it with MKD. Names
//! that cannot be a single path component are refused, symbolic links that point outside a
//! local tree (or at directories) are skipped, and the files go through `pool`.

use crate::get::{GetOptions, Output};
use crate::list;
use crate::localfile::Target;
use crate::pool::{self, Job, JobKind, Report};
use crate::progress::{summary, Progress};
use crate::put::{self, remote_join, PutOptions, Remote};
use crate::session::{Login, ServerError, Session};
use crate::transfer::Mode;
use anyhow::{anyhow, bail, Context, Result};
use common::listing::EntryKind;
use common::path::unquote_257;
use common::text::sanitize;
use common::Command;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Directories deeper than this are not entered (a server with a symlink loop could otherwise
/// lead the walk on forever).
const MAX_DEPTH: usize = 64;

/// At most this many entries are taken from a remote tree.
const MAX_ENTRIES: usize = 1_000_000;

/// What `-r` should do, besides the direction.
#[derive(Debug, Clone)]
pub struct TreeOptions {
    /// Replace existing files (local for -g, remote for -p).
    pub overwrite: bool,
    /// Continue interrupted transfers.
    pub resume: bool,
    /// Check every file with the server's HASH when it has one.
    pub verify: bool,
    /// Which digest to ask the server for.
    pub hash: crate::cli::HashChoice,
    /// Make each downloaded file durable before it gets its final name.
    pub fsync: bool,
    /// No progress and no summary.
    pub quiet: bool,
    /// Transfers at once.
    pub parallel: usize,
}

/// A file of a tree: its path inside the tree (`/`-separated) and its size when known.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TreeFile {
    rel: String,
    size: Option<u64>,
    local: Option<PathBuf>,
}

/// A walked tree: directories (parents first), files, and what was left out.
#[derive(Debug, Default)]
struct Walk {
    dirs: Vec<String>,
    files: Vec<TreeFile>,
    /// Left out by design (symbolic links, special files), with the reason.
    skipped: Vec<(String, String)>,
    /// Left out because they cannot be transferred (bad names), with the reason: failures.
    refused: Vec<(String, String)>,
}

/// Can `name` be one path component on both sides? Not empty, not `.`/`..`, no `/`, no NUL,
/// and no CR/LF (FTP commands could not carry it).
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name == "." || name == ".." {
        Err("not a usable file name")
    } else if name.contains(['/', '\0']) {
        Err("the name contains '/' or NUL")
    } else if name.contains(['\r', '\n']) {
        Err("the name contains CR or LF, which FTP cannot carry")
    } else {
        Ok(())
    }
}

/// `-r -g REMOTE_DIR`: copies the remote tree into `local_root`.
pub fn get(
    mut session: Session,
    login: &Login,
    mode: Mode,
    remote_root: &str,
    local_root: &Path,
    opts: &TreeOptions,
) -> Result<()> {
    session.binary()?;
    // One data connection for the whole walk and every file, when the server allows it.
    session.try_block_mode()?;
    let mut walk = walk_remote(&mut session, mode, remote_root)?;
    std::fs::create_dir_all(local_root).with_context(|| format!("cannot create {}", local_root.display()))?;
    make_dirs(&mut walk, |dir| make_local_dir(&local_path(local_root, dir)))?;
    transfer_all(session, login, mode, walk, opts, "downloaded", |file, progress| {
        let (dir, name) = file.rel.rsplit_once('/').unwrap_or(("", &file.rel));
        JobKind::Get(Box::new(GetOptions {
            remote: remote_join(remote_root, &file.rel),
            output: Output::Target(Target::in_dir(&local_path(local_root, dir), name)),
            overwrite: opts.overwrite,
            resume: opts.resume,
            verify: opts.verify,
            hash: opts.hash,
            fsync: opts.fsync,
            checksum: None,
            progress: progress.clone(),
            listed_size: file.size,
            login: Some(login.clone()),
            segments: Some(1),
        }))
    })
}

/// `-r -p LOCAL_DIR`: copies the local tree to `remote_root`, creating directories with MKD.
pub fn put(
    mut session: Session,
    login: &Login,
    mode: Mode,
    local_root: &Path,
    remote_root: &str,
    opts: &TreeOptions,
) -> Result<()> {
    let mut walk = walk_local(local_root)?;
    session.try_block_mode()?;
    let home = pwd(&mut session)?;
    // Directories this run created (`""`: the root) hold no files yet: their files need no
    // look before they are uploaded (a round trip each).
    let mut created = std::collections::HashSet::new();
    if make_remote_dir(&mut session, remote_root, &home)? {
        created.insert(String::new());
    }
    make_dirs(&mut walk, |dir| {
        let made = make_remote_dir(&mut session, &remote_join(remote_root, dir), &home);
        // A refusal (a reply) is about this directory; anything else (the connection) is not.
        match made {
            Err(e) if e.downcast_ref::<ServerError>().is_none() => Err(Fatal(e).into()),
            Ok(fresh) => {
                if fresh {
                    created.insert(dir.to_owned());
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    })?;
    transfer_all(session, login, mode, walk, opts, "uploaded", |file, progress| {
        let dir = file.rel.rsplit_once('/').map_or("", |(dir, _)| dir);
        JobKind::Put(Box::new(PutOptions {
            local: file.local.clone().unwrap_or_else(|| local_path(local_root, &file.rel)),
            remote: remote_join(remote_root, &file.rel),
            overwrite: opts.overwrite,
            resume: opts.resume,
            verify: opts.verify,
            hash: opts.hash,
            progress: progress.clone(),
            in_new_dir: created.contains(dir),
        }))
    })
}

/// An error that ends the whole tree transfer, not just one directory.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
struct Fatal(anyhow::Error);

/// Creates the walked directories (parents first) with `make`. A directory that cannot be
/// created is one failure: what is under it is not tried, and each of its files is listed as
/// failed too. Only a [`Fatal`] error from `make` ends the whole transfer.
fn make_dirs(walk: &mut Walk, mut make: impl FnMut(&str) -> Result<()>) -> Result<()> {
    let under = |path: &str, dir: &str| path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'));
    let mut failed: Vec<String> = Vec::new();
    for dir in &walk.dirs {
        if failed.iter().any(|f| under(dir, f)) {
            continue;
        }
        match make(dir) {
            Ok(()) => {}
            Err(e) => match e.downcast::<Fatal>() {
                Ok(Fatal(e)) => return Err(e),
                Err(e) => {
                    walk.refused.push((dir.clone(), crate::report::render(&e)));
                    failed.push(dir.clone());
                }
            },
        }
    }
    let (lost, kept): (Vec<TreeFile>, Vec<TreeFile>) =
        std::mem::take(&mut walk.files).into_iter().partition(|f| failed.iter().any(|d| under(&f.rel, d)));
    walk.files = kept;
    for file in lost {
        walk.refused.push((file.rel, "not tried: its directory could not be created".to_owned()));
    }
    Ok(())
}

/// Transfers every file of `walk` through the pool, with one progress display, then reports.
fn transfer_all(
    session: Session,
    login: &Login,
    mode: Mode,
    walk: Walk,
    opts: &TreeOptions,
    verb: &str,
    job: impl Fn(&TreeFile, &Progress) -> JobKind,
) -> Result<()> {
    let total: u64 = walk.files.iter().filter_map(|f| f.size).sum();
    let progress = Progress::group(total, walk.files.len(), opts.quiet);
    let jobs = interleave_dirs(&walk.files)
        .into_iter()
        .map(|file| Job { label: file.rel.clone(), kind: job(file, &progress) })
        .collect();
    let report = pool::run(session, login, mode, opts.parallel, jobs, &progress);
    progress.finish();
    conclude(verb, report, walk, opts)
}

/// The files in an order that takes one from each directory in turn, so parallel workers
/// create files in different directories and do not queue for one directory's lock.
fn interleave_dirs(files: &[TreeFile]) -> Vec<&TreeFile> {
    let mut dirs: Vec<(&str, VecDeque<&TreeFile>)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for file in files {
        let dir = file.rel.rsplit_once('/').map_or("", |(dir, _)| dir);
        let i = *index.entry(dir).or_insert_with(|| {
            dirs.push((dir, VecDeque::new()));
            dirs.len() - 1
        });
        dirs[i].1.push_back(file);
    }
    let mut order = Vec::with_capacity(files.len());
    while order.len() < files.len() {
        for (_, queue) in &mut dirs {
            order.extend(queue.pop_front());
        }
    }
    order
}

/// Prints the summary and the failures; fails when any file failed.
fn conclude(verb: &str, mut report: Report, walk: Walk, opts: &TreeOptions) -> Result<()> {
    report.failed.extend(walk.refused);
    let (untried, why_untried) = std::mem::take(&mut report.untried);
    let tried = report.files + report.failed.len() + untried;
    if !opts.quiet {
        let secs = report.elapsed.as_secs_f64().max(1e-6);
        let mut line = format!(
            "{verb} {} of {tried} files, {}; {:.0} files/s",
            report.files,
            summary(report.moved, report.total, report.elapsed),
            report.files as f64 / secs
        );
        if report.renamed > 0 {
            line.push_str(&format!("; {} saved as NAME.1, NAME.2, ... because the name existed", report.renamed));
        }
        if !walk.skipped.is_empty() {
            line.push_str(&format!("; {} skipped", walk.skipped.len()));
        }
        eprintln!("{line}");
        for (name, why) in &walk.skipped {
            eprintln!("  skipped {}: {why}", sanitize(name));
        }
    }
    if report.failed.is_empty() && untried == 0 {
        return Ok(());
    }
    report.failed.sort();
    for (name, why) in &report.failed {
        eprintln!("  failed {}: {why}", sanitize(name));
    }
    if untried > 0 {
        eprintln!("  {untried} files not transferred: {why_untried}");
    }
    bail!("{} of {tried} files failed (listed above)", report.failed.len() + untried)
}

/// The local path of `rel` (a `/`-separated path inside the tree) under `root`.
fn local_path(root: &Path, rel: &str) -> PathBuf {
    rel.split('/').filter(|c| !c.is_empty()).fold(root.to_owned(), |path, c| path.join(c))
}

/// Creates a local directory of the tree; one that exists is fine unless it is not a real
/// directory (a symbolic link could lead the files out of the tree).
fn make_local_dir(path: &Path) -> Result<()> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
            if meta.is_dir() {
                Ok(())
            } else {
                bail!("cannot create the directory {}: something else has that name", path.display())
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot create the directory {}", path.display())),
    }
}

/// The login directory (PWD, RFC 959 `257 "path"`).
fn pwd(session: &mut Session) -> Result<String> {
    let reply = session.expect_success(&Command::Pwd, || "cannot read the remote working directory (PWD)".into())?;
    unquote_257(&reply.text()).ok_or_else(|| anyhow!(ServerError(reply)).context("unexpected reply to PWD"))
}

/// Changes to `path` relative to the login directory `home`.
fn cwd_from_home(session: &mut Session, home: &str, path: &str) -> Result<common::Reply> {
    session.expect_success(&Command::Cwd(home.to_owned()), || "cannot return to the login directory".into())?;
    session.command(&Command::Cwd(path.to_owned()))
}

/// Creates a remote directory with MKD; one that already exists is fine.
/// Creates a remote directory, or finds it there already; `true` when this call created it.
fn make_remote_dir(session: &mut Session, path: &str, home: &str) -> Result<bool> {
    let reply = session.command(&Command::Mkd(path.to_owned()))?;
    if reply.is_success() {
        return Ok(true);
    }
    let exists = if session.features.mlst {
        put::probe(session, path)? == Remote::Dir
    } else {
        let is_dir = cwd_from_home(session, home, path)?.is_success();
        session.expect_success(&Command::Cwd(home.to_owned()), || "cannot return to the login directory".into())?;
        is_dir
    };
    if exists {
        Ok(false)
    } else {
        Err(ServerError(reply)).context(format!("cannot create the remote directory {}", sanitize(path)))
    }
}

/// Lists the remote tree under `root` breadth first (parents before children).
fn walk_remote(session: &mut Session, mode: Mode, root: &str) -> Result<Walk> {
    let home = pwd(session)?;
    let mut walk = Walk::default();
    let mut pending = vec![(String::new(), 0)];
    while let Some((rel, depth)) = pending.pop() {
        let path = remote_join(root, &rel);
        let reply = cwd_from_home(session, &home, if path.is_empty() { "." } else { &path })?;
        if !reply.is_success() {
            let err = anyhow!(ServerError(reply));
            if rel.is_empty() {
                return Err(err.context(format!("cannot enter the remote directory {}", sanitize(root))));
            }
            walk.refused.push((rel, crate::report::render(&err.context("cannot enter the directory"))));
            continue;
        }
        let entries = match list::fetch(session, mode) {
            Ok(entries) => entries,
            // The root is the whole job; a subdirectory is one failure among many (like
            // lftp's mirror), as long as the control connection still works.
            Err(e) if !rel.is_empty() && pool::alive(session) => {
                walk.refused.push((rel, crate::report::render(&e)));
                continue;
            }
            Err(e) => return Err(e.context(format!("cannot list the remote directory {}", sanitize(&path)))),
        };
        for entry in entries {
            let child = remote_join(&rel, &entry.name);
            if let Err(why) = check_name(&entry.name) {
                walk.refused.push((child, why.to_owned()));
                continue;
            }
            if walk.files.len() + walk.dirs.len() >= MAX_ENTRIES {
                bail!("the remote tree has more than {MAX_ENTRIES} entries");
            }
            match entry.kind {
                EntryKind::File => walk.files.push(TreeFile { rel: child, size: Some(entry.size), local: None }),
                EntryKind::Dir if depth + 1 < MAX_DEPTH => {
                    walk.dirs.push(child.clone());
                    pending.push((child, depth + 1));
                }
                EntryKind::Dir => walk.skipped.push((child, format!("deeper than {MAX_DEPTH} levels"))),
                EntryKind::Symlink => walk.skipped.push((child, "a symbolic link".into())),
                EntryKind::Other | EntryKind::CurrentDir | EntryKind::ParentDir => {
                    walk.skipped.push((child, "not a regular file".into()))
                }
            }
        }
    }
    session.expect_success(&Command::Cwd(home), || "cannot return to the login directory".into())?;
    // Parents first: a directory's path is longer than its parent's.
    walk.dirs.sort_by_key(|d| d.matches('/').count());
    Ok(walk)
}

/// Walks the local tree under `root`. A symbolic link to a file inside the tree is uploaded as
/// that file; links that point outside, to directories, or nowhere are skipped.
fn walk_local(root: &Path) -> Result<Walk> {
    let canonical_root = root.canonicalize().with_context(|| format!("cannot read {}", root.display()))?;
    if !canonical_root.is_dir() {
        bail!("{} is not a directory", root.display());
    }
    let mut walk = Walk::default();
    let mut pending = vec![(String::new(), canonical_root.clone())];
    while let Some((rel, dir)) = pending.pop() {
        let listed = std::fs::read_dir(&dir).and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>());
        let mut entries = match listed {
            Ok(entries) => entries,
            // The root is the whole job; a subdirectory is one failure among many.
            Err(e) if rel.is_empty() => {
                return Err(e).with_context(|| format!("cannot read the directory {}", dir.display()))
            }
            Err(e) => {
                walk.refused.push((rel, format!("cannot read the directory: {}", crate::report::io_reason(&e))));
                continue;
            }
        };
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                let shown = format!("{}/{}", rel, entry.file_name().to_string_lossy());
                walk.refused.push((shown, "the name is not UTF-8, which FTP paths need here".into()));
                continue;
            };
            let child = remote_join(&rel, &name);
            if let Err(why) = check_name(&name) {
                walk.refused.push((child, why.to_owned()));
                continue;
            }
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(e) => {
                    walk.refused.push((child, format!("cannot read it: {}", crate::report::io_reason(&e))));
                    continue;
                }
            };
            if kind.is_dir() {
                walk.dirs.push(child.clone());
                pending.push((child, path));
            } else if kind.is_file() {
                let size = entry.metadata().ok().map(|m| m.len());
                walk.files.push(TreeFile { rel: child, size, local: Some(path) });
            } else if kind.is_symlink() {
                match path.canonicalize() {
                    Ok(target) if !target.starts_with(&canonical_root) => {
                        walk.skipped.push((child, "a symbolic link that points outside the tree".into()))
                    }
                    Ok(target) if target.is_file() => {
                        let size = std::fs::metadata(&target).ok().map(|m| m.len());
                        walk.files.push(TreeFile { rel: child, size, local: Some(target) });
                    }
                    Ok(_) => walk.skipped.push((child, "a symbolic link to a directory".into())),
                    Err(_) => walk.skipped.push((child, "a symbolic link that points nowhere".into())),
                }
            } else {
                walk.skipped.push((child, "not a regular file".into()));
            }
        }
    }
    walk.dirs.sort_by_key(|d| d.matches('/').count());
    Ok(walk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaves_directories() {
        let file = |rel: &str| TreeFile { rel: rel.to_owned(), size: None, local: None };
        let files: Vec<TreeFile> = ["a/1", "a/2", "a/3", "b/1", "top", "b/2"].into_iter().map(file).collect();
        let order: Vec<&str> = interleave_dirs(&files).into_iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(order, ["a/1", "b/1", "top", "a/2", "b/2", "a/3"]);
        assert!(interleave_dirs(&[]).is_empty());
    }

    #[test]
    fn checks_names() {
        for (name, ok) in
            [("a b", true), ("ünï 🚀", true), ("", false), (".", false), ("..", false), ("a/b", false), ("a\nb", false)]
        {
            assert_eq!(check_name(name).is_ok(), ok, "{name:?}");
        }
    }

    #[test]
    fn walks_a_local_tree_and_skips_links_out_of_it() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"no").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir(root.join("empty")).unwrap();
        std::fs::write(root.join("a/b/f.txt"), b"12345").unwrap();
        std::fs::write(root.join("top"), b"").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("leak")).unwrap();
        std::os::unix::fs::symlink(root.join("top"), root.join("a/inside")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("dirlink")).unwrap();
        std::os::unix::fs::symlink(root.join("gone"), root.join("dangling")).unwrap();
        let walk = walk_local(root).unwrap();
        assert_eq!(walk.dirs, vec!["a", "empty", "a/b"]);
        let mut files: Vec<_> = walk.files.iter().map(|f| (f.rel.as_str(), f.size)).collect();
        files.sort();
        assert_eq!(files, vec![("a/b/f.txt", Some(5)), ("a/inside", Some(0)), ("top", Some(0))]);
        let mut skipped: Vec<_> = walk.skipped.iter().map(|(n, _)| n.as_str()).collect();
        skipped.sort();
        assert_eq!(skipped, vec!["dangling", "dirlink", "leak"]);
        assert!(walk.refused.is_empty());
        assert_eq!(local_path(Path::new("/x"), "a/b/c"), PathBuf::from("/x/a/b/c"));
    }

    /// Creates `levels` nested directories of 200-character names under `base`, one relative
    /// step at a time so no single path grows too long; returns the innermost one.
    fn nest(base: &Path, tag: char, levels: usize) -> PathBuf {
        (0..levels).fold(base.to_owned(), |dir, _| {
            let next = dir.join(tag.to_string().repeat(200));
            std::fs::create_dir(&next).unwrap();
            next
        })
    }

    #[test]
    fn an_unreadable_directory_is_one_failure_and_the_rest_is_walked() {
        // Permissions do not stop root, so the unreadable directory is one whose path is longer
        // than PATH_MAX (4096): it is made by moving a deep chain under another deep chain.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("top.txt"), b"top").unwrap();
        std::fs::create_dir(root.join("ok")).unwrap();
        std::fs::write(root.join("ok/f"), b"f").unwrap();
        let outer = nest(&root, 'a', 12);
        let inner = nest(dir.path(), 'b', 12);
        let chain = dir.path().join("b".repeat(200));
        std::fs::rename(&chain, outer.join("deep")).unwrap();
        assert!(inner.to_string_lossy().len() > 2400);
        let walk = walk_local(&root).unwrap();
        let mut files: Vec<&str> = walk.files.iter().map(|f| f.rel.as_str()).collect();
        files.sort();
        assert_eq!(files, ["ok/f", "top.txt"]);
        assert_eq!(walk.refused.len(), 1, "{:?}", walk.refused);
        let (name, why) = &walk.refused[0];
        assert!(name.starts_with("aaaa") && name.contains("/deep/bbbb"), "{name}");
        assert!(why.starts_with("cannot read the directory: "), "{why}");
    }

    #[test]
    fn a_directory_that_cannot_be_made_fails_with_its_files_only() {
        let file = |rel: &str| TreeFile { rel: rel.to_owned(), size: None, local: None };
        let mut walk = Walk {
            dirs: ["a", "ab", "a/b"].map(str::to_owned).to_vec(),
            files: ["a/1", "a/b/2", "ab/3", "top"].map(file).to_vec(),
            ..Walk::default()
        };
        let mut made = Vec::new();
        make_dirs(&mut walk, |dir| {
            made.push(dir.to_owned());
            if dir == "a" {
                bail!("550 no")
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(made, ["a", "ab"]);
        let files: Vec<&str> = walk.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(files, ["ab/3", "top"]);
        let refused: Vec<&str> = walk.refused.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(refused, ["a", "a/1", "a/b/2"]);
        let fatal = make_dirs(&mut Walk { dirs: vec!["x".into()], ..Walk::default() }, |_| {
            Err(Fatal(anyhow!("connection lost")).into())
        });
        assert_eq!(fatal.unwrap_err().to_string(), "connection lost");
    }
}
