//! Where a [`RedisStore`](super::RedisStore) syncs: one server (or primary), or a Redis
//! Cluster; over TCP or TLS (`rediss://`, rustls), as the ACL user of the URL.

use std::time::Duration;

use redis::{
    aio::MultiplexedConnection,
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
    AsyncConnectionConfig, Client, FromRedisValue, RedisResult, ScriptInvocation, TlsCertificates,
};

use super::RedisConfig;

const PEM_CERTIFICATE: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// How to reach Redis (made once, at `spawn`: a bad URL is an error there).
pub(super) enum Endpoint {
    Single(Box<Client>),
    Cluster(Box<ClusterClient>),
}

/// An open connection.
pub(super) enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Endpoint {
    /// Parses the URL and TLS roots of `config`; connects to nothing yet.
    pub(super) fn new(config: &RedisConfig) -> RedisResult<Endpoint> {
        if let Some(pem) = &config.ca_cert {
            // An empty trust store would refuse every server, silently: refuse it here.
            if !pem
                .windows(PEM_CERTIFICATE.len())
                .any(|w| w == PEM_CERTIFICATE)
            {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "ca_cert holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                )));
            }
        }
        if config
            .url
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("rediss")
        {
            // rustls picks ring by itself while it is the only provider compiled in; when the
            // application also enables another (aws-lc-rs), it wants a process default, and
            // would panic in the sync task without one. Ring, unless one is set already.
            if redis_rustls::crypto::CryptoProvider::get_default().is_none() {
                let _ = redis_rustls::crypto::ring::default_provider().install_default();
            }
        }
        let certs = || TlsCertificates {
            client_tls: None,
            root_cert: config.ca_cert.clone(),
        };
        if config.cluster {
            let mut builder = ClusterClientBuilder::new(vec![config.url.as_str()])
                .connection_timeout(config.timeout)
                .response_timeout(config.timeout);
            if config.ca_cert.is_some() {
                builder = builder.certs(certs());
            }
            return builder.build().map(|c| Endpoint::Cluster(Box::new(c)));
        }
        let client = match config.ca_cert {
            Some(_) => Client::build_with_tls(config.url.as_str(), certs())?,
            None => Client::open(config.url.as_str())?,
        };
        Ok(Endpoint::Single(Box::new(client)))
    }

    /// Opens a connection, giving up on each step after `timeout`.
    pub(super) async fn connect(&self, timeout: Duration) -> RedisResult<Connection> {
        match self {
            Endpoint::Single(client) => {
                let limits = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                client
                    .get_multiplexed_async_connection_with_config(&limits)
                    .await
                    .map(Connection::Single)
            }
            Endpoint::Cluster(client) => {
                client.get_async_connection().await.map(Connection::Cluster)
            }
        }
    }
}

impl Connection {
    /// Runs the script (`EVALSHA`, and `EVAL` when Redis does not know it: after a restart).
    /// In a cluster, on the node that holds the keys' slot.
    pub(super) async fn invoke<T: FromRedisValue>(
        &mut self,
        invocation: &ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        match self {
            Connection::Single(connection) => invocation.invoke_async(connection).await,
            Connection::Cluster(connection) => invocation.invoke_async(connection).await,
        }
    }

    /// Whether to keep this connection after a failed sync. A single server's connection is
    /// dropped and made again; a cluster connection reconnects to its nodes and refreshes
    /// its slot map by itself (a restarted node is found again without a new seed), unless
    /// the error says it is broken for good.
    pub(super) fn survives(&self, error: &redis::RedisError) -> bool {
        match self {
            Connection::Single(_) => false,
            Connection::Cluster(_) => !error.is_unrecoverable_error(),
        }
    }
}
