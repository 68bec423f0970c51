//! The on-chain key registry (`chain/contracts/MuseKeyRegistry.sol`) seen from Rust, through
//! alloy: one `eth_call` to check a key, the owner's transactions (register, rotate, revoke),
//! and the event logs a hub follows to notice changes.
//!
//! The bindings are generated at compile time from the committed artifact
//! `chain/artifacts/MuseKeyRegistry.json`, so building needs neither node nor solc. Handles,
//! keys and nonces follow the contract's rules (chain-design §3.2); this module only
//! translates, it decides nothing about trust (that is [`crate::hub::identity`]).

use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, FixedBytes, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::{SolEvent, SolValue};

sol!(
    #[sol(rpc, all_derives)]
    #[allow(missing_docs, unreachable_pub, missing_debug_implementations)]
    MuseKeyRegistry,
    "chain/artifacts/MuseKeyRegistry.json"
);

use MuseKeyRegistry::{MuseKeyRegistryErrors as ContractError, MuseKeyRegistryInstance};

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The RPC endpoint did not answer (network, refused connection, timeout).
    #[error("cannot reach the chain at {url}: {why}")]
    Unreachable { url: String, why: String },
    /// The contract refused the call; the text says why in the musician's terms.
    #[error("the key registry refused: {0}")]
    Refused(String),
    /// The transaction was mined but failed.
    #[error("transaction {0} was mined but reverted")]
    Reverted(B256),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use crate::config::ChainEndpoint as Endpoint;

/// A handle's record as the chain holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub owner: Address,
    pub nonce: u64,
    pub updated_at: u32,
    /// Zero after the current key was revoked, until the next rotation.
    pub key: [u8; 32],
    pub bundle_cid: Vec<u8>,
}

/// The answer to [`Registry::check`]: the handle's record (`None` when the handle is not
/// registered) and what the chain says about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub record: Option<Record>,
    /// When the key was revoked for this handle (unix seconds); 0 if it was not.
    pub key_revoked_at: u64,
    /// The hash of the handle the key belongs to; zero when it was never used.
    pub key_handle: [u8; 32],
    /// The block the answer is from.
    pub block: u64,
}

/// How the latest key rotation of a handle was authorised (chain-design §3.2 rule 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationKind {
    /// Signed by the previous key.
    Normal,
    /// No signature from the previous key: the owner address alone (a lost device).
    Recovery,
    /// A signature that does not verify: treated as a recovery, and flagged.
    Suspicious,
}

impl RotationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RotationKind::Normal => "normal",
            RotationKind::Recovery => "recovery",
            RotationKind::Suspicious => "suspicious",
        }
    }

    pub fn parse(s: &str) -> Option<RotationKind> {
        Some(match s {
            "normal" => RotationKind::Normal,
            "recovery" => RotationKind::Recovery,
            "suspicious" => RotationKind::Suspicious,
            _ => return None,
        })
    }
}

/// One `KeyRotated` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub block: u64,
    /// The record's nonce after the rotation.
    pub nonce: u64,
    pub old_key: [u8; 32],
    pub new_key: [u8; 32],
    pub bundle_cid: Vec<u8>,
    pub old_key_sig: Vec<u8>,
}

/// `keccak256(handle)`, the handle's id on chain and in event topics.
pub fn handle_hash(handle: &str) -> [u8; 32] {
    keccak256(handle.as_bytes()).0
}

/// The 32 bytes the current key signs to approve a rotation (the contract's
/// `rotationDigest`, recomputed here so a hub checks events without a call).
pub fn rotation_digest(
    chain_id: u64,
    registry: Address,
    handle_hash: [u8; 32],
    nonce: u64,
    new_key: [u8; 32],
    bundle_cid: &[u8],
) -> [u8; 32] {
    let typehash = keccak256(
        b"MuseKeyRotation(uint256 chainId,address registry,bytes32 handleHash,uint64 nonce,bytes32 newKey,bytes32 keyBundleCidHash)",
    );
    let encoded = (
        typehash,
        alloy::primitives::U256::from(chain_id),
        registry,
        B256::from(handle_hash),
        nonce,
        B256::from(new_key),
        keccak256(bundle_cid),
    )
        .abi_encode();
    keccak256(encoded).0
}

