//! A full-mesh cluster of nats-servers on loopback (see [`Cluster`]).
//!
//! Every port is picked by the server that binds it, so none can collide: nodes start one after
//! another, each with a route to every node started before it (which makes a full mesh), and
//! once a node is ready its config is rewritten with the route port it got, so a restart keeps it.
//! [`Cluster::start_jetstream`] gives every node JetStream with its own store directory inside
//! the node's temp dir (removed with it) and waits until the JetStream meta group has a leader.

use std::time::Duration;

use super::server::START_ATTEMPTS;
use super::wait::Deadline;
use super::{free_port, HarnessError, NatsServer};

/// The `cluster.name` the harness gives every cluster.
pub const CLUSTER_NAME: &str = "pbn-test";
/// How long a cluster may take to connect every route.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long JetStream may take to elect its meta leader once the routes are up.
const JETSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// The JetStream block of a node: its own store directory in its temp dir.
pub const JETSTREAM_BLOCK: &str = "jetstream {\n  store_dir: \"{{DIR}}/js\"\n}\n";

/// The config lines that make a node a member of the cluster: `server_name` `node-<index>` and a
/// `cluster` block listening on `port` (`-1`: picked by the server) with routes to `routes`.
fn cluster_block(index: usize, port: Option<u16>, routes: &[u16]) -> String {
    let routes: String =
        routes.iter().map(|port| format!("    \"nats-route://127.0.0.1:{port}\"\n")).collect();
    let port = port.map_or_else(|| "-1".to_owned(), |port| port.to_string());
    format!(
        "server_name: \"node-{index}\"\ncluster {{\n  name: \"{CLUSTER_NAME}\"\n  \
         listen: \"127.0.0.1:{port}\"\n  routes: [\n{routes}  ]\n}}\n"
    )
}

/// `n` nats-servers routed to each other; dropping it drops (kills) every node.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<NatsServer>,
}

impl Cluster {
    /// Starts `n` nodes whose configs are `config_fn(index)` followed by the node's cluster
    /// block, and waits until every route is connected.
    ///
    /// # Panics
    /// If a node does not start or the routes do not form within 30 s.
    pub async fn start(n: usize, config_fn: impl Fn(usize) -> String) -> Cluster {
        Self::try_start(n, config_fn).await.unwrap_or_else(|err| panic!("{err}"))
    }

    /// Like [`Cluster::start`], returning failures.
    pub async fn try_start(
        n: usize,
        config_fn: impl Fn(usize) -> String,
    ) -> Result<Cluster, HarnessError> {
        let mut nodes: Vec<NatsServer> = Vec::with_capacity(n);
        let mut route_ports = Vec::with_capacity(n);
        for index in 0..n {
            let config = |port| {
                format!("{}\n{}", config_fn(index), cluster_block(index, port, &route_ports))
            };
            let node = NatsServer::builder(&config(None)).try_start().await?;
            let port = node.cluster_port().ok_or_else(|| HarnessError::Monitor {
                url: node.monitoring_url(),
                reason: format!("node-{index} reported no route port"),
            })?;
            node.try_rewrite_config(&config(Some(port)))?;
            route_ports.push(port);
            nodes.push(node);
        }
        let cluster = Cluster { nodes };
        cluster.try_wait_for_routes(ROUTE_TIMEOUT).await?;
        Ok(cluster)
    }

    /// Like [`Cluster::start`], with JetStream on every node (each with its own store dir,
    /// removed with the node), waiting until every node knows the JetStream meta leader.
    ///
    /// A JetStream cluster needs every node, the first included, to start with routes, so the
    /// route ports are planned before the start ([`free_port`]) and every node gets the full
    /// mesh; a port taken meanwhile by another process means a retry with fresh ports.
    ///
    /// # Panics
    /// If a node does not start, or the routes or JetStream do not come up within 30 s each.
    pub async fn start_jetstream(n: usize, config_fn: impl Fn(usize) -> String) -> Cluster {
        let mut attempt = 1;
        let cluster = loop {
            let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
            match Self::try_start_planned(&ports, &config_fn).await {
                Err(HarnessError::PortInUse { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                Err(err) => panic!("{err}"),
                Ok(cluster) => break cluster,
            }
        };
        cluster.try_wait_for_jetstream(JETSTREAM_TIMEOUT).await.unwrap_or_else(|e| panic!("{e}"));
        cluster
    }

    /// Starts one JetStream node per route port in `ports`, each routed to all of them.
    async fn try_start_planned(
        ports: &[u16],
        config_fn: &impl Fn(usize) -> String,
    ) -> Result<Cluster, HarnessError> {
        let mut nodes = Vec::with_capacity(ports.len());
        for (index, port) in ports.iter().enumerate() {
            let block = cluster_block(index, Some(*port), ports);
            let config = format!("{}\n{JETSTREAM_BLOCK}\n{block}", config_fn(index));
            nodes.push(NatsServer::builder(&config).try_start().await?);
        }
        let cluster = Cluster { nodes };
        cluster.try_wait_for_routes(ROUTE_TIMEOUT).await?;
        Ok(cluster)
    }

    /// Waits until JetStream on every node is enabled and knows its meta leader.
    pub async fn try_wait_for_jetstream(&self, timeout: Duration) -> Result<(), HarnessError> {
        for node in &self.nodes {
            let http = node.http_port();
            pbn::natsd::wait_for(
                http,
                "jetstream meta leader",
                timeout,
                pbn::natsd::jetstream_ready,
            )
            .await
            .map_err(|e| HarnessError::Timeout { what: e.to_string(), timeout })?;
        }
        Ok(())
    }

    /// Node `index` (from 0).
    ///
    /// # Panics
    /// If there is no such node.
    pub fn node(&self, index: usize) -> &NatsServer {
        &self.nodes[index]
    }

    /// Node `index`, mutably (to stop or restart it).
    ///
    /// # Panics
    /// If there is no such node.
    pub fn node_mut(&mut self, index: usize) -> &mut NatsServer {
        &mut self.nodes[index]
    }

    /// All nodes, in index order.
    pub fn nodes(&self) -> &[NatsServer] {
        &self.nodes
    }

    /// The client URL of every node, in index order (for clients with failover).
    pub fn client_urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::client_url).collect()
    }

    /// How many distinct peers `node` has connected routes to, from its `/routez`.
    ///
    /// Counts servers, not connections: nats-server pools several connections per peer.
    pub async fn try_route_peers(node: &NatsServer) -> Result<usize, HarnessError> {
        pbn::natsd::route_peers(node.http_port()).await.map_err(|e| HarnessError::Monitor {
            url: node.monitoring_url(),
            reason: e.to_string(),
        })
    }

    /// Waits until every node has routes to all other nodes (every node must be running).
    pub async fn try_wait_for_routes(&self, timeout: Duration) -> Result<(), HarnessError> {
        let peers = self.nodes.len().saturating_sub(1);
        let deadline = Deadline::after(timeout, format!("{peers} route peers on every node"));
        for node in &self.nodes {
            while Self::try_route_peers(node).await? < peers {
                deadline.try_tick().await?;
            }
        }
        Ok(())
    }

    /// Like [`Cluster::try_wait_for_routes`], but panics on timeout.
    pub async fn wait_for_routes(&self, timeout: Duration) {
        self.try_wait_for_routes(timeout).await.unwrap_or_else(|err| panic!("{err}"));
    }
}
