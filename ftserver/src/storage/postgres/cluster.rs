//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary directory as an
//! unprivileged user, a server listening only on a Unix socket in that directory, stopped and
//! removed when the [`TestCluster`] is dropped. Used by this crate's tests and by anyone
//! testing against the PostgreSQL backend; not used by the server itself.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The message when no PostgreSQL server programs are installed: a test fails with it, never
/// skips.
pub const NOT_FOUND: &str = "postgresql not found: run scripts/test.sh (or apt-get install postgresql)";

/// The port number names the socket file (`.s.PGSQL.5432`) in the cluster's own directory;
/// nothing listens on TCP, so clusters never collide.
const PORT: u16 = 5432;

/// The unprivileged account that runs the server when the tests run as root (initdb refuses
/// root). The distribution's package creates it.
const SERVER_USER: &str = "postgres";

/// A running PostgreSQL cluster in a temporary directory; see the module documentation.
#[derive(Debug)]
pub struct TestCluster {
    bin: PathBuf,
    dir: PathBuf,
    /// `Some((uid, gid))` when the server runs as [`SERVER_USER`] because we are root.
    owner: Option<(u32, u32)>,
    databases: AtomicU32,
}

static SHARED: Mutex<Weak<TestCluster>> = Mutex::new(Weak::new());

impl TestCluster {
    /// A cluster shared by whoever holds it: started by the first caller, stopped when the
    /// last holder drops it (tests in one binary running at once share one).
    pub fn shared() -> Result<Arc<TestCluster>, String> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = shared.upgrade() {
            return Ok(cluster);
        }
        let cluster = Arc::new(TestCluster::start()?);
        *shared = Arc::downgrade(&cluster);
        Ok(cluster)
    }

    /// Starts a cluster of one's own (for a test that stops and restarts it).
    pub fn start() -> Result<TestCluster, String> {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let bin = find_bin().ok_or_else(|| NOT_FOUND.to_owned())?;
        let dir = std::env::temp_dir().join(format!(
            "ft-pg-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let owner = if is_root() { Some(server_user()?) } else { None };
        let cluster = TestCluster { bin, dir, owner, databases: AtomicU32::new(0) };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&cluster.dir, Some(uid), Some(gid))
                .map_err(|e| format!("cannot give {} to {SERVER_USER}: {e}", cluster.dir.display()))?;
        }
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &["-D", path_str(&data), "-U", "ft", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        )?;
        cluster.pg_ctl_start()?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Starts the server (again, after [`TestCluster::stop`]); returns when it accepts
    /// connections.
    pub fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!("-k {} -p {PORT} -c listen_addresses='' -c fsync=off", path_str(&self.dir));
        let log = self.dir.join("server.log");
        let data = self.data_dir();
        self.run("pg_ctl", &["-D", path_str(&data), "-l", path_str(&log), "-w", "-o", &options, "start"]).map_err(|e| {
            let log = fs::read_to_string(&log).unwrap_or_default();
            format!("{e}; server log: {}", log.lines().last().unwrap_or(""))
        })
    }

    /// Stops the server at once (`-m immediate`: like a crash, connections are cut).
    pub fn stop(&self) -> Result<(), String> {
        let data = self.data_dir();
        self.run("pg_ctl", &["-D", path_str(&data), "-m", "immediate", "-w", "stop"])
    }

    /// A connection string in libpq's `key=value` form for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("host={} port={PORT} user=ft dbname={db}", path_str(&self.dir))
    }

    /// A new, empty database; returns its connection string.
    pub fn create_database(&self) -> Result<String, String> {
        let name = format!("t{}", self.databases.fetch_add(1, Ordering::Relaxed));
        let mut client = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .map_err(|e| format!("cannot connect to the test cluster: {e}"))?;
        client.batch_execute(&format!("CREATE DATABASE {name}")).map_err(|e| format!("create database: {e}"))?;
        Ok(self.url(&name))
    }

    /// Runs one of PostgreSQL's programs, as the server user when we are root.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(program);
        let mut command = match self.owner {
            Some(_) => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid", SERVER_USER, "--regid", SERVER_USER, "--init-groups", "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        command.args(args).current_dir(&self.dir).stdin(std::process::Stdio::null());
        let output: Output = command.output().map_err(|e| format!("cannot run {program}: {e}"))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!("{program} failed ({}): {}", output.status, stderr.trim()))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// The directory with `initdb` and `pg_ctl`: `$FT_PG_BIN`, else the newest
/// `/usr/lib/postgresql/N/bin` (Debian, Ubuntu), else whatever `PATH` has.
fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("FT_PG_BIN") {
        return Some(PathBuf::from(dir)).filter(|d| d.join("initdb").is_file());
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn server_user() -> Result<(u32, u32), String> {
    let user = nix::unistd::User::from_name(SERVER_USER)
        .ok()
        .flatten()
        .ok_or_else(|| format!("{NOT_FOUND} (no '{SERVER_USER}' user to run it as)"))?;
    Ok((user.uid.as_raw(), user.gid.as_raw()))
}
