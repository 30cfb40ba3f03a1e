//! A full-mesh cluster of nats-servers on loopback (see [`Cluster`]).

use std::collections::BTreeSet;
use std::time::Duration;

use super::server::START_ATTEMPTS;
use super::wait::Deadline;
use super::{free_port, HarnessError, NatsServer};

/// The `cluster.name` the harness gives every cluster.
pub const CLUSTER_NAME: &str = "pbn-test";
/// How long a cluster may take to connect every route.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);

/// The identity and ports of one cluster node, all chosen before any node starts (each node's
/// config must name the route ports of the others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// Position in the cluster, from 0.
    pub index: usize,
    /// `server_name` of the node: `node-<index>`.
    pub name: String,
    /// Client port.
    pub client_port: u16,
    /// Route (cluster) listen port.
    pub cluster_port: u16,
    /// HTTP monitoring port.
    pub http_port: u16,
    /// Route URLs of every other node (`nats-route://127.0.0.1:<cluster_port>`).
    pub routes: Vec<String>,
}

impl ClusterNode {
    /// The config lines that make this node a member of the cluster: `server_name` and a
    /// `cluster` block listening on `cluster_port` with routes to every other node.
    pub fn cluster_block(&self) -> String {
        let routes: String = self.routes.iter().map(|route| format!("    \"{route}\"\n")).collect();
        format!(
            "server_name: \"{name}\"\ncluster {{\n  name: \"{CLUSTER_NAME}\"\n  \
             listen: \"127.0.0.1:{port}\"\n  routes: [\n{routes}  ]\n}}\n",
            name = self.name,
            port = self.cluster_port,
        )
    }

    /// Plans `n` nodes on fresh free ports, each routed to all others.
    fn plan(n: usize) -> Vec<ClusterNode> {
        let ports: Vec<[u16; 3]> =
            (0..n).map(|_| [free_port(), free_port(), free_port()]).collect();
        let route = |port: u16| format!("nats-route://127.0.0.1:{port}");
        (0..n)
            .map(|index| ClusterNode {
                index,
                name: format!("node-{index}"),
                client_port: ports[index][0],
                cluster_port: ports[index][1],
                http_port: ports[index][2],
                routes: (0..n)
                    .filter(|&other| other != index)
                    .map(|o| route(ports[o][1]))
                    .collect(),
            })
            .collect()
    }
}

/// `n` nats-servers routed to each other; dropping it drops (kills) every node.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<NatsServer>,
}

impl Cluster {
    /// Starts `n` nodes whose configs are `config_fn(index)` followed by the node's
    /// [`ClusterNode::cluster_block`], and waits until every route is connected.
    ///
    /// # Panics
    /// If a node does not start or the routes do not form within 30 s.
    pub async fn start(n: usize, config_fn: impl Fn(usize) -> String) -> Cluster {
        Self::start_with(n, |node| format!("{}\n{}", config_fn(node.index), node.cluster_block()))
            .await
    }

    /// Like [`Cluster::start`], but `render` writes each node's whole config from its
    /// [`ClusterNode`] (for configs that carry their own `cluster` block).
    pub async fn start_with(n: usize, render: impl Fn(&ClusterNode) -> String) -> Cluster {
        Self::try_start_with(n, render).await.unwrap_or_else(|err| panic!("{err}"))
    }

    /// Like [`Cluster::start_with`], returning failures; re-plans all ports when another
    /// process took one meanwhile.
    pub async fn try_start_with(
        n: usize,
        render: impl Fn(&ClusterNode) -> String,
    ) -> Result<Cluster, HarnessError> {
        let mut attempt = 1;
        loop {
            match Self::launch(ClusterNode::plan(n), &render).await {
                Err(HarnessError::PortInUse { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    async fn launch(
        plan: Vec<ClusterNode>,
        render: &impl Fn(&ClusterNode) -> String,
    ) -> Result<Cluster, HarnessError> {
        let mut nodes = Vec::with_capacity(plan.len());
        for node in &plan {
            let server = NatsServer::builder(&render(node))
                .port(node.client_port)
                .http_port(node.http_port)
                .try_start()
                .await?;
            nodes.push(server);
        }
        let cluster = Cluster { nodes };
        cluster.try_wait_for_routes(ROUTE_TIMEOUT).await?;
        Ok(cluster)
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
        let routez = node.try_monitor("/routez").await?;
        let peers: BTreeSet<&str> = routez["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|route| route["remote_id"].as_str())
            .collect();
        Ok(peers.len())
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
