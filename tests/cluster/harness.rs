//! The cluster harness: JetStream on every node in its own store dir, identities, and one node
//! stopped, killed and restarted while the others keep the cluster.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::Cluster;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jetstream_cluster_survives_a_node_killed_and_restarted() {
    let mut cluster = Cluster::start_jetstream(3, |_| String::new()).await;
    let mut ids = BTreeSet::new();
    for (i, node) in cluster.nodes().iter().enumerate() {
        let who = node.identity().await;
        assert_eq!(who.name, format!("node-{i}"));
        assert!(who.id.starts_with('N') && who.id.len() == 56, "{who:?}");
        ids.insert(who.id);
        assert!(node.dir().join("js").is_dir(), "node {i} keeps JetStream in its own dir");
    }
    assert_eq!(ids.len(), 3, "every node has its own id");
    let store = cluster.node(1).dir().to_path_buf();

    let before = cluster.node(1).identity().await;
    cluster.node_mut(1).kill();
    let http = cluster.node(0).http_port();
    pbn::natsd::wait_for(http, "node 1 to drop out", WAIT, |h| async move {
        Ok(pbn::natsd::route_peers(h).await? == 1)
    })
    .await
    .expect("routes to the killed node go away");
    cluster.node_mut(1).restart().await;
    cluster.wait_for_routes(WAIT).await;
    cluster.try_wait_for_jetstream(WAIT).await.expect("JetStream back on every node");
    let after = cluster.node(1).identity().await;
    assert_eq!(after.name, before.name, "the name is the config's");
    assert_ne!(after.id, before.id, "a restarted server has a new id");
    cluster.node_mut(2).stop().await.expect("node 2 was running");
    drop(cluster);
    assert!(!store.exists(), "a node's dir, JetStream store included, goes with the cluster");
}
