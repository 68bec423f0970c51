//! Getting a block or a UnixFS file the hub may not hold: the local store first, then
//! connected Bitswap peers, then providers found in the DHT, then the configured trustless
//! HTTP gateways. Every block from the network is checked against its CID before it is used
//! or stored.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use cid::Cid;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::cids::{self, DAG_PB, Id, RAW};
use crate::ipfs::Node;
use crate::ipfs::bitswap::message::MAX_BLOCK;
use crate::storage::unixfs;

/// How long one block may take before the search gives up.
pub const BLOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Blocks of one file fetched at once.
const PARALLEL_BLOCKS: usize = 16;

/// How long connected peers get before the DHT is asked.
const PEERS_FIRST: Duration = Duration::from_secs(1);

/// How long a search with nobody left to ask keeps waiting for new peers (providers
/// being dialled, peers still identifying).
const NO_PEERS_GRACE: Duration = Duration::from_secs(3);

/// One HTTP gateway request.
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    BadCid(String),
    #[error("block {cid} was not found (tried: {tried})")]
    NotFound { cid: Cid, tried: String },
    #[error("{cid} is not a UnixFS file: {why}")]
    NotAFile { cid: Cid, why: String },
    #[error("storing a fetched block failed: {0}")]
    Store(#[from] crate::storage::Error),
    #[error("writing the output failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Where a block came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Local,
    Bitswap,
    Gateway,
}

impl Node {
    /// One block by CID, verified. Blocks from the network are stored in the block store
    /// (not attached to any repo, so not served onward).
    pub async fn fetch_block(&self, cid: &Cid) -> Result<(Bytes, Source), FetchError> {
        if cid.hash().code() == 0x00 {
            if cid.hash().size() > 128 {
                return Err(FetchError::BadCid(format!(
                    "{cid}: identity CIDs are limited to 128 bytes"
                )));
            }
            return Ok((Bytes::copy_from_slice(cid.hash().digest()), Source::Local));
        }
        let digest = cids::digest_of(cid).map_err(|e| FetchError::BadCid(format!("{cid}: {e}")))?;
        let local = self
            .inner
            .hub
            .store()
            .block(cid, crate::storage::Scope::Granted)
            .await?;
        if let Some(b) = local {
            return Ok((b, Source::Local));
        }
        let mut tried = Vec::new();
        if let Some(block) = self.via_bitswap(cid).await {
            self.keep(digest, &block).await?;
            return Ok((block, Source::Bitswap));
        }
        tried.push("connected peers and DHT providers");
        for gw in &self.inner.config.http_gateways {
            match self.via_gateway(gw, cid, &digest).await {
                Ok(block) => {
                    self.keep(digest, &block).await?;
                    return Ok((block, Source::Gateway));
                }
                Err(e) => {
                    tracing::info!(target: "musehub::ipfs", gateway = %gw, %cid, error = %e, "gateway fetch failed");
                }
            }
        }
        if !self.inner.config.http_gateways.is_empty() {
            tried.push("HTTP gateways");
        }
        Err(FetchError::NotFound {
            cid: *cid,
            tried: tried.join(", "),
        })
    }

    async fn keep(&self, digest: Id, block: &Bytes) -> Result<(), FetchError> {
        self.inner.metrics.gateway_fetches.add(1);
        self.inner
            .hub
            .store()
            .put_block(digest, block.clone())
            .await?;
        Ok(())
    }

    async fn via_bitswap(&self, cid: &Cid) -> Option<Bytes> {
        let want = self.inner.bitswap.register(*cid);
        want.ask_all();
        if let Some(b) = want.wait(PEERS_FIRST).await {
            return Some(b);
        }
        let node = self.clone();
        let cid2 = *cid;
        let mut providers = tokio::spawn(async move { node.find_providers(cid2).await });
        let mut providers_done = false;
        let start = tokio::time::Instant::now();
        let deadline = start + BLOCK_TIMEOUT;
        loop {
            // Peers connected since (dialled providers, once identified) are asked too.
            want.ask_all();
            if let Some(b) = want.wait(Duration::from_millis(250)).await {
                providers.abort();
                return Some(b);
            }
            if !providers_done && providers.is_finished() {
                providers_done = true;
                if let Ok(Ok(found)) = (&mut providers).await {
                    tracing::debug!(target: "musehub::ipfs", %cid, providers = found.len(), "DHT providers");
                }
            }
            // Done when the DHT search is over and nobody we asked can still answer (or
            // nobody was there to ask for a while).
            let nobody_left = want.pending_peers() == 0;
            if providers_done && nobody_left && start.elapsed() > NO_PEERS_GRACE {
                return want.block();
            }
            if tokio::time::Instant::now() >= deadline {
                providers.abort();
                return want.block();
            }
        }
    }

