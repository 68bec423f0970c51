// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title Test stand-in for an ERC-8004 Identity Registry
/// @notice Only what `MuseKeyRegistry.linkAgent` touches: agent ids handed out from 0
/// upward, as in the ERC-8004 reference implementation, and `ownerOf`, which reverts for
/// an id that was never minted, as ERC-721 requires. Compiled by the test itself; it is
/// never deployed anywhere else and has no artifact.
contract MockIdentityRegistry {
    error NonexistentToken(uint256 agentId);

    mapping(uint256 agentId => address) private _owners;
    uint256 private _next;

    /// @notice Mints the next agent id to `to` and returns it.
    function register(address to) external returns (uint256 agentId) {
        agentId = _next++;
        _owners[agentId] = to;
    }

    /// @notice The owner of `agentId`; reverts if it was never minted.
    function ownerOf(uint256 agentId) external view returns (address owner) {
        owner = _owners[agentId];
        if (owner == address(0)) revert NonexistentToken(agentId);
    }
}
