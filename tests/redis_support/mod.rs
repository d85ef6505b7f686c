//! A real `redis-server` for the fleet-store (`RedisStore`) tests: each [`RedisServer`] is a
//! child process of the test on its own free port of 127.0.0.1, with no persistence and its own
//! temp dir, that a test can [stop](RedisServer::stop) and [restart](RedisServer::restart) (on
//! the same port) to check what the store does while Redis is away.
//!
//! ```ignore
//! mod redis_support;
//!
//! #[tokio::test]
//! async fn survives_redis_going_away() {
//!     let Some(mut redis) = redis_support::start_or_skip("survives_redis_going_away").await else {
//!         return;
//!     };
//!     let url = redis.url(); // redis://127.0.0.1:PORT
//!     redis.stop().await; // connections refused from now on
//!     redis.restart().await; // a fresh, empty server on the same port
//! }
//! ```
//!
//! Finding redis-server: `PATH`, then `/usr/bin` and `/usr/local/bin`; when it is missing,
//! `scripts/redis.sh install` runs once (unless `TOWER_RELIABILITY_NO_INSTALL=1`). When it is
//! still missing, [`start_or_skip`] skips the test with a message on stderr, or panics when
//! `TOWER_RELIABILITY_REQUIRE_REDIS=1` (as in `.ci/run`: CI must run these tests).
//!
//! Everything that waits on the process or the network runs on real threads and real clocks
//! (the async methods go through `spawn_blocking`), so the helpers also work in
//! `#[tokio::test(start_paused = true)]` tests and never stall the test's runtime.
#![allow(dead_code)] // each including test uses some of the helpers only

pub mod cluster;
#[cfg(feature = "redis")]
pub mod fleet;
pub mod tls;

use std::{
    collections::{hash_map::RandomState, BTreeSet},
    env, fs,
    hash::{BuildHasher, Hasher},
    io::{self, BufRead, BufReader, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    thread,
    time::{Duration, Instant},
};

/// Set to `1` to never run `scripts/redis.sh install` from the tests.
pub const NO_INSTALL_ENV: &str = "TOWER_RELIABILITY_NO_INSTALL";
/// Set to `1` to make a missing redis-server a test failure instead of a skip (CI sets it).
pub const REQUIRE_ENV: &str = "TOWER_RELIABILITY_REQUIRE_REDIS";

/// How long a (re)started server has to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopped server's port has to become free.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// Connect, read and write timeout of the raw-TCP client.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Ports tried by [`RedisServer::start`] before giving up.
const START_ATTEMPTS: usize = 5;

/// Whether the environment variable `name` is set to a true value (`1`, `true`, `yes`).
fn env_flag(name: &str) -> bool {
    matches!(
        env::var(name).as_deref().map(str::trim),
        Ok("1" | "true" | "TRUE" | "yes" | "YES")
    )
}

/// Writes one line straight to the process's stderr, past libtest's output capture, so that
/// skips and installs show up in a plain `cargo test` run.
pub(crate) fn notice(message: &str) {
    let _ = writeln!(io::stderr(), "{message}");
}

/// The `redis-server` binary: from `PATH`, `/usr/bin` or `/usr/local/bin`; when missing, runs
/// `scripts/redis.sh install` (once per test binary; the script's `flock` serialises test
/// binaries) unless `TOWER_RELIABILITY_NO_INSTALL=1`, then looks again. `None` when it is
/// still missing.
///
/// Blocks while installing (seconds): from async code, call it through `spawn_blocking`, as
/// [`start_or_skip`] does.
pub fn redis_server_binary() -> Option<PathBuf> {
    static BINARY: OnceLock<Option<PathBuf>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            find_redis_server().or_else(|| {
                if env_flag(NO_INSTALL_ENV) {
                    return None;
                }
                run_install_script();
                find_redis_server()
            })
        })
        .clone()
}

