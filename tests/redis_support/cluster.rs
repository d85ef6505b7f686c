//! A real 3-master Redis Cluster on 127.0.0.1 (no replicas): three `redis-server
//! --cluster-enabled yes` children of the test, joined with `redis-cli --cluster create
//! ... --cluster-replicas 0 --cluster-yes`. A node can be [restarted](RedisCluster::restart)
//! mid-test: it comes back from its `nodes.conf` with its slots (and no data).
//!
//! `--cluster-require-full-coverage no`: while one master is down, the other two keep serving
//! their slots, as a managed cluster does while a node is replaced.

use std::{
    io,
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::{
    join, pick_port, redis_server_binary, release_port, skip_unless_found, RedisServer, Reply,
};

/// How long the cluster has to become healthy after a start or restart.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Three masters holding all 16384 slots between them.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    bus_ports: Vec<u16>,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for port in &self.bus_ports {
            release_port(*port);
        }
    }
}

/// Starts a cluster for `test_name`, or skips the test as
/// [`start_or_skip`](super::start_or_skip) does.
pub async fn start_cluster_or_skip(test_name: &str) -> Option<RedisCluster> {
    let binary = join(tokio::task::spawn_blocking(redis_server_binary)).await;
    let binary = skip_unless_found(test_name, binary)?;
    let name = test_name.to_owned();
    Some(
        join(tokio::task::spawn_blocking(move || {
            RedisCluster::start_blocking(binary)
                .unwrap_or_else(|err| panic!("{name}: could not start a Redis Cluster: {err}"))
        }))
        .await,
    )
}

impl RedisCluster {
    fn start_blocking(binary: PathBuf) -> io::Result<Self> {
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            bus_ports: Vec::new(),
        };
        for _ in 0..3 {
            let bus = pick_port()?;
            cluster.bus_ports.push(bus);
            let node = RedisServer::start_blocking_with_args(binary.clone(), |_, _| {
                Ok([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-require-full-coverage",
                    "no",
                    "--cluster-port",
                    &bus.to_string(),
                ]
                .map(str::to_owned)
                .to_vec())
            })?;
            cluster.nodes.push(node);
        }
        let cli = binary.with_file_name("redis-cli");
        let mut create = Command::new(if cli.exists() {
            cli
        } else {
            "redis-cli".into()
        });
        create.args(["--cluster", "create"]);
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        cluster.wait_healthy_blocking()?;
        Ok(cluster)
    }

    /// A seed URL: `redis://127.0.0.1:PORT` of node `i`.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// The nodes (for raw commands: a key's commands must go to the node holding its slot).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The index of the node that holds `key`'s slot.
    pub fn node_of(&self, key: &str) -> usize {
        let slot = match self.nodes[0].command_blocking(&["CLUSTER", "KEYSLOT", key]) {
            Ok(Reply::Integer(slot)) => slot,
            other => panic!("CLUSTER KEYSLOT: {other:?}"),
        };
        let Ok(Reply::Array(Some(ranges))) = self.nodes[0].command_blocking(&["CLUSTER", "SLOTS"])
        else {
            panic!("CLUSTER SLOTS");
        };
        for range in ranges {
            let Reply::Array(Some(parts)) = range else {
                continue;
            };
            let (
                Some(Reply::Integer(low)),
                Some(Reply::Integer(high)),
                Some(Reply::Array(Some(master))),
            ) = (parts.first(), parts.get(1), parts.get(2))
            else {
                continue;
            };
            if (*low..=*high).contains(&slot) {
                if let Some(Reply::Integer(port)) = master.get(1) {
                    if let Some(i) = self.nodes.iter().position(|n| i64::from(n.port()) == *port) {
                        return i;
                    }
                }
            }
        }
        panic!("no node holds slot {slot} of {key}");
    }

    /// Kills node `i` (SIGKILL), starts it again on its port from its `nodes.conf`, and waits
    /// until the whole cluster is healthy again.
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].restart().await;
        let this: &RedisCluster = self;
        let ports: Vec<u16> = this.nodes.iter().map(RedisServer::port).collect();
        join(tokio::task::spawn_blocking(move || wait_healthy(&ports)))
            .await
            .unwrap_or_else(|err| panic!("the cluster did not heal after a restart: {err}"));
    }

    /// Kills node `i`; [`restart`](Self::restart) brings it back.
    pub async fn stop(&mut self, i: usize) {
        self.nodes[i].stop().await;
    }

    fn wait_healthy_blocking(&self) -> io::Result<()> {
        let ports: Vec<u16> = self.nodes.iter().map(RedisServer::port).collect();
        wait_healthy(&ports)
    }
}

/// Waits until every node reports `cluster_state:ok` and sees three masters with slots.
fn wait_healthy(ports: &[u16]) -> io::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let healthy = ports.iter().all(|port| {
            super::command_port(*port, &["CLUSTER", "INFO"])
                .ok()
                .and_then(|r| r.text())
                .is_some_and(|info| {
                    info.contains("cluster_state:ok")
                        && info.contains("cluster_slots_ok:16384")
                        && info.contains("cluster_known_nodes:3")
                })
        });
        if healthy {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("cluster on {ports:?} not healthy within {READY_TIMEOUT:?}"),
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}
