// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {IERC8004IdentityRegistry} from "./IERC8004IdentityRegistry.sol";

/// @title MuseKeyRegistry: Muse handles bound to Ed25519 device keys
/// @notice Maps a human-readable handle such as `gabriel` to the Ed25519 public key that
/// signs that user's Muse objects, and keeps the history hubs need: rotations (with an
/// optional signature by the old key), revocations, and the CID of the user's key bundle.
///
/// Authority comes from the EVM address that registered the handle (the owner). The
/// EVM has no Ed25519 verifier, so the contract never checks an Ed25519 signature; it
/// stores the old key's rotation signature in the `KeyRotated` event and every hub
/// checks it off-chain against `rotationDigest`. All hubs read the same bytes, so they
/// all reach the same verdict.
///
/// Rules enforced here:
/// - A handle is 1 to 32 characters of `[a-z0-9-]` and neither starts nor ends with `-`.
///   Events index it by `keccak256(bytes(handle))`.
/// - The first address to register a handle owns it. Only the owner may change it.
/// - Each record has a nonce, set to 1 at registration and increased by one on every
///   state change. Calls that touch keys take `expectedNonce` and revert with
///   `BadNonce` on a mismatch. There is no value that skips that check.
/// - A key belongs to at most one handle, forever, and is set at most once: a handle
///   cannot rotate back to a key it used before, so a revoked key can never return.
///
/// The contract has no admin, no upgrade path and no way to pause. What is deployed
/// is what runs.
contract MuseKeyRegistry {
    // ---------------------------------------------------------------- types

    /// @notice Everything the registry knows about one handle.
    /// @dev `owner`, `nonce` and `updatedAt` share one storage slot.
    struct Record {
        /// The EVM address that controls the handle. Zero means "not registered".
        address owner;
        /// Starts at 1 and increases by one on every state change of this record.
        uint64 nonce;
        /// Block timestamp (unix seconds) of the last state change.
        uint32 updatedAt;
        /// The current Ed25519 public key. Zero after the current key was revoked,
        /// until the owner rotates to a new one.
        bytes32 ed25519Key;
        /// ERC-8004 agent id plus one; zero means no agent is linked. A link counts
        /// only while `ownerOf(agentId - 1)` in the identity registry equals `owner`.
        uint256 agentId;
        /// An address (for example the user's hub) allowed to update the `.muse` name
        /// record in a later contract. It can never change keys.
        address operator;
        /// Binary CIDv1 of the key bundle on IPFS, which holds keys too large to store
        /// here (for example post-quantum public keys). May be empty.
        bytes keyBundleCid;
    }

    // ------------------------------------------------------------- constants

    /// @notice EIP-712-style type hash that starts every `rotationDigest`. It names the
    /// fields the old key signs, so a signature for this purpose cannot be mistaken for
    /// a signature over anything else.
    bytes32 public constant ROTATION_TYPEHASH = keccak256(
        "MuseKeyRotation(uint256 chainId,address registry,bytes32 handleHash,uint64 nonce,bytes32 newKey,bytes32 keyBundleCidHash)"
    );

    /// @notice Revocation reasons, as stored in `KeyRevoked.reason`.
    uint8 public constant REASON_UNSPECIFIED = 0;
    /// @notice The key's private half is known or suspected to be in other hands.
    uint8 public constant REASON_COMPROMISED = 1;
    /// @notice The key's private half is gone (for example a lost device).
    uint8 public constant REASON_LOST = 2;
    /// @notice The key was replaced and should no longer be accepted.
    uint8 public constant REASON_SUPERSEDED = 3;

    /// @dev Longest handle, in bytes.
    uint256 private constant MAX_HANDLE_LENGTH = 32;

    /// @dev Length of an Ed25519 signature, in bytes.
    uint256 private constant ED25519_SIGNATURE_LENGTH = 64;

    // ----------------------------------------------------------------- state

    /// @notice The ERC-8004 Identity Registry that `linkAgent` consults, or the zero
    /// address if this deployment links no agents.
    address public immutable identityRegistry;

    /// @dev Records by handle hash.
    mapping(bytes32 handleHash => Record) private _records;

    /// @dev Revocation time (unix seconds) of each key a handle has revoked.
    mapping(bytes32 handleHash => mapping(bytes32 key => uint64)) private _revokedAt;

    /// @dev Every key a handle has revoked, in revocation order.
    mapping(bytes32 handleHash => bytes32[]) private _revokedKeys;

    /// @dev The handle each key was ever set on. Never cleared.
    mapping(bytes32 key => bytes32 handleHash) private _handleOfKey;

    // ---------------------------------------------------------------- events

    /// @notice A new handle was registered by `owner` with its first key.
    event HandleRegistered(
        bytes32 indexed handleHash, string handle, address indexed owner, bytes32 ed25519Key, bytes keyBundleCid
    );

    /// @notice The current key changed from `oldKey` to `newKey`.
    /// @dev `nonce` is the record's nonce after the rotation; the old key signed
    /// `rotationDigest` with `nonce - 1`. An empty `oldKeySig` marks a recovery rotation,
    /// authorised by the owner address alone. The signature is not verified here.
    event KeyRotated(
        bytes32 indexed handleHash, uint64 nonce, bytes32 oldKey, bytes32 newKey, bytes keyBundleCid, bytes oldKeySig
    );

    /// @notice `key` is compromised from the block time of this event on.
    /// @dev `nonce` is the record's nonce after the revocation.
    event KeyRevoked(bytes32 indexed handleHash, bytes32 indexed key, uint64 nonce, uint8 reason);

    /// @notice The key bundle CID changed without a key change.
    /// @dev `nonce` is the record's nonce after the change.
    event KeyBundleUpdated(bytes32 indexed handleHash, uint64 nonce, bytes keyBundleCid);

    /// @notice The operator changed. The zero address means "no operator".
    event OperatorSet(bytes32 indexed handleHash, address indexed operator);

    /// @notice The handle now points at ERC-8004 agent `agentId` (the real id, not plus one).
    event AgentLinked(bytes32 indexed handleHash, uint256 indexed agentId);

    /// @notice Control of the handle moved from `from` to `to`.
    event HandleTransferred(bytes32 indexed handleHash, address indexed from, address indexed to);

    // ---------------------------------------------------------------- errors

    /// @notice The handle breaks the charset or length rule.
    error InvalidHandle();
    /// @notice Someone already registered this handle.
    error HandleTaken();
    /// @notice No one has registered this handle.
    error UnknownHandle();
    /// @notice Only the handle's owner may make this call.
    error NotOwner();
    /// @notice `expected` is the `expectedNonce` the caller passed; `actual` is the
    /// record's nonce. Reread the record and decide again.
    error BadNonce(uint64 expected, uint64 actual);
    /// @notice The key is zero, or (for `revokeKey`) was never a key of this handle.
    error BadKey();
    /// @notice The key is, or once was, set on a handle. Keys are never reused.
    error KeyInUse();
    /// @notice This key was already revoked for this handle.
    error KeyRevokedAlready();
    /// @notice `oldKeySig` must be empty or exactly 64 bytes.
    error BadSignatureLength();
    /// @notice The caller does not own the ERC-8004 agent it tried to link.
    error NotAgentOwner();
    /// @notice This deployment has no ERC-8004 identity registry, so it cannot link agents.
    error NoIdentityRegistry();
    /// @notice Revocation reasons are 0 to 3.
    error BadReason(uint8 reason);
    /// @notice A handle cannot be transferred to the zero address; that would let
    /// anyone register it again over the existing record.
    error ZeroAddress();

    // ------------------------------------------------------------ constructor

    /// @param identityRegistry_ The ERC-8004 Identity Registry used by `linkAgent`, or
    /// the zero address to deploy without agent links. It cannot be changed later.
    constructor(address identityRegistry_) {
        identityRegistry = identityRegistry_;
    }

    // ----------------------------------------------------------------- views

    /// @notice The hash that identifies `handle` on-chain and in event topics.
    /// @dev Does not check the handle rules; an invalid handle simply has no record.
    function handleHash(string calldata handle) public pure returns (bytes32) {
        return keccak256(bytes(handle));
    }

    /// @notice The record of `handle`. An unregistered handle returns a record whose
    /// owner is the zero address.
    function getRecord(string calldata handle) external view returns (Record memory) {
        return _records[handleHash(handle)];
    }

    /// @notice The record for a handle hash, as found in event topics.
    function getRecordByHash(bytes32 handleHash_) external view returns (Record memory) {
        return _records[handleHash_];
    }

    /// @notice The current nonce of `handle`; zero if it is not registered.
    function nonceOf(string calldata handle) external view returns (uint64) {
        return _records[handleHash(handle)].nonce;
    }

    /// @notice Whether `key` is the current, unrevoked key of `handle`.
    /// @dev A revoked current key is cleared to zero, so no separate revocation check
    /// is needed, and zero is never a current key.
    function isCurrentKey(string calldata handle, bytes32 key) external view returns (bool) {
        return key != bytes32(0) && _records[handleHash(handle)].ed25519Key == key;
    }

    /// @notice When `key` was revoked for the handle with hash `handleHash_`, in unix
    /// seconds; zero if it was not.
    function revokedAt(bytes32 handleHash_, bytes32 key) external view returns (uint64) {
        return _revokedAt[handleHash_][key];
    }

    /// @notice Every key `handle` has revoked, oldest revocation first.
    function revokedKeys(string calldata handle) external view returns (bytes32[] memory) {
        return _revokedKeys[handleHash(handle)];
    }

    /// @notice The hash of the handle `key` was ever set on; zero if none.
    function handleOfKey(bytes32 key) external view returns (bytes32) {
        return _handleOfKey[key];
    }

    /// @notice Everything a hub needs to accept or refuse a signature by `key` for
    /// `handle`, in one call.
    /// @return rec The handle's record (owner zero if unregistered).
    /// @return keyRevokedAt When `key` was revoked for this handle; zero if it was not.
    /// @return keyHandle The hash of the handle `key` belongs to; zero if none.
    function check(string calldata handle, bytes32 key)
        external
        view
        returns (Record memory rec, uint64 keyRevokedAt, bytes32 keyHandle)
    {
        bytes32 h = handleHash(handle);
        return (_records[h], _revokedAt[h][key], _handleOfKey[key]);
    }

    /// @notice The 32 bytes the current key signs with Ed25519 to approve a rotation of
    /// `handle` to `newKey` and `keyBundleCid`, while the record's nonce is `nonce`.
    /// @dev keccak256(abi.encode(ROTATION_TYPEHASH, chainid, this, keccak256(handle),
    /// nonce, newKey, keccak256(keyBundleCid))). The chain id and registry address stop
    /// a signature from being replayed on another chain or deployment; the nonce stops
    /// it from being replayed on the same record.
    function rotationDigest(string calldata handle, uint64 nonce, bytes32 newKey, bytes calldata keyBundleCid)
        external
        view
        returns (bytes32)
    {
        return keccak256(
            abi.encode(
                ROTATION_TYPEHASH,
                block.chainid,
                address(this),
                handleHash(handle),
                nonce,
                newKey,
                keccak256(keyBundleCid)
            )
        );
    }

    // ------------------------------------------------------------- mutators

    /// @notice Claims `handle` for the caller with its first Ed25519 key.
    /// @param ed25519Key The 32-byte Ed25519 public key; must never have been used before.
    /// @param keyBundleCid Binary CIDv1 of the key bundle, or empty.
    /// @return The handle's hash.
    function register(string calldata handle, bytes32 ed25519Key, bytes calldata keyBundleCid)
        external
        returns (bytes32)
    {
        if (!_isValidHandle(bytes(handle))) revert InvalidHandle();
        bytes32 h = handleHash(handle);
        Record storage rec = _records[h];
        if (rec.owner != address(0)) revert HandleTaken();
        _claimKey(h, ed25519Key);

        rec.owner = msg.sender;
        rec.nonce = 1;
        rec.updatedAt = uint32(block.timestamp);
        rec.ed25519Key = ed25519Key;
        rec.keyBundleCid = keyBundleCid;

        emit HandleRegistered(h, handle, msg.sender, ed25519Key, keyBundleCid);
        return h;
    }

    /// @notice Replaces the current key of `handle` with `newKey`.
    /// @dev Signatures the old key made before the rotation stay valid; use `revokeKey`
    /// to disown them. Works when the current key is zero (after a revocation), in which
    /// case there is no old key to sign.
    /// @param expectedNonce The record's nonce as the caller last read it.
    /// @param newKey A 32-byte Ed25519 public key that was never used before.
    /// @param keyBundleCid The key bundle CID to store with the new key (may be empty).
    /// @param oldKeySig Empty for a recovery rotation, or the 64-byte Ed25519 signature
    /// by the current key over `rotationDigest(handle, expectedNonce, newKey, keyBundleCid)`.
    function rotateKey(
        string calldata handle,
        uint64 expectedNonce,
        bytes32 newKey,
        bytes calldata keyBundleCid,
        bytes calldata oldKeySig
    ) external {
        (bytes32 h, Record storage rec) = _ownedRecord(handle);
        _checkNonce(rec, expectedNonce);
        if (oldKeySig.length != 0 && oldKeySig.length != ED25519_SIGNATURE_LENGTH) {
            revert BadSignatureLength();
        }
        _claimKey(h, newKey);

        bytes32 oldKey = rec.ed25519Key;
        rec.ed25519Key = newKey;
        rec.keyBundleCid = keyBundleCid;
        uint64 nonce = _bump(rec);

        emit KeyRotated(h, nonce, oldKey, newKey, keyBundleCid, oldKeySig);
    }

    /// @notice Marks `key` as compromised for `handle` from now on. If it is the current
    /// key, the record's key becomes zero until the next `rotateKey`.
    /// @param expectedNonce The record's nonce as the caller last read it.
    /// @param key The current key or any earlier key of this handle.
    /// @param reason 0 unspecified, 1 compromised, 2 lost, 3 superseded.
    function revokeKey(string calldata handle, uint64 expectedNonce, bytes32 key, uint8 reason) external {
        (bytes32 h, Record storage rec) = _ownedRecord(handle);
        _checkNonce(rec, expectedNonce);
        if (key == bytes32(0) || _handleOfKey[key] != h) revert BadKey();
        if (_revokedAt[h][key] != 0) revert KeyRevokedAlready();
        if (reason > REASON_SUPERSEDED) revert BadReason(reason);

        _revokedAt[h][key] = uint64(block.timestamp);
        _revokedKeys[h].push(key);
        if (rec.ed25519Key == key) rec.ed25519Key = bytes32(0);
        uint64 nonce = _bump(rec);

        emit KeyRevoked(h, key, nonce, reason);
    }

    /// @notice Points `handle` at a new key bundle without changing its key.
    /// @param expectedNonce The record's nonce as the caller last read it.
    function setKeyBundle(string calldata handle, uint64 expectedNonce, bytes calldata keyBundleCid) external {
        (bytes32 h, Record storage rec) = _ownedRecord(handle);
        _checkNonce(rec, expectedNonce);

        rec.keyBundleCid = keyBundleCid;
        uint64 nonce = _bump(rec);

        emit KeyBundleUpdated(h, nonce, keyBundleCid);
    }

    /// @notice Lets `operator` update the handle's `.muse` name record (never its keys).
    /// Pass the zero address to remove the operator.
    function setOperator(string calldata handle, address operator) external {
        (bytes32 h, Record storage rec) = _ownedRecord(handle);

        rec.operator = operator;
        _bump(rec);

        emit OperatorSet(h, operator);
    }

    /// @notice Links `handle` to ERC-8004 agent `agentId`, which the caller must own.
    /// @dev The agent NFT can change hands after this call, so readers must also check
    /// `ownerOf(agentId) == owner` when they use the link. The id is stored plus one, so
    /// the id 2^256-1 cannot be linked (the addition reverts); ERC-8004 ids count up from 0.
    function linkAgent(string calldata handle, uint256 agentId) external {
        (bytes32 h, Record storage rec) = _ownedRecord(handle);
        if (identityRegistry == address(0)) revert NoIdentityRegistry();
        // ownerOf reverts for an id that was never minted; treat that as "not yours".
        try IERC8004IdentityRegistry(identityRegistry).ownerOf(agentId) returns (address agentOwner) {
            if (agentOwner != msg.sender) revert NotAgentOwner();
        } catch {
            revert NotAgentOwner();
        }

        rec.agentId = agentId + 1;
        _bump(rec);

        emit AgentLinked(h, agentId);
    }

    /// @notice Hands control of `handle` to `to` and removes its operator, which the
    /// previous owner chose. Keys, key bundle and agent link stay as they are.
    function transferHandle(string calldata handle, address to) external {
        (bytes32 h, Record storage rec) = _ownedRecord(handle);
        if (to == address(0)) revert ZeroAddress();

        rec.owner = to;
        if (rec.operator != address(0)) {
            rec.operator = address(0);
            emit OperatorSet(h, address(0));
        }
        _bump(rec);

        emit HandleTransferred(h, msg.sender, to);
    }

    // -------------------------------------------------------------- internal

    /// @dev The record of `handle`, after checking it exists and the caller owns it.
    function _ownedRecord(string calldata handle) private view returns (bytes32 h, Record storage rec) {
        h = handleHash(handle);
        rec = _records[h];
        if (rec.owner == address(0)) revert UnknownHandle();
        if (rec.owner != msg.sender) revert NotOwner();
    }

    /// @dev Reverts unless `expectedNonce` is the record's nonce. No value skips this.
    function _checkNonce(Record storage rec, uint64 expectedNonce) private view {
        if (rec.nonce != expectedNonce) revert BadNonce(expectedNonce, rec.nonce);
    }

    /// @dev Binds a fresh, non-zero key to handle `h` for good.
    function _claimKey(bytes32 h, bytes32 key) private {
        if (key == bytes32(0)) revert BadKey();
        if (_handleOfKey[key] != bytes32(0)) revert KeyInUse();
        _handleOfKey[key] = h;
    }

    /// @dev Records a state change: next nonce, current time. Returns the new nonce.
    function _bump(Record storage rec) private returns (uint64 nonce) {
        nonce = rec.nonce + 1;
        rec.nonce = nonce;
        rec.updatedAt = uint32(block.timestamp);
    }

    /// @dev 1 to 32 bytes of [a-z0-9-], first and last byte not '-'.
    function _isValidHandle(bytes calldata handle) private pure returns (bool) {
        uint256 len = handle.length;
        if (len == 0 || len > MAX_HANDLE_LENGTH) return false;
        if (handle[0] == "-" || handle[len - 1] == "-") return false;
        for (uint256 i = 0; i < len; ++i) {
            bytes1 c = handle[i];
            bool ok = (c >= "a" && c <= "z") || (c >= "0" && c <= "9") || c == "-";
            if (!ok) return false;
        }
        return true;
    }
}