    async fn via_gateway(&self, gw: &str, cid: &Cid, digest: &Id) -> anyhow::Result<Bytes> {
        let url = format!("{gw}/ipfs/{cid}?format=raw");
        let res = self
            .inner
            .http
            .get(&url)
            .header("accept", "application/vnd.ipld.raw")
            .timeout(GATEWAY_TIMEOUT)
            .send()
            .await?;
        if !res.status().is_success() {
            anyhow::bail!("{url} answered {}", res.status());
        }
        let mut body = Vec::new();
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > MAX_BLOCK {
                anyhow::bail!("{url} sent more than {MAX_BLOCK} bytes for one block");
            }
            body.extend_from_slice(&chunk);
        }
        let actual = Id(Sha256::digest(&body).into());
        if actual != *digest {
            anyhow::bail!("{url} sent bytes that do not hash to {cid}");
        }
        Ok(Bytes::from(body))
    }

    /// Fetches a UnixFS file (a raw block or a dag-pb File tree) and writes its bytes to
    /// `out` in order, calling `progress(bytes_done, total)` as it goes. Returns the size.
    pub async fn fetch_file<W: AsyncWrite + Unpin + Send>(
        &self,
        cid: &Cid,
        out: &mut W,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<u64, FetchError> {
        let (root, _) = self.fetch_block(cid).await?;
        let total = match cid.codec() {
            RAW => root.len() as u64,
            DAG_PB => {
                unixfs::decode_file_node(&root)
                    .map_err(|e| FetchError::NotAFile {
                        cid: *cid,
                        why: e.to_string(),
                    })?
                    .filesize
            }
            _ => {
                return Err(FetchError::NotAFile {
                    cid: *cid,
                    why: "only raw and dag-pb blocks hold files".into(),
                });
            }
        };
        let mut done = 0u64;
        progress(0, total);
        self.write_node(*cid, root, out, &mut done, total, progress)
            .await?;
        if done != total {
            return Err(FetchError::NotAFile {
                cid: *cid,
                why: format!("its blocks hold {done} bytes, its root says {total}"),
            });
        }
        out.flush().await?;
        Ok(done)
    }

    fn write_node<'a, W: AsyncWrite + Unpin + Send>(
        &'a self,
        cid: Cid,
        block: Bytes,
        out: &'a mut W,
        done: &'a mut u64,
        total: u64,
        progress: &'a (dyn Fn(u64, u64) + Send + Sync),
    ) -> Pin<Box<dyn Future<Output = Result<(), FetchError>> + Send + 'a>> {
        Box::pin(async move {
            match cid.codec() {
                RAW => {
                    out.write_all(&block).await?;
                    *done += block.len() as u64;
                    progress(*done, total);
                    Ok(())
                }
                DAG_PB => {
                    let node =
                        unixfs::decode_file_node(&block).map_err(|e| FetchError::NotAFile {
                            cid,
                            why: e.to_string(),
                        })?;
                    if !node.inline.is_empty() {
                        out.write_all(&node.inline).await?;
                        *done += node.inline.len() as u64;
                    }
                    let mut children = futures_util::stream::iter(node.links)
                        .map(|l| async move { (l.cid, self.fetch_block(&l.cid).await) })
                        .buffered(PARALLEL_BLOCKS);
                    while let Some((child, r)) = children.next().await {
                        let (bytes, _) = r?;
                        self.write_node(child, bytes, out, done, total, progress)
                            .await?;
                    }
                    Ok(())
                }
                other => Err(FetchError::NotAFile {
                    cid,
                    why: format!("a child block has codec 0x{other:x}"),
                }),
            }
        })
    }
}
