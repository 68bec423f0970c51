//! The embedded IPFS node: a libp2p swarm (TCP, QUIC, noise, yamux, identify, ping, Kademlia,
//! AutoNAT, relay client, DCUtR, UPnP, mDNS) with our own Bitswap 1.2.0 over the block store,
//! provider announcements, the fetch path for CIDs the hub lacks, and the hub's IPNS record.
//!
//! - [`node`]: the swarm and its event loop; [`Node`] is the handle the rest of the hub uses.
//! - [`bitswap`]: Bitswap 1.2.0 serving public blocks and fetching verified ones.
//! - [`fetch`]: local store → connected peers → DHT providers → trustless HTTP gateways.
//! - [`ipns`]: IPNS records (V1+V2), validation, the DHT record filter.
//! - [`pb`]: the protobuf wire format both use.

use crate::metrics::{Counter, Gauge};

pub mod bitswap;
pub mod fetch;
pub mod ipns;
pub mod node;
pub mod pb;
pub mod publish;
pub mod records;

pub use node::{Node, NodeOptions, NodeStatus};

/// Counters of the IPFS node, exported at `/metrics`.
#[derive(Debug, Default)]
pub struct IpfsMetrics {
    pub blocks_sent: Counter,
    pub block_bytes_sent: Counter,
    pub blocks_received: Counter,
    pub block_bytes_received: Counter,
    /// Blocks dropped because they matched no want (or did not hash to one).
    pub blocks_unwanted: Counter,
    /// Protocol violations by peers (bad blocks, bad frames).
    pub bad_blocks: Counter,
    /// Provider announcements that reached at least one DHT peer.
    pub provides: Counter,
    pub last_provide_unix: Gauge,
    pub ipns_published: Counter,
    pub gateway_fetches: Counter,
}

impl IpfsMetrics {
    /// Appends this node's series to a Prometheus text body.
    pub fn render(&self, status: &NodeStatus, out: &mut crate::metrics::Text) {
        let counters = [
            (
                "musehub_bitswap_blocks_sent_total",
                "Blocks sent to IPFS peers over Bitswap.",
                self.blocks_sent.get(),
            ),
            (
                "musehub_bitswap_block_bytes_sent_total",
                "Block bytes sent over Bitswap.",
                self.block_bytes_sent.get(),
            ),
            (
                "musehub_bitswap_blocks_received_total",
                "Verified blocks received over Bitswap.",
                self.blocks_received.get(),
            ),
            (
                "musehub_bitswap_block_bytes_received_total",
                "Verified block bytes received over Bitswap.",
                self.block_bytes_received.get(),
            ),
            (
                "musehub_bitswap_blocks_unwanted_total",
                "Blocks dropped because they matched no want.",
                self.blocks_unwanted.get(),
            ),
            (
                "musehub_bitswap_peer_violations_total",
                "Bad blocks and malformed messages from peers.",
                self.bad_blocks.get(),
            ),
            (
                "musehub_dht_provides_total",
                "Provider announcements that reached at least one DHT peer.",
                self.provides.get(),
            ),
            (
                "musehub_ipns_published_total",
                "IPNS records published.",
                self.ipns_published.get(),
            ),
            (
                "musehub_ipfs_fetches_total",
                "Blocks fetched from the network (peers, DHT or HTTP gateways).",
                self.gateway_fetches.get(),
            ),
        ];
        for (name, help, v) in counters {
            out.counter(name, help, v);
        }
        let gauges = [
            (
                "musehub_ipfs_peers",
                "Connected IPFS peers.",
                status.peers as u64,
            ),
            (
                "musehub_dht_routing_table_peers",
                "Peers in the DHT routing table.",
                status.routing_table as u64,
            ),
            (
                "musehub_dht_provided",
                "CIDs this hub announces in the DHT.",
                status.provided as u64,
            ),
            (
                "musehub_dht_provide_backlog",
                "CIDs waiting to be announced (queued, running or to retry).",
                status.provide_backlog as u64,
            ),
            (
                "musehub_dht_last_provide_timestamp_seconds",
                "Unix time of the last announcement that reached a DHT peer (0: never).",
                self.last_provide_unix.get(),
            ),
            (
                "musehub_dht_server",
                "1 when the node answers DHT queries (server mode).",
                u64::from(status.dht_server),
            ),
        ];
        for (name, help, v) in gauges {
            out.gauge(name, help, v);
        }
    }
}
