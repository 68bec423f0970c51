//! Cross-check of our UnixFS importer (`src/storage/unixfs.rs`) against the reference JS one.
//!
//! Other IPFS nodes only recognise an object if its root CID is exactly the one their own
//! importer computes, so these tests import the same bytes twice: once with
//! [`import_bytes`] and once with `ipfs-unixfs-importer` 17.1.1 (`tests/js/unixfs-cid.mjs`,
//! profile `unixfs-v1-2025`). Both must print the same CID.
//!
//! Needs Node 20+ (`MUSEHUB_NODE`, or `node` on the PATH) and the pinned packages installed with
//! `npm ci --prefix tests/js`. A missing install fails the tests; it never skips them.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use cid::Cid;
use musehub::cids::RAW;
use musehub::storage::unixfs::{Profile, UNIXFS_V1_2025, decode_file_node, import_bytes};

const MIB: usize = 1_048_576;

/// Deterministic pseudo-random bytes (xorshift64*): incompressible, no repeated chunks.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Root CID that the JS reference importer gives `bytes`, with the profile's chunk size and
/// width replaced by `overrides` when given.
fn js_root_cid(bytes: &[u8], overrides: Option<Profile>) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/js/node_modules/ipfs-unixfs-importer")
            .is_dir(),
        "the JS reference importer is not installed: run `npm ci --prefix tests/js` (Node 20+)"
    );
    let mut file = tempfile::NamedTempFile::new().expect("create temp file");
    file.write_all(bytes).expect("write temp file");
    file.flush().expect("flush temp file");

    let node = std::env::var_os("MUSEHUB_NODE").unwrap_or_else(|| "node".into());
    let mut cmd = Command::new(&node);
    cmd.current_dir(root)
        .arg("tests/js/unixfs-cid.mjs")
        .arg(file.path());
    if let Some(p) = overrides {
        cmd.arg(p.chunk_size.to_string())
            .arg(p.max_links.to_string());
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {node:?} (install Node 20+ or set MUSEHUB_NODE): {e}")
    });
    assert!(
        out.status.success(),
        "tests/js/unixfs-cid.mjs failed ({}); if packages are missing run `npm ci --prefix tests/js`\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let cid = String::from_utf8(out.stdout)
        .expect("CID is ASCII")
        .trim()
        .to_owned();
    assert!(
        cid.starts_with("baf"),
        "unexpected output from the JS importer: {cid:?}"
    );
    cid
}

/// Number of node levels above the leaves (0 when the root is a leaf).
fn depth(root: &Cid, blocks: &[musehub::storage::unixfs::Block]) -> usize {
    let mut cid = *root;
    let mut depth = 0;
    while cid.codec() != RAW {
        let block = blocks
            .iter()
            .find(|b| b.cid == cid)
            .expect("block of the tree");
        cid = decode_file_node(&block.data).expect("valid node").links[0].cid;
        depth += 1;
    }
    depth
}

#[test]
fn cids_match_js_importer() {
    for (i, len) in [0, 1, MIB, MIB + 1, 5 * MIB].into_iter().enumerate() {
        let bytes = random_bytes(0x6d75_7365 + i as u64, len);
        let (root, blocks) = import_bytes(UNIXFS_V1_2025, &bytes);
        let ours = root.to_string();
        assert_eq!(
            ours,
            js_root_cid(&bytes, None),
            "root CID of {len} random bytes"
        );
        // One chunk or less is a bare raw leaf; more is a depth-1 dag-pb tree.
        let expected_depth = usize::from(len > MIB);
        assert_eq!(
            depth(&root, &blocks),
            expected_depth,
            "depth for {len} bytes"
        );
    }
}

#[test]
fn balanced_tree_matches_js_importer_with_small_width() {
    let profile = Profile {
        chunk_size: 1024,
        max_links: 4,
    };
    // (size, levels of nodes above the leaves): full and just-over-full trees.
    let cases = [
        (5 * 1024, 2),      // 5 leaves
        (16 * 1024, 2),     // 16 leaves: full, depth 2
        (17 * 1024 + 5, 3), // 18 leaves: 3 levels, lone trailing leaves wrapped
        (64 * 1024, 3),     // 64 leaves: full, depth 3
        (65 * 1024 + 3, 4), // 66 leaves: 4 levels
    ];
    for (i, (len, levels)) in cases.into_iter().enumerate() {
        let bytes = random_bytes(0x7769_6474 + i as u64, len);
        let (root, blocks) = import_bytes(profile, &bytes);
        assert_eq!(depth(&root, &blocks), levels, "depth for {len} bytes");
        assert_eq!(
            root.to_string(),
            js_root_cid(&bytes, Some(profile)),
            "root CID of {len} random bytes with chunk 1024, width 4"
        );
    }
}
