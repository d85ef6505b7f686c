//! `redis-server`s as managed Redis runs them: TLS (a certificate authority and a server
//! certificate for 127.0.0.1 made at test time with the `openssl` command) and ACL users.
//!
//! A TLS server also keeps its plain port for the harness's own raw-TCP client
//! ([`RedisServer::command`], [`RedisServer::ping`]); the store under test connects to
//! [`TlsServer::url`] (`rediss://`).

use std::{
    fs, io,
    ops::{Deref, DerefMut},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use super::{join, pick_port, redis_server_binary, release_port, skip_unless_found, RedisServer};

/// An ACL user: `redis-server --user NAME on >PASSWORD ~* &* +@all`.
#[derive(Clone, Copy, Debug)]
pub struct User<'a> {
    /// The user name.
    pub name: &'a str,
    /// Its password.
    pub password: &'a str,
}

impl User<'_> {
    fn args(&self) -> Vec<String> {
        vec![
            "--user".into(),
            self.name.into(),
            "on".into(),
            format!(">{}", self.password),
            "~*".into(),
            "&*".into(),
            "+@all".into(),
        ]
    }
}

/// A [`RedisServer`] with a TLS port (and maybe an ACL user). Derefs to the server (its plain
/// port, for the harness).
#[derive(Debug)]
pub struct TlsServer {
    server: RedisServer,
    tls_port: u16,
    ca_pem: Vec<u8>,
}

impl TlsServer {
    /// `rediss://127.0.0.1:TLS_PORT`, with `user:password@` when given.
    pub fn url(&self, user: Option<User<'_>>) -> String {
        let auth = user.map_or(String::new(), |u| format!("{}:{}@", u.name, u.password));
        format!("rediss://{auth}127.0.0.1:{}", self.tls_port)
    }

    /// The PEM certificate of the authority that signed the server's certificate.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }
}

impl Deref for TlsServer {
    type Target = RedisServer;
    fn deref(&self) -> &RedisServer {
        &self.server
    }
}

impl DerefMut for TlsServer {
    fn deref_mut(&mut self) -> &mut RedisServer {
        &mut self.server
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        release_port(self.tls_port);
    }
}

/// Starts a TLS server (with `user`, when given) for `test_name`, or skips the test as
/// [`start_or_skip`](super::start_or_skip) does; also skips (or panics, under
/// `TOWER_RELIABILITY_REQUIRE_REDIS=1`) when `openssl` is missing.
pub async fn start_tls_or_skip(test_name: &str, user: Option<User<'_>>) -> Option<TlsServer> {
    let binary = join(tokio::task::spawn_blocking(redis_server_binary)).await;
    let binary = skip_unless_found(test_name, binary)?;
    let user_args = user.map(|u| u.args()).unwrap_or_default();
    let name = test_name.to_owned();
    Some(
        join(tokio::task::spawn_blocking(move || {
            start_tls(&name, binary, user_args)
        }))
        .await,
    )
}

/// Starts a plain (no TLS) server with the ACL `user`, or skips.
pub async fn start_with_user_or_skip(test_name: &str, user: User<'_>) -> Option<RedisServer> {
    let binary = join(tokio::task::spawn_blocking(redis_server_binary)).await;
    let binary = skip_unless_found(test_name, binary)?;
    let args = user.args();
    let name = test_name.to_owned();
    Some(
        join(tokio::task::spawn_blocking(move || {
            RedisServer::start_blocking_with_args(binary, |_, _| Ok(args.clone()))
                .unwrap_or_else(|err| panic!("{name}: could not start redis-server: {err}"))
        }))
        .await,
    )
}

fn start_tls(test_name: &str, binary: PathBuf, user_args: Vec<String>) -> TlsServer {
    let tls_port = pick_port().unwrap_or_else(|err| panic!("{test_name}: no free port: {err}"));
    let mut ca_pem = Vec::new();
    let server = RedisServer::start_blocking_with_args(binary, |_, dir| {
        let certs = make_certificates(dir)?;
        ca_pem = fs::read(&certs.ca)?;
        let mut args = vec![
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            path(&certs.cert),
            "--tls-key-file".to_owned(),
            path(&certs.key),
            "--tls-ca-cert-file".to_owned(),
            path(&certs.ca),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        args.extend(user_args.iter().cloned());
        Ok(args)
    });
    match server {
        Ok(server) => TlsServer {
            server,
            tls_port,
            ca_pem,
        },
        Err(err) => {
            release_port(tls_port);
            panic!("{test_name}: could not start a TLS redis-server: {err}")
        }
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The files [`make_certificates`] writes.
pub struct Certificates {
    /// The authority's certificate (PEM).
    pub ca: PathBuf,
    /// The server's certificate for 127.0.0.1 and localhost (PEM), signed by the authority.
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
}

/// Makes a throwaway certificate authority and a server certificate for `127.0.0.1` /
/// `localhost` in `dir`, with the `openssl` command (one day of validity, P-256 keys).
pub fn make_certificates(dir: &Path) -> io::Result<Certificates> {
    let file = |name: &str| dir.join(name);
    let certs = Certificates {
        ca: file("ca.pem"),
        cert: file("server.pem"),
        key: file("server.key"),
    };
    let ca_key = file("ca.key");
    let csr = file("server.csr");
    let ext = file("server.ext");
    fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )?;
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    openssl(
        &[
            &["req", "-x509", "-nodes"][..],
            &ec[..],
            &["-days", "1", "-subj", "/CN=tower-reliability test CA"],
        ]
        .concat(),
        &[("-keyout", &ca_key), ("-out", &certs.ca)],
    )?;
    openssl(
        &[&["req", "-nodes"][..], &ec[..], &["-subj", "/CN=127.0.0.1"]].concat(),
        &[("-keyout", &certs.key), ("-out", &csr)],
    )?;
    openssl(
        &["x509", "-req", "-days", "1", "-CAcreateserial"],
        &[
            ("-in", &csr),
            ("-CA", &certs.ca),
            ("-CAkey", &ca_key),
            ("-extfile", &ext),
            ("-out", &certs.cert),
        ],
    )?;
    Ok(certs)
}

fn openssl(args: &[&str], files: &[(&str, &Path)]) -> io::Result<()> {
    let mut command = Command::new("openssl");
    command.args(args);
    for (flag, file) in files {
        command.arg(flag).arg(file);
    }
    let out = command.stdin(Stdio::null()).output().map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("could not run openssl (is it installed?): {err}"),
        )
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
