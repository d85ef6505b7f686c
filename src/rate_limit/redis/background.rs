//! The background task of a [`RedisStore`](super::RedisStore): one atomic script per sync,
//! bounded in time; on failure the process keeps its local state and says so.

use std::{sync::Arc, time::Duration};

use redis::Script;
use tokio::time::{Instant, MissedTickBehavior};

use super::{
    connection::{Connection, Endpoint},
    Link, RedisConfig,
};
use crate::{
    observe,
    rate_limit::{
        adaptive::Curve,
        local::{FleetNews, Learned},
        LocalStore, Scope, MAX_SCOPES,
    },
};
use std::{collections::HashMap, sync::atomic::Ordering};

/// How long the keys live after the last sync of any process.
const KEY_TTL: Duration = Duration::from_secs(600);

/// The least weight of a process in the fleet's shares, as a part of an even share: an idle
/// process paces at about a tenth of `1 / N` of the fleet's rate until its demand shows.
const SHARE_FLOOR: f64 = 0.1;

/// How fast the published demand follows the arrivals: an exponential average over about
/// this long.
const DEMAND_WINDOW: Duration = Duration::from_secs(1);

/// This process's demand: new requests per second (sent or not), decayed over
/// [`DEMAND_WINDOW`].
#[derive(Debug)]
struct Demand {
    arrivals: u64,
    at: Instant,
    rate: f64,
}

impl Demand {
    fn new(now: Instant) -> Self {
        Demand {
            arrivals: 0,
            at: now,
            rate: 0.0,
        }
    }

    /// The demand at `now`, with `arrivals` new requests so far.
    fn update(&mut self, now: Instant, arrivals: u64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        if elapsed > 0.0 {
            let current = arrivals.saturating_sub(self.arrivals) as f64 / elapsed;
            let weight = 1.0 - (-elapsed / DEMAND_WINDOW.as_secs_f64()).exp();
            self.rate += weight * (current - self.rate);
            self.arrivals = arrivals;
            self.at = now;
        }
        if self.rate.is_finite() {
            self.rate.max(0.0)
        } else {
            0.0
        }
    }
}

/// What this process tells the fleet about one scope.
#[derive(Debug, Clone, Default, PartialEq)]
struct Update {
    closed_until: Option<Instant>,
    curve: Option<Curve>,
}

/// A scope's tag in the fleet's hash: `""` for the client-wide scope, `":name"` for `name`.
fn tag(scope: &Scope) -> String {
    scope
        .name()
        .map_or_else(String::new, |name| format!(":{name}"))
}

/// The scope of a tag, if it is one.
fn scope_of(tag: &str) -> Option<Scope> {
    if tag.is_empty() {
        return Some(Scope::global());
    }
    tag.strip_prefix(':').map(Scope::named)
}

/// What to tell the fleet: the closures learned per scope and every scope's own cut, at most
/// [`MAX_SCOPES`] scopes (both come bounded).
fn updates(pending: &HashMap<Scope, Learned>, own: Vec<(Scope, Curve)>) -> HashMap<Scope, Update> {
    let mut updates: HashMap<Scope, Update> = HashMap::new();
    for (scope, learned) in pending {
        if let Some(until) = learned.closed_until {
            updates.entry(scope.clone()).or_default().closed_until = Some(until);
        }
    }
    for (scope, curve) in own {
        if updates.len() < MAX_SCOPES || updates.contains_key(&scope) {
            updates.entry(scope).or_default().curve = Some(curve);
        }
    }
    updates
}

/// What one sync read back: the live members, this process's share, and each scope the
/// fleet has something to share about.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    members: u32,
    share: f64,
    scopes: Vec<FleetNews>,
}

/// Why a sync failed.
#[derive(Debug)]
enum SyncError {
    Redis(redis::RedisError),
    TimedOut(Duration),
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // A single-server store pointed at a cluster node that does not hold the slot.
            SyncError::Redis(e) if e.redirect_node().is_some() => write!(
                f,
                "{e} (this Redis is a node of a Redis Cluster: use RedisConfig::with_cluster(true))"
            ),
            SyncError::Redis(e) => write!(f, "{e}"),
            SyncError::TimedOut(limit) => write!(f, "no answer within {limit:?}"),
        }
    }
}

struct Syncer {
    endpoint: Endpoint,
    config: RedisConfig,
    script: Script,
    member: String,
    gate_key: String,
    members_key: String,
    demand_key: String,
    connection: Option<Connection>,
}

/// Marks the store unshared when the task ends (aborted, or its runtime shut down).
struct Unshare(Arc<Link>);