impl Rotation {
    /// Classifies the rotation by checking its old-key signature.
    pub fn kind(&self, chain_id: u64, registry: Address, handle_hash: [u8; 32]) -> RotationKind {
        if self.old_key_sig.is_empty() {
            return RotationKind::Recovery;
        }
        let digest = rotation_digest(
            chain_id,
            registry,
            handle_hash,
            self.nonce.saturating_sub(1),
            self.new_key,
            &self.bundle_cid,
        );
        let ok = libp2p::identity::ed25519::PublicKey::try_from_bytes(&self.old_key)
            .is_ok_and(|k| k.verify(&digest, &self.old_key_sig));
        if ok {
            RotationKind::Normal
        } else {
            RotationKind::Suspicious
        }
    }
}

/// A connection to the registry, read-only or with an EVM signer for the owner's calls.
#[derive(Clone)]
pub struct Registry {
    endpoint: Endpoint,
    provider: DynProvider,
    contract: MuseKeyRegistryInstance<DynProvider>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The HTTP client for RPC calls: our rustls stack (web PKI roots, or `SSL_CERT_FILE`) and
/// a bounded wait, so an unreachable chain is an error in seconds, not a hang.
fn rpc_http() -> Result<reqwest::Client> {
    crate::tls::http_client_builder()
        .map_err(|e| Error::Invalid(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| Error::Invalid(format!("building the RPC client: {e}")))
}

/// Fillers for transactions: gas estimation and a nonce read from the chain for every
/// transaction. alloy's default nonce cache counts a nonce for a call that is then refused
/// at gas estimation, and every later transaction waits forever behind that gap.
fn signing_builder() -> ProviderBuilder<
    alloy::providers::Identity,
    impl alloy::providers::fillers::TxFiller<alloy::network::Ethereum>,
    alloy::network::Ethereum,
> {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
}

impl Registry {
    /// A read-only connection (what a hub uses).
    pub fn connect(endpoint: Endpoint) -> Result<Registry> {
        let provider = ProviderBuilder::new()
            .connect_reqwest(rpc_http()?, endpoint.rpc_url.clone())
            .erased();
        Ok(Registry::with_provider(endpoint, provider))
    }

    /// A connection that signs transactions with `signer` (the handle owner's EVM key).
    pub fn connect_signing(endpoint: Endpoint, signer: PrivateKeySigner) -> Result<Registry> {
        let provider = signing_builder()
            .with_chain_id(endpoint.chain_id)
            .wallet(signer)
            .connect_reqwest(rpc_http()?, endpoint.rpc_url.clone())
            .erased();
        // Receipts are polled; a remote RPC would otherwise be asked only every 7 s.
        provider
            .client()
            .set_poll_interval(Duration::from_millis(500));
        Ok(Registry::with_provider(endpoint, provider))
    }

    fn with_provider(endpoint: Endpoint, provider: DynProvider) -> Registry {
        let contract = MuseKeyRegistry::new(endpoint.registry, provider.clone());
        Registry {
            endpoint,
            provider,
            contract,
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> Error {
        Error::Unreachable {
            url: self.endpoint.rpc_url.to_string(),
            why: e.to_string(),
        }
    }

    /// Deploys a new registry (for a local chain or a fresh network); returns its address,
    /// the block it was deployed in and the chain id.
    pub async fn deploy(
        rpc_url: reqwest::Url,
        signer: PrivateKeySigner,
        identity_registry: Address,
    ) -> Result<(Address, u64, u64)> {
        let provider = signing_builder()
            .fetch_chain_id()
            .wallet(signer)
            .connect_reqwest(rpc_http()?, rpc_url.clone())
            .erased();
        let unreachable = |e: &dyn std::fmt::Display| Error::Unreachable {
            url: rpc_url.to_string(),
            why: e.to_string(),
        };
        let receipt = MuseKeyRegistry::deploy_builder(&provider, identity_registry)
            .send()
            .await
            .map_err(|e| unreachable(&e))?
            .get_receipt()
            .await
            .map_err(|e| unreachable(&e))?;
        if !receipt.status() {
            return Err(Error::Reverted(receipt.transaction_hash));
        }
        let address = receipt
            .contract_address
            .ok_or_else(|| Error::Invalid("the deployment made no contract".into()))?;
        let chain_id = provider.get_chain_id().await.map_err(|e| unreachable(&e))?;
        Ok((address, receipt.block_number.unwrap_or_default(), chain_id))
    }

    /// Confirms the RPC is the configured chain and the registry has code there.
    pub async fn check_endpoint(&self) -> Result<()> {
        let id = self
            .provider
            .get_chain_id()
            .await
            .map_err(|e| self.unreachable(e))?;
        if id != self.endpoint.chain_id {
            return Err(Error::Invalid(format!(
                "the RPC at {} is chain {id}, but the configuration says chain {}",
                self.endpoint.rpc_url, self.endpoint.chain_id
            )));
        }
        let code = self
            .provider
            .get_code_at(self.endpoint.registry)
            .await
            .map_err(|e| self.unreachable(e))?;
        if code.is_empty() {
            return Err(Error::Invalid(format!(
                "there is no contract at {} on chain {id}: check the registry address",
                self.endpoint.registry
            )));
        }
        Ok(())
    }

    pub async fn block_number(&self) -> Result<u64> {
        self.provider
            .get_block_number()
            .await
            .map_err(|e| self.unreachable(e))
    }

    /// Everything a hub needs to judge `key` for `handle`, in one `eth_call` pinned to one
    /// block.
    pub async fn check(&self, handle: &str, key: [u8; 32]) -> Result<Check> {
        let block = self.block_number().await?;
        let r = self
            .contract
            .check(handle.to_owned(), FixedBytes(key))
            .block(block.into())
            .call()
            .await
            .map_err(|e| self.call_error(e))?;
        let rec = r.rec;
        Ok(Check {
            record: (rec.owner != Address::ZERO).then(|| Record {
                owner: rec.owner,
                nonce: rec.nonce,
                updated_at: rec.updatedAt,
                key: rec.ed25519Key.0,
                bundle_cid: rec.keyBundleCid.to_vec(),
            }),
            key_revoked_at: r.keyRevokedAt,
            key_handle: r.keyHandle.0,
            block,
        })
    }

    /// The registry's own `rotationDigest` (what `rotate` signs with the old key).
    pub async fn rotation_digest(
        &self,
        handle: &str,
        nonce: u64,
        new_key: [u8; 32],
        bundle_cid: &[u8],
    ) -> Result<[u8; 32]> {
        let d = self
            .contract
            .rotationDigest(
                handle.to_owned(),
                nonce,
                FixedBytes(new_key),
                Bytes::copy_from_slice(bundle_cid),
            )
            .call()
            .await
            .map_err(|e| self.call_error(e))?;
        Ok(d.0)
    }

    /// The balance of `who` in the chain's smallest unit (wei), to say plainly that an
    /// account cannot pay before a transaction is refused for it.
    pub async fn balance(&self, who: Address) -> Result<alloy::primitives::U256> {
        self.provider
            .get_balance(who)
            .await
            .map_err(|e| self.unreachable(e))
    }

    /// Claims `handle` with its first key. Returns the transaction hash once mined.
    pub async fn register(&self, handle: &str, key: [u8; 32], bundle_cid: &[u8]) -> Result<B256> {
        let call = self.contract.register(
            handle.to_owned(),
            FixedBytes(key),
            Bytes::copy_from_slice(bundle_cid),
        );
        self.mined(call.send().await).await
    }

    /// Replaces the current key. `old_key_sig` is the previous key's signature over
    /// [`Registry::rotation_digest`], or `None` for a recovery rotation.
    pub async fn rotate(
        &self,
        handle: &str,
        expected_nonce: u64,
        new_key: [u8; 32],
        bundle_cid: &[u8],
        old_key_sig: Option<&[u8]>,
    ) -> Result<B256> {
        let call = self.contract.rotateKey(
            handle.to_owned(),
            expected_nonce,
            FixedBytes(new_key),
            Bytes::copy_from_slice(bundle_cid),
            Bytes::copy_from_slice(old_key_sig.unwrap_or_default()),
        );
        self.mined(call.send().await).await
    }

    /// Marks `key` compromised from now on (reason 0 unspecified, 1 compromised, 2 lost,
    /// 3 superseded).
    pub async fn revoke(
        &self,
        handle: &str,
        expected_nonce: u64,
        key: [u8; 32],
        reason: u8,
    ) -> Result<B256> {
        let call =
            self.contract
                .revokeKey(handle.to_owned(), expected_nonce, FixedBytes(key), reason);
        self.mined(call.send().await).await
    }

    async fn mined(
        &self,
        sent: Result<
            alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
            alloy::contract::Error,
        >,
    ) -> Result<B256> {
        let pending = sent.map_err(|e| self.call_error(e))?;
        let receipt = pending
            .with_timeout(Some(Duration::from_secs(120)))
            .get_receipt()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !receipt.status() {
            return Err(Error::Reverted(receipt.transaction_hash));
        }
        Ok(receipt.transaction_hash)
    }

    /// A contract revert in words, or the transport failure.
    fn call_error(&self, e: alloy::contract::Error) -> Error {
        if let Some(err) = e.as_decoded_interface_error::<ContractError>() {
            return Error::Refused(refusal(&err));
        }
        if e.as_revert_data().is_some() {
            return Error::Refused(format!("the call reverted ({e})"));
        }
        self.unreachable(e)
    }

    /// Every `KeyRotated` of one handle between two blocks (inclusive), oldest first.
    pub async fn rotations(
        &self,
        handle_hash: [u8; 32],
        from: u64,
        to: u64,
    ) -> Result<Vec<Rotation>> {
        let filter = Filter::new()
            .address(self.endpoint.registry)
            .event_signature(MuseKeyRegistry::KeyRotated::SIGNATURE_HASH)
            .topic1(B256::from(handle_hash));
        let mut out = Vec::new();
        for log in self.logs(filter, from, to).await? {
            let block = log.block_number.unwrap_or_default();
            let ev = log
                .log_decode::<MuseKeyRegistry::KeyRotated>()
                .map_err(|e| Error::Invalid(format!("a KeyRotated log does not decode: {e}")))?
                .inner
                .data;
            out.push(Rotation {
                block,
                nonce: ev.nonce,
                old_key: ev.oldKey.0,
                new_key: ev.newKey.0,
                bundle_cid: ev.keyBundleCid.to_vec(),
                old_key_sig: ev.oldKeySig.to_vec(),
            });
        }
        Ok(out)
    }

    /// The handle hashes (`topic1`) of every registry event between two blocks.
    pub async fn changed_handles(&self, from: u64, to: u64) -> Result<Vec<[u8; 32]>> {
        let filter = Filter::new().address(self.endpoint.registry);
        let mut out: Vec<[u8; 32]> = self
            .logs(filter, from, to)
            .await?
            .iter()
            .filter_map(|l| l.topics().get(1).map(|t| t.0))
            .collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Logs in pages of at most [`LOG_PAGE`] blocks (public RPCs cap the range).
    async fn logs(
        &self,
        filter: Filter,
        from: u64,
        to: u64,
    ) -> Result<Vec<alloy::rpc::types::Log>> {
        let mut out = Vec::new();
        let mut start = from;
        while start <= to {
            let end = to.min(start.saturating_add(LOG_PAGE - 1));
            let page = filter.clone().from_block(start).to_block(end);
            out.extend(
                self.provider
                    .get_logs(&page)
                    .await
                    .map_err(|e| self.unreachable(e))?,
            );
            start = end + 1;
        }
        Ok(out)
    }
}

/// Blocks per `eth_getLogs` request.
const LOG_PAGE: u64 = 2_000;

fn refusal(e: &ContractError) -> String {
    match e {
        ContractError::InvalidHandle(_) => {
            "the handle must be 1 to 32 lowercase letters, digits or '-', not starting or ending with '-'".into()
        }
        ContractError::HandleTaken(_) => "that handle is already registered by someone else".into(),
        ContractError::UnknownHandle(_) => "that handle is not registered".into(),
        ContractError::NotOwner(_) => {
            "only the EVM address that registered the handle may change it".into()
        }
        ContractError::BadNonce(n) => format!(
            "the record changed meanwhile (expected nonce {}, it is {}); check its status and try again",
            n.expected, n.actual
        ),
        ContractError::BadKey(_) => "that key does not belong to this handle".into(),
        ContractError::KeyInUse(_) => {
            "that key was already used by a handle; every key can be registered once".into()
        }
        ContractError::KeyRevokedAlready(_) => "that key is already revoked".into(),
        ContractError::BadSignatureLength(_) => {
            "the old key's signature must be empty or 64 bytes".into()
        }
        ContractError::NotAgentOwner(_) => "you do not own that ERC-8004 agent".into(),
        ContractError::NoIdentityRegistry(_) => {
            "this registry was deployed without an ERC-8004 identity registry".into()
        }
        ContractError::BadReason(r) => format!("revocation reason {} is not 0-3", r.reason),
        ContractError::ZeroAddress(_) => "the zero address is not allowed".into(),
    }
}

/// Reads an EVM private key (`0x` + 64 hex, alone in the file). The file must not be
/// readable by others, like an identity key.
pub fn read_evm_key(path: &std::path::Path) -> anyhow::Result<PrivateKeySigner> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        anyhow::bail!(
            "{} is readable by other users; run: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.trim().parse::<PrivateKeySigner>().map_err(|_| {
        anyhow::anyhow!(
            "{} does not hold an EVM private key (0x and 64 hex characters)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_hash_is_keccak_of_the_bytes() {
        // keccak256("") and keccak256("alice"), as any Ethereum tool computes them.
        assert_eq!(
            hex::encode(handle_hash("")),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(handle_hash("alice"), keccak256(b"alice").0);
    }

    #[test]
    fn rotations_are_classified_by_their_old_key_signature() {
        use libp2p::identity::ed25519;
        let old = ed25519::Keypair::generate();
        let new = ed25519::Keypair::generate();
        let registry = Address::repeat_byte(7);
        let h = handle_hash("alice");
        let mut r = Rotation {
            block: 9,
            nonce: 4,
            old_key: old.public().to_bytes(),
            new_key: new.public().to_bytes(),
            bundle_cid: vec![1, 2, 3],
            old_key_sig: Vec::new(),
        };
        assert_eq!(r.kind(31337, registry, h), RotationKind::Recovery);
        let digest = rotation_digest(31337, registry, h, 3, r.new_key, &r.bundle_cid);
        r.old_key_sig = old.sign(&digest);
        assert_eq!(r.kind(31337, registry, h), RotationKind::Normal);
        // Another chain, nonce or signer: the same signature is suspicious.
        assert_eq!(r.kind(43114, registry, h), RotationKind::Suspicious);
        r.nonce = 5;
        assert_eq!(r.kind(31337, registry, h), RotationKind::Suspicious);
        r.nonce = 4;
        r.old_key_sig = new.sign(&digest);
        assert_eq!(r.kind(31337, registry, h), RotationKind::Suspicious);
    }
}
