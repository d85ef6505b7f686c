//! [`RedisConfig`]: where a fleet's shared rate-limit state lives, and how often to sync it.

use std::{fmt, time::Duration};

use super::super::GateConfig;

/// Where the fleet's state lives, and how often to sync it.
///
/// Like every configuration value of this crate, it is built with [`new`](Self::new) from
/// what it needs (the URL and the key prefix), changed with `with_*` setters and read back
/// with getters named after what they return:
///
/// ```
/// use std::time::Duration;
/// use tower_reliability::rate_limit::{GateConfig, RedisConfig};
///
/// let config = RedisConfig::new("redis://127.0.0.1:6379/0", "tower-reliability:prod")
///     .with_sync_interval(Duration::from_millis(50))
///     .with_gate(GateConfig::default().with_max_hold(Duration::from_secs(30)));
/// assert_eq!(config.sync_interval(), Duration::from_millis(50));
/// ```
///
/// Its `Debug` output hides the URL's password.
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) url: String,
    pub(crate) cluster: bool,
    pub(crate) ca_cert: Option<Vec<u8>>,
    pub(crate) prefix: String,
    pub(crate) sync_interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) fallback_after: Duration,
    pub(crate) member_ttl: Duration,
    pub(crate) gate: GateConfig,
}

impl RedisConfig {
    /// The fleet at `url` under the key `prefix` (see [`url`](Self::url) and
    /// [`prefix`](Self::prefix)), with the defaults each getter names.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            cluster: false,
            ca_cert: None,
            prefix: prefix.into(),
            sync_interval: Duration::from_millis(100),
            timeout: Duration::from_millis(250),
            fallback_after: Duration::from_secs(1),
            member_ttl: Duration::from_secs(3),
            gate: GateConfig::default(),
        }
    }

    /// Sets whether [`url`](Self::url) is a node of a Redis Cluster. See
    /// [`cluster`](Self::cluster).
    pub const fn with_cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// Trusts these PEM certificates for `rediss://` instead of the system's roots. See
    /// [`ca_cert`](Self::ca_cert).
    pub fn with_ca_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_cert = Some(pem.into());
        self
    }

    /// Sets how often the background task syncs. See [`sync_interval`](Self::sync_interval).
    pub const fn with_sync_interval(mut self, sync_interval: Duration) -> Self {
        self.sync_interval = sync_interval;
        self
    }

    /// Sets the time limit of one sync. See [`timeout`](Self::timeout).
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long syncs may fail before the process goes it alone. See
    /// [`fallback_after`](Self::fallback_after).
    pub const fn with_fallback_after(mut self, fallback_after: Duration) -> Self {
        self.fallback_after = fallback_after;
        self
    }

    /// Sets how long a silent process is still counted in the fleet. See
    /// [`member_ttl`](Self::member_ttl).
    pub const fn with_member_ttl(mut self, member_ttl: Duration) -> Self {
        self.member_ttl = member_ttl;
        self
    }

    /// Sets the in-process gate's knobs. See [`gate`](Self::gate).
    pub const fn with_gate(mut self, gate: GateConfig) -> Self {
        self.gate = gate;
        self
    }

    /// The Redis URL, for example `redis://127.0.0.1:6379/0`, `rediss://` for TLS (rustls;
    /// the system's roots, or [`ca_cert`](Self::ca_cert)), with `user:password@` for an ACL
    /// user (the password is printed nowhere). With [`cluster`](Self::cluster), any node of
    /// the cluster.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether [`url`](Self::url) is a node of a Redis Cluster (default `false`): the store
    /// finds the node that holds the prefix's slot (both keys are in one slot) and follows it
    /// through resharding, failovers and restarts.
    pub const fn cluster(&self) -> bool {
        self.cluster
    }

    /// PEM certificates to trust for `rediss://` instead of the system's roots (a managed
    /// Redis's own authority, a self-signed server). `None` (default): the system's roots.
    pub fn ca_cert(&self) -> Option<&[u8]> {
        self.ca_cert.as_deref()
    }

    /// The key prefix: every process with the same prefix shares one state. Use one per API
    /// key (account), for example `"tower-reliability:fireworks:prod"`. The keys are
    /// `{prefix}:gate` (every scope's state), `{prefix}:members` and `{prefix}:demand`, all in
    /// the prefix's hash slot. Must not be empty nor contain `{` or `}`
    /// ([`RedisStore::spawn`](super::RedisStore::spawn) refuses it).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How often the background task syncs (default 100 ms). A throttle seen by this process
    /// is published at once, not at the next tick.
    pub const fn sync_interval(&self) -> Duration {
        self.sync_interval
    }

    /// The longest one sync (connecting included) may take before it counts as failed
    /// (default 250 ms).
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How long syncs may fail before the process stops counting on the fleet's state: its
    /// share goes back to the whole rate, and a `warn` event says so (default 1 s).
    pub const fn fallback_after(&self) -> Duration {
        self.fallback_after
    }

    /// A process not heard from for this long is no longer counted in the fleet (default 3 s).
    /// The store never uses less than three sync intervals plus two timeouts: a live process
    /// is never dropped between two of its syncs. This is the value set, before that floor.
    pub const fn member_ttl(&self) -> Duration {
        self.member_ttl
    }

    /// The in-process gate's knobs (default [`GateConfig::default`]).
    pub const fn gate(&self) -> GateConfig {
        self.gate
    }

    /// The member TTL used: [`member_ttl`](Self::member_ttl), raised to outlast three sync
    /// intervals and two timeouts.
    pub(crate) fn effective_member_ttl(&self) -> Duration {
        let floor = self
            .sync_interval
            .saturating_mul(3)
            .saturating_add(self.timeout.saturating_mul(2));
        self.member_ttl.max(floor)
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact(&self.url))
            .field("cluster", &self.cluster)
            .field("ca_cert", &self.ca_cert.as_ref().map(|pem| pem.len()))
            .field("prefix", &self.prefix)
            .field("sync_interval", &self.sync_interval)
            .field("timeout", &self.timeout)
            .field("fallback_after", &self.fallback_after)
            .field("member_ttl", &self.member_ttl)
            .field("gate", &self.gate)
            .finish()
    }
}