impl Drop for Unshare {
    fn drop(&mut self) {
        self.0.shared.store(false, Ordering::Release);
    }
}

pub(super) async fn run(
    endpoint: Endpoint,
    config: RedisConfig,
    local: Arc<LocalStore>,
    link: Arc<Link>,
) {
    let _unshare = Unshare(link.clone());
    let member = format!("{}-{:016x}", std::process::id(), fastrand::u64(..));
    let prefix = config.prefix.clone();
    let mut syncer = Syncer {
        endpoint,
        script: Script::new(include_str!("fleet.lua")),
        member,
        gate_key: format!("{{{prefix}}}:gate"),
        members_key: format!("{{{prefix}}}:members"),
        demand_key: format!("{{{prefix}}}:demand"),
        connection: None,
        config,
    };
    let interval_every = syncer.config.sync_interval.max(Duration::from_millis(1));
    let mut interval = tokio::time::interval(interval_every);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing_since: Option<Instant> = None;
    let mut fallen_back = false;
    let mut demand = Demand::new(Instant::now());
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = link.wake.notified() => {}
        }
        let pending = link.take();
        let now = Instant::now();
        let offered = demand.update(now, link.arrivals.load(Ordering::Relaxed));
        let updates = updates(&pending, local.own_curves(now));
        match syncer.sync(&updates, offered).await {
            Ok(reply) => {
                let now = Instant::now();
                local.adopt(now, reply.share, &reply.scopes);
                link.share.store(reply.share.to_bits(), Ordering::Release);
                link.members.store(reply.members, Ordering::Release);
                link.shared.store(true, Ordering::Release);
                if fallen_back {
                    observe::fleet_store_recovered();
                }
                failing_since = None;
                fallen_back = false;
            }
            Err(error) => {
                // Not lost: published with the next sync that gets through.
                for (scope, learned) in pending {
                    link.merge(&scope, learned);
                }
                let keep = match (&syncer.connection, &error) {
                    (Some(connection), SyncError::Redis(e)) => connection.survives(e),
                    (Some(Connection::Cluster(_)), SyncError::TimedOut(_)) => true,
                    _ => false,
                };
                if !keep {
                    syncer.connection = None;
                }
                let now = Instant::now();
                let since = *failing_since.get_or_insert(now);
                if !fallen_back
                    && now.saturating_duration_since(since) >= syncer.config.fallback_after
                {
                    fallen_back = true;
                    link.shared.store(false, Ordering::Release);
                    // Alone now: this process paces at the whole rate it learns.
                    local.adopt(now, 1.0, &[]);
                    link.share.store(1.0f64.to_bits(), Ordering::Release);
                    observe::fleet_store_fallback(&error);
                }
            }
        }
    }
}

impl Syncer {
    /// One sync, connecting first if needed, within the configured time limit.
    async fn sync(
        &mut self,
        updates: &HashMap<Scope, Update>,
        demand: f64,
    ) -> Result<Reply, SyncError> {
        let limit = self.config.timeout;
        match tokio::time::timeout(limit, self.exchange(updates, demand)).await {
            Ok(result) => result.map_err(SyncError::Redis),
            Err(_) => Err(SyncError::TimedOut(limit)),
        }
    }

    async fn exchange(
        &mut self,
        updates: &HashMap<Scope, Update>,
        demand: f64,
    ) -> redis::RedisResult<Reply> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let connection = self.endpoint.connect(self.config.timeout).await?;
                self.connection.insert(connection)
            }
        };
        let now = Instant::now();
        let gate = &self.config.gate;
        let wave = millis(self.config.sync_interval * 3).max(200);
        let mut invocation = self.script.key(&self.gate_key);
        invocation
            .key(&self.members_key)
            .key(&self.demand_key)
            .arg(&self.member)
            .arg(millis(self.config.effective_member_ttl()).max(1))
            .arg(demand)
            .arg(SHARE_FLOOR)
            .arg(wave)
            .arg(millis(KEY_TTL))
            .arg(millis(gate.max_hold).max(1))
            .arg(millis(gate.forget_after).max(1))
            .arg(MAX_SCOPES);
        for (scope, update) in updates {
            let close_for = update
                .closed_until
                .map_or(0, |until| millis(until.saturating_duration_since(now)));
            // The cut is this process's own curve as it is now (not what was pending when it
            // was cut): with its age and identity, so a retried sync is the same cut, and a
            // forgotten one is not published.
            let own = update
                .curve
                .filter(|c| c.w_max.is_finite() && c.w_max > 0.0);
            invocation
                .arg(tag(scope))
                .arg(close_for)
                .arg(own.map_or(0.0, |c| c.w_max))
                .arg(own.map_or(0, |c| millis(c.since_cut)))
                .arg(own.map_or(0, |c| c.id).to_string())
                .arg(own.map_or(0, |c| millis(c.plateau)));
        }
        let reply: Vec<redis::Value> = connection.invoke(&invocation).await?;
        Ok(Reply::read(&reply))
    }
}

