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
    rate_limit::{adaptive::Curve, local::Learned, LocalStore},
};
use std::sync::atomic::Ordering;

/// How long the keys live after the last sync of any process.
const KEY_TTL: Duration = Duration::from_secs(600);

/// What one sync read back.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reply {
    closed_for: Duration,
    curve: Option<Curve>,
    members: u32,
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
                "{e} (this Redis is a node of a Redis Cluster: set RedisConfig::cluster)"
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
        connection: None,
        config,
    };
    let interval_every = syncer.config.sync_interval.max(Duration::from_millis(1));
    let mut interval = tokio::time::interval(interval_every);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing_since: Option<Instant> = None;
    let mut fallen_back = false;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = link.wake.notified() => {}
        }
        let pending = std::mem::take(
            &mut *link
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        match syncer.sync(pending, local.own_curve(Instant::now())).await {
            Ok(reply) => {
                let now = Instant::now();
                let share = 1.0 / f64::from(reply.members.max(1));
                local.adopt(now, Some(reply.closed_for), reply.curve, share);
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
                link.pending
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .merge(pending);
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
                    local.adopt(now, None, None, 1.0);
                    observe::fleet_store_fallback(&error);
                }
            }
        }
    }
}

impl Syncer {
    /// One sync, connecting first if needed, within the configured time limit.
    async fn sync(&mut self, pending: Learned, own: Option<Curve>) -> Result<Reply, SyncError> {
        let limit = self.config.timeout;
        match tokio::time::timeout(limit, self.exchange(pending, own)).await {
            Ok(result) => result.map_err(SyncError::Redis),
            Err(_) => Err(SyncError::TimedOut(limit)),
        }
    }

    async fn exchange(
        &mut self,
        pending: Learned,
        own: Option<Curve>,
    ) -> redis::RedisResult<Reply> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let connection = self.endpoint.connect(self.config.timeout).await?;
                self.connection.insert(connection)
            }
        };
        let now = Instant::now();
        let close_for = pending
            .closed_until
            .map_or(0, |until| millis(until.saturating_duration_since(now)));
        // The cut is this process's own curve as it is now (not what was pending when it was
        // cut): with its age and identity, so a retried sync is the same cut, and a forgotten
        // one is not published.
        let own = own.filter(|c| c.w_max.is_finite() && c.w_max > 0.0);
        let cut = own.map_or(0.0, |c| c.w_max);
        let age = own.map_or(0, |c| millis(c.since_cut));
        let id = own.map_or(0, |c| c.id);
        let plateau = own.map_or(0, |c| millis(c.plateau));
        let gate = &self.config.gate;
        let wave = millis(self.config.sync_interval * 3).max(200);
        let (closed_for, w_max, since_cut, members, cut_id, shared_plateau): (
            i64,
            String,
            i64,
            u32,
            String,
            i64,
        ) = connection
            .invoke(
                self.script
                    .key(&self.gate_key)
                    .key(&self.members_key)
                    .arg(&self.member)
                    .arg(millis(self.config.effective_member_ttl()).max(1))
                    .arg(close_for)
                    .arg(cut)
                    .arg(age)
                    .arg(id.to_string())
                    .arg(plateau)
                    .arg(wave)
                    .arg(millis(KEY_TTL))
                    .arg(millis(gate.max_hold).max(1))
                    .arg(millis(gate.forget_after).max(1)),
            )
            .await?;
        Ok(Reply::read(
            closed_for,
            &w_max,
            since_cut,
            members,
            &cut_id,
            shared_plateau,
        ))
    }
}

impl Reply {
    /// Reads the script's answer; anything odd reads as "nothing shared".
    fn read(
        closed_for: i64,
        w_max: &str,
        since_cut: i64,
        members: u32,
        cut_id: &str,
        plateau: i64,
    ) -> Reply {
        let w_max = w_max.trim().parse::<f64>().unwrap_or(0.0);
        let curve = (since_cut >= 0 && w_max.is_finite() && w_max > 0.0).then(|| Curve {
            w_max,
            since_cut: Duration::from_millis(since_cut.unsigned_abs()),
            plateau: Duration::from_millis(u64::try_from(plateau).unwrap_or(0)),
            id: cut_id.trim().parse::<u64>().unwrap_or(0),
        });
        Reply {
            closed_for: Duration::from_millis(u64::try_from(closed_for).unwrap_or(0)),
            curve,
            members: members.max(1),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_replies_share_nothing_rather_than_fail() {
        let reply = Reply::read(0, "nan", 5, 0, "", 0);
        assert_eq!(reply.curve, None);
        assert_eq!(reply.members, 1);
        assert_eq!(Reply::read(0, "12.5", -1, 2, "9", 0).curve, None);
        assert_eq!(
            Reply::read(-5, "12.5", 1, 2, "x", -3).closed_for,
            Duration::ZERO
        );
        let reply = Reply::read(1500, "40", 250, 4, "9", 10);
        assert_eq!(reply.closed_for, Duration::from_millis(1500));
        assert_eq!(
            reply.curve,
            Some(Curve {
                w_max: 40.0,
                since_cut: Duration::from_millis(250),
                plateau: Duration::from_millis(10),
                id: 9,
            })
        );
    }
}