/// The URL with any password (`user:password@`, or a bare `:password@`) replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user = rest[..at].split_once(':').map_or("", |(user, _)| user);
    format!("{scheme}://{user}:***{}", &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_round_trip_through_the_getters() {
        let ms = Duration::from_millis;
        let gate = GateConfig::default().with_max_hold(ms(1));
        let c = RedisConfig::new("redis://127.0.0.1:6379/0", "tr:test")
            .with_cluster(true)
            .with_ca_cert(b"-----BEGIN CERTIFICATE-----".to_vec())
            .with_sync_interval(ms(2))
            .with_timeout(ms(3))
            .with_fallback_after(ms(4))
            .with_member_ttl(ms(5))
            .with_gate(gate);
        assert_eq!(c.url(), "redis://127.0.0.1:6379/0");
        assert_eq!(c.prefix(), "tr:test");
        assert!(c.cluster());
        assert_eq!(c.ca_cert(), Some(&b"-----BEGIN CERTIFICATE-----"[..]));
        assert_eq!(c.sync_interval(), ms(2));
        assert_eq!(c.timeout(), ms(3));
        assert_eq!(c.fallback_after(), ms(4));
        assert_eq!(c.member_ttl(), ms(5));
        assert_eq!(c.gate(), gate);
    }

    #[test]
    fn the_defaults_are_unchanged() {
        let c = RedisConfig::new("redis://h", "p");
        assert!(!c.cluster());
        assert_eq!(c.ca_cert(), None);
        assert_eq!(c.sync_interval(), Duration::from_millis(100));
        assert_eq!(c.timeout(), Duration::from_millis(250));
        assert_eq!(c.fallback_after(), Duration::from_secs(1));
        assert_eq!(c.member_ttl(), Duration::from_secs(3));
        assert_eq!(c.gate(), GateConfig::default());
    }
}