/// Looks for an executable `redis-server` on `PATH` and in the usual install directories.
fn find_redis_server() -> Option<PathBuf> {
    let path_dirs = env::var_os("PATH")
        .map(|path| env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a file that may be executed.
fn is_executable(path: &Path) -> bool {
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// Runs `scripts/redis.sh install`, reporting on stderr (its apt output only on failure).
fn run_install_script() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/redis.sh");
    notice(&format!(
        "redis_support: redis-server not found, running {} install (set {NO_INSTALL_ENV}=1 to skip this)",
        script.display()
    ));
    let started = Instant::now();
    match Command::new("bash")
        .arg(&script)
        .arg("install")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => notice(&format!(
            "redis_support: scripts/redis.sh install finished in {:.1} s",
            started.elapsed().as_secs_f64()
        )),
        Ok(out) => notice(&format!(
            "redis_support: scripts/redis.sh install failed ({}):\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 15)
        )),
        Err(err) => notice(&format!(
            "redis_support: could not run {}: {err}",
            script.display()
        )),
    }
}

/// Starts a [`RedisServer`] for the test `test_name`, or, when redis-server cannot be found
/// (even after `scripts/redis.sh install`), prints
/// `SKIPPED <test_name>: redis-server not found (install it with scripts/redis.sh install)` to
/// stderr and returns `None` — the test should then return early.
///
/// # Panics
///
/// When redis-server is missing and `TOWER_RELIABILITY_REQUIRE_REDIS=1`, and when it is there
/// but does not start. Needs a tokio runtime.
pub async fn start_or_skip(test_name: &str) -> Option<RedisServer> {
    let binary = join(tokio::task::spawn_blocking(redis_server_binary)).await;
    let binary = skip_unless_found(test_name, binary)?;
    Some(
        RedisServer::start_with(binary)
            .await
            .unwrap_or_else(|err| panic!("{test_name}: could not start redis-server: {err}")),
    )
}

/// [`start_or_skip`] for synchronous tests (no runtime needed); blocks while starting.
pub fn start_or_skip_blocking(test_name: &str) -> Option<RedisServer> {
    let binary = skip_unless_found(test_name, redis_server_binary())?;
    Some(
        RedisServer::start_blocking_with(binary)
            .unwrap_or_else(|err| panic!("{test_name}: could not start redis-server: {err}")),
    )
}

/// The skip-or-panic decision of [`start_or_skip`].
pub(crate) fn skip_unless_found(test_name: &str, binary: Option<PathBuf>) -> Option<PathBuf> {
    if binary.is_some() {
        return binary;
    }
    if env_flag(REQUIRE_ENV) {
        panic!(
            "{test_name}: redis-server not found, and {REQUIRE_ENV}=1 says this run must have it \
             (install it with scripts/redis.sh install, as .ci/run does)"
        );
    }
    notice(&format!(
        "SKIPPED {test_name}: redis-server not found (install it with scripts/redis.sh install)"
    ));
    None
}

/// A `redis-server` child process on `127.0.0.1:port`, started with
/// `--save '' --appendonly no --protected-mode no` in its own temp dir (which holds its log,
/// `redis.log`). Dropping it kills the process and removes the dir.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    /// Extra `redis-server` arguments (TLS, ACL users, cluster mode), kept for restarts.
    args: Vec<String>,
    child: Option<Process>,
}

