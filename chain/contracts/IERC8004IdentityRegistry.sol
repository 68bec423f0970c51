// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title The one ERC-8004 Identity Registry call that MuseKeyRegistry makes
/// @notice An ERC-8004 Identity Registry is an ERC-721 whose token ids are agent ids.
/// MuseKeyRegistry only needs to ask who owns an agent id, so this interface holds
/// nothing else. Any ERC-721 answers it.
interface IERC8004IdentityRegistry {
    /// @notice Returns the address that owns the agent NFT `agentId`.
    /// @dev ERC-721 implementations revert for an id that was never minted.
    function ownerOf(uint256 agentId) external view returns (address);
}