impl Reply {
    /// Reads the script's answer; anything odd reads as "nothing shared" (a scope whose
    /// fields do not parse shares nothing).
    fn read(values: &[redis::Value]) -> Reply {
        let members = values
            .first()
            .and_then(integer)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1)
            .max(1);
        let share = values
            .get(1)
            .and_then(text)
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(1.0 / f64::from(members), |s| s.min(1.0));
        let scopes = values
            .get(2..)
            .unwrap_or_default()
            .chunks_exact(6)
            .filter_map(|fields| {
                let scope = scope_of(&text(&fields[0])?)?;
                let closed_for = integer(&fields[1]).unwrap_or(0);
                let w_max = text(&fields[2])?.trim().parse::<f64>().unwrap_or(0.0);
                let since_cut = integer(&fields[3]).unwrap_or(-1);
                let cut_id = text(&fields[4]).unwrap_or_default();
                let plateau = integer(&fields[5]).unwrap_or(0);
                Some(FleetNews {
                    scope,
                    closed_for: Some(Duration::from_millis(
                        u64::try_from(closed_for).unwrap_or(0),
                    )),
                    curve: (since_cut >= 0 && w_max.is_finite() && w_max > 0.0).then(|| Curve {
                        w_max,
                        since_cut: Duration::from_millis(since_cut.unsigned_abs()),
                        plateau: Duration::from_millis(u64::try_from(plateau).unwrap_or(0)),
                        id: cut_id.trim().parse::<u64>().unwrap_or(0),
                    }),
                })
            })
            .collect();
        Reply {
            members,
            share,
            scopes,
        }
    }
}

/// An integer reply (or a string holding one).
fn integer(value: &redis::Value) -> Option<i64> {
    match value {
        redis::Value::Int(n) => Some(*n),
        other => text(other)?.trim().parse().ok(),
    }
}

/// A string reply.
fn text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        redis::Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn odd_replies_share_nothing_rather_than_fail() {
        let reply = Reply::read(&[]);
        assert_eq!((reply.members, reply.share), (1, 1.0));
        assert!(reply.scopes.is_empty());
        let reply = Reply::read(&[Value::Int(4), bulk("nan"), bulk(""), Value::Int(5)]);
        assert_eq!((reply.members, reply.share), (4, 0.25));
        assert!(reply.scopes.is_empty(), "a partial scope is no scope");
        let odd = [
            Value::Int(2),
            bulk("0.5"),
            bulk(""),
            Value::Int(-5),
            bulk("nan"),
            Value::Int(5),
            bulk(""),
            Value::Int(-3),
        ];
        let reply = Reply::read(&odd);
        assert_eq!(
            reply.scopes,
            vec![FleetNews {
                scope: Scope::global(),
                closed_for: Some(Duration::ZERO),
                curve: None,
            }]
        );
        let reply = Reply::read(&[
            Value::Int(4),
            bulk("0.75"),
            bulk(":m-fast"),
            Value::Int(1500),
            bulk("40"),
            Value::Int(250),
            bulk("9"),
            Value::Int(10),
        ]);
        assert_eq!(reply.share, 0.75);
        assert_eq!(
            reply.scopes,
            vec![FleetNews {
                scope: Scope::named("m-fast"),
                closed_for: Some(Duration::from_millis(1500)),
                curve: Some(Curve {
                    w_max: 40.0,
                    since_cut: Duration::from_millis(250),
                    plateau: Duration::from_millis(10),
                    id: 9,
                }),
            }]
        );
    }

    #[test]
    fn tags_name_scopes_both_ways() {
        for scope in [Scope::global(), Scope::named(""), Scope::named("a:b")] {
            assert_eq!(scope_of(&tag(&scope)), Some(scope));
        }
        for odd in ["5", "m-fast"] {
            assert_eq!(scope_of(odd), None);
        }
    }

    #[test]
    fn demand_follows_arrivals_and_decays() {
        let t0 = Instant::now();
        let mut demand = Demand::new(t0);
        let mut rate = 0.0;
        for i in 1..=30 {
            rate = demand.update(t0 + Duration::from_millis(100 * i), 30 * i);
        }
        assert!((rate - 300.0).abs() < 20.0, "{rate}");
        let idle = demand.update(t0 + Duration::from_secs(8), 900);
        assert!(idle < 5.0, "{idle}");
    }
}