/// A running redis-server, killed and reaped when dropped (also when a `stop`/`restart`
/// future is dropped half-way).
#[derive(Debug)]
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Awaits a `spawn_blocking` task, passing its panic on with the original message.
pub(crate) async fn join<T>(task: tokio::task::JoinHandle<T>) -> T {
    task.await
        .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()))
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`; tries other ports
    /// when one turns out to be taken.
    ///
    /// Fails with `NotFound` when there is no redis-server (see [`redis_server_binary`]).
    /// Needs a tokio runtime.
    pub async fn start() -> io::Result<Self> {
        let binary = join(tokio::task::spawn_blocking(redis_server_binary))
            .await
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "redis-server not found"))?;
        Self::start_with(binary).await
    }

    /// [`RedisServer::start`] with this redis-server binary.
    pub async fn start_with(binary: PathBuf) -> io::Result<Self> {
        join(tokio::task::spawn_blocking(move || {
            Self::start_blocking_with(binary)
        }))
        .await
    }

    /// [`RedisServer::start`] for synchronous code: blocks until the server answers.
    pub fn start_blocking() -> io::Result<Self> {
        let binary = redis_server_binary()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "redis-server not found"))?;
        Self::start_blocking_with(binary)
    }

    /// [`RedisServer::start_blocking`] with this redis-server binary.
    pub fn start_blocking_with(binary: PathBuf) -> io::Result<Self> {
        Self::start_blocking_with_args(binary, |_, _| Ok(Vec::new()))
    }

    /// [`RedisServer::start_blocking_with`], with extra arguments made from the server's port
    /// and temp dir (called again for each port tried).
    pub fn start_blocking_with_args(
        binary: PathBuf,
        mut args: impl FnMut(u16, &Path) -> io::Result<Vec<String>>,
    ) -> io::Result<Self> {
        let dir = make_temp_dir()?;
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            let port = pick_port()?;
            let extra = match args(port, &dir) {
                Ok(extra) => extra,
                Err(err) => {
                    release_port(port);
                    let _ = fs::remove_dir_all(&dir);
                    return Err(err);
                }
            };
            match spawn_ready(&binary, port, &dir, &extra) {
                Ok(child) => {
                    return Ok(Self {
                        binary,
                        port,
                        dir,
                        args: extra,
                        child: Some(child),
                    })
                }
                Err(err) => {
                    release_port(port);
                    last_err = Some(err);
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        Err(last_err.expect("at least one attempt"))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port, the same for the server's whole life (restarts included).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The server's temp dir (its working dir; `redis.log` is its log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.dir, lines)
    }

    /// The process id while running (between start/restart and stop), else `None`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|process| process.0.id())
    }

    /// Whether this handle has a server running (it was not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (SIGKILL: Redis vanishing, as in a crash; open connections are cut)
    /// and waits until its port is free: connections are refused from then on. No-op when
    /// already stopped. Needs a tokio runtime.
    ///
    /// # Panics
    ///
    /// When the port is still taken after a few seconds.
    pub async fn stop(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        let port = self.port;
        join(tokio::task::spawn_blocking(move || {
            kill_and_wait(child, port)
        }))
        .await;
    }

    /// [`RedisServer::stop`] for synchronous code.
    pub fn stop_blocking(&mut self) {
        if let Some(child) = self.child.take() {
            kill_and_wait(child, self.port);
        }
    }

    /// Starts the server again on the same port (stopping it first if it is running) and waits
    /// until it answers `PING`. The new server is empty: no persistence. Needs a tokio runtime.
    ///
    /// # Panics
    ///
    /// When it does not come back (for instance because something else took the port).
    pub async fn restart(&mut self) {
        self.stop().await;
        let (binary, port, dir) = (self.binary.clone(), self.port, self.dir.clone());
        let args = self.args.clone();
        let child = join(tokio::task::spawn_blocking(move || {
            respawn(&binary, port, &dir, &args)
        }))
        .await;
        self.child = Some(child);
    }

    /// [`RedisServer::restart`] for synchronous code.
    pub fn restart_blocking(&mut self) {
        self.stop_blocking();
        self.child = Some(respawn(&self.binary, self.port, &self.dir, &self.args));
    }

    /// Whether a server answers `PING` with `PONG` on this port now. Needs a tokio runtime.
    pub async fn ping(&self) -> bool {
        let port = self.port;
        join(tokio::task::spawn_blocking(move || ping_port(port))).await
    }

    /// [`RedisServer::ping`] for synchronous code.
    pub fn ping_blocking(&self) -> bool {
        ping_port(self.port)
    }

    /// Sends one command on a fresh connection and returns the reply (raw RESP2, no `redis`
    /// crate needed): for looking at or tampering with what the store wrote (`KEYS *`,
    /// `PTTL key`, `FLUSHALL`), or slowing Redis down (`CLIENT PAUSE 500`). Needs a tokio
    /// runtime.
    pub async fn command(&self, args: &[&str]) -> io::Result<Reply> {
        let port = self.port;
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        join(tokio::task::spawn_blocking(move || {
            command_port(port, &args)
        }))
        .await
    }

    /// [`RedisServer::command`] for synchronous code.
    pub fn command_blocking(&self, args: &[&str]) -> io::Result<Reply> {
        command_port(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        drop(self.child.take()); // kills it
        release_port(self.port);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One reply of the raw-TCP client ([`RedisServer::command`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR ...`
    Error(String),
    /// `:1`
    Integer(i64),
    /// `$3\r\nabc` (`None`: `$-1`, a missing key).
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...` (`None`: `*-1`).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a status or (UTF-8) bulk reply.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(bytes)) => String::from_utf8(bytes.clone()).ok(),
            _ => None,
        }
    }
}

/// Creates a fresh, empty temp dir for one server.
fn make_temp_dir() -> io::Result<PathBuf> {
    let base = env::temp_dir();
    loop {
        let dir = base.join(format!(
            "tower-reliability-redis-{}-{:08x}",
            std::process::id(),
            random_u64() as u32
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
}

/// A random number from std's per-process random hash keys (no extra dev-dependency).
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

/// A port on 127.0.0.1 that can be bound now and is not held by another [`RedisServer`] (of
/// this or another test process: see [`reserve_port`]), below the kernel's ephemeral range
/// when there is room: outgoing connections take ephemeral ports, and one could grab the port
/// while a test has the server stopped. Reserved for the caller until [`release_port`].
pub(crate) fn pick_port() -> io::Result<u16> {
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_low > 12_000 {
        let high = ephemeral_low - 1;
        let low = high.saturating_sub(10_000).max(10_000);
        let span = u64::from(high - low) + 1;
        for _ in 0..100 {
            let port = low + (random_u64() % span) as u16;
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() && reserve_port(port) {
                return Ok(port);
            }
        }
    }
    // Fall back to whatever the kernel hands out.
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        if reserve_port(port) {
            return Ok(port);
        }
    }
}

/// Ports held by the [`RedisServer`]s of this process, running or stopped.
static RESERVED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Where test processes record the ports of their [`RedisServer`]s: one file per port,
/// holding the owner's process id.
fn port_registry() -> PathBuf {
    env::temp_dir().join("tower-reliability-redis-ports")
}

/// Claims `port` for one [`RedisServer`] for its whole life, so that no other harness server
/// (in this process or another test process) starts on it while this one is stopped and
/// waiting for its restart. A claim whose process is gone is taken over. `false` when the
/// port is already claimed.
fn reserve_port(port: u16) -> bool {
    if !RESERVED_PORTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(port)
    {
        return false;
    }
    let dir = port_registry();
    let file = dir.join(port.to_string());
    // The claim appears with its content at once: written aside, then hard-linked into place
    // (which fails when the port is claimed already).
    let pending = dir.join(format!(
        ".{port}.{}.{:08x}",
        std::process::id(),
        random_u64() as u32
    ));
    let written =
        fs::create_dir_all(&dir).and_then(|()| fs::write(&pending, std::process::id().to_string()));
    if written.is_err() {
        // No usable registry (read-only temp dir?): the in-process claim has to do.
        return true;
    }
    let mut claimed = false;
    for _ in 0..2 {
        match fs::hard_link(&pending, &file) {
            Ok(()) => {
                claimed = true;
                break;
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let owner = fs::read_to_string(&file)
                    .ok()
                    .and_then(|pid| pid.trim().parse::<u32>().ok());
                if owner.is_none_or(process_alive) {
                    break;
                }
                // A claim left behind by a test process that died without dropping its server.
                let _ = fs::remove_file(&file);
            }
            Err(_) => {
                // No hard links here: the in-process claim has to do.
                claimed = true;
                break;
            }
        }
    }
    let _ = fs::remove_file(&pending);
    if claimed {
        return true;
    }
    RESERVED_PORTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&port);
    false
}

/// Gives up the claim of [`reserve_port`].
pub(crate) fn release_port(port: u16) {
    let file = port_registry().join(port.to_string());
    let ours =
        fs::read_to_string(&file).is_ok_and(|pid| pid.trim() == std::process::id().to_string());
    if ours {
        let _ = fs::remove_file(&file);
    }
    RESERVED_PORTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&port);
}

/// Whether process `pid` exists (always `true` where there is no `/proc` to ask).
fn process_alive(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Spawns redis-server on `port` (logging to `dir/redis.log`) and waits until it answers.
fn spawn_ready(binary: &Path, port: u16, dir: &Path, extra: &[String]) -> io::Result<Process> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("redis.log"))?;
    let child = Command::new(binary)
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--protected-mode", "no"])
        .args(["--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let mut process = Process(child);
    wait_ready(&mut process.0, port, dir)?;
    Ok(process)
}

/// Waits until `child` answers `PING` on `port`, and checks that the answering server is
/// `child` (`INFO server` → `process_id`), not someone else's that holds the port.
fn wait_ready(child: &mut Child, port: u16, dir: &Path) -> io::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "redis-server on port {port} exited ({status}); log:\n{}",
                    log_tail(dir, 5)
                ),
            ));
        }
        if ping_port(port) {
            let pid = server_pid(port)?;
            if pid == child.id() {
                return Ok(());
            }
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("port {port} is answered by another redis-server (pid {pid})"),
            ));
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "redis-server on port {port} did not answer PING within {START_TIMEOUT:?}; log:\n{}",
                    log_tail(dir, 5)
                ),
            ));
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Starts the server again on `port`, retrying for a moment in case the port is briefly taken.
fn respawn(binary: &Path, port: u16, dir: &Path, extra: &[String]) -> Process {
    let mut last_err = None;
    for _ in 0..3 {
        match spawn_ready(binary, port, dir, extra) {
            Ok(child) => return child,
            Err(err) => last_err = Some(err),
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "redis-server did not come back on port {port}: {}",
        last_err.expect("three attempts")
    );
}

/// Kills `process`, reaps it, and waits until `port` can be bound again.
fn kill_and_wait(process: Process, port: u16) {
    drop(process);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "port {port} still taken {STOP_TIMEOUT:?} after redis-server was killed"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Whether something on 127.0.0.1:`port` answers an inline `PING` with `+PONG`.
fn ping_port(port: u16) -> bool {
    let attempt = || -> io::Result<bool> {
        let mut stream = connect(port, Duration::from_millis(200))?;
        stream.write_all(b"PING\r\n")?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line.trim_end() == "+PONG")
    };
    attempt().unwrap_or(false)
}

/// The `process_id` that the server on `port` reports in `INFO server`.
fn server_pid(port: u16) -> io::Result<u32> {
    let info = command_port(port, &["INFO", "server"])?
        .text()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "INFO: not a bulk reply"))?;
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "INFO: no process_id"))
}

/// Connects to 127.0.0.1:`port` with read and write timeouts.
fn connect(port: u16, connect_timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        connect_timeout,
    )?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends one command (a RESP array of bulk strings) and reads one reply.
pub(crate) fn command_port<S: AsRef<str>>(port: u16, args: &[S]) -> io::Result<Reply> {
    let mut stream = connect(port, IO_TIMEOUT)?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref().as_bytes();
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg);
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request)?;
    read_reply(&mut BufReader::new(stream))
}

/// Reads one RESP2 reply.
fn read_reply(reader: &mut impl BufRead) -> io::Result<Reply> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a reply",
        ));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    let number = || -> io::Result<i64> {
        rest.parse()
            .map_err(|_| invalid(format!("bad number in {line:?}")))
    };
    match kind {
        "+" => Ok(Reply::Status(rest.to_string())),
        "-" => Ok(Reply::Error(rest.to_string())),
        ":" => Ok(Reply::Integer(number()?)),
        "$" => match usize::try_from(number()?) {
            Err(_) => Ok(Reply::Bulk(None)),
            Ok(len) => {
                let mut data = vec![0; len + 2];
                reader.read_exact(&mut data)?;
                data.truncate(len);
                Ok(Reply::Bulk(Some(data)))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Ok(Reply::Array(None)),
            Ok(len) => (0..len)
                .map(|_| read_reply(reader))
                .collect::<io::Result<_>>()
                .map(|items| Reply::Array(Some(items))),
        },
        _ => Err(invalid(format!("unexpected reply line {line:?}"))),
    }
}

/// The last `lines` lines of the server log in `dir`.
fn log_tail(dir: &Path, lines: usize) -> String {
    fs::read_to_string(dir.join("redis.log"))
        .map(|log| tail(&log, lines))
        .unwrap_or_else(|err| format!("(no log: {err})"))
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
