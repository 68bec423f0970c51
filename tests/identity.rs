//! `musehub key generate|show|import`: private key files, never printed, signed bundles.

use std::os::unix::fs::PermissionsExt;

use crate::harness::musehub_cmd;

fn key_cmd(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    musehub_cmd(&home.join("data"))
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .args(args)
        .output()
        .expect("musehub runs")
}

#[test]
fn keys_are_generated_private_shown_without_secrets_and_imported() {
    let home = tempfile::tempdir().unwrap();
    let out = key_cmd(home.path(), &["key", "generate", "--handle", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("peer id:     12D3Koo"), "{stdout}");
    let path = home.path().join(".config/musehub/keys/alice.key");
    let pem = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The private key appears in no output.
    let seed_b64 = pem.lines().nth(1).unwrap();
    let show = key_cmd(home.path(), &["key", "show", "--handle", "alice", "--json"]);
    assert!(show.status.success());
    let all = format!(
        "{}{}{}",
        stdout,
        String::from_utf8_lossy(&show.stdout),
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(
        !all.contains(seed_b64) && !all.contains("PRIVATE KEY"),
        "{all}"
    );
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert!(
        v["bundle_cid"].as_str().unwrap().starts_with("bafyrei"),
        "{v}"
    );
    assert_eq!(v["public_key"].as_str().unwrap().len(), 64);

    // Never overwritten; a bad handle is refused.
    let again = key_cmd(home.path(), &["key", "generate", "--handle", "alice"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
    let bad = key_cmd(home.path(), &["key", "generate", "--handle", "Alice"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid handle"));

    // Importing the same PEM under another handle gives the same public key.
    let imported = key_cmd(
        home.path(),
        &[
            "key",
            "import",
            "--handle",
            "alice-laptop",
            path.to_str().unwrap(),
        ],
    );
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let show2 = key_cmd(
        home.path(),
        &["key", "show", "--handle", "alice-laptop", "--json"],
    );
    let v2: serde_json::Value = serde_json::from_slice(&show2.stdout).unwrap();
    assert_eq!(v2["public_key"], v["public_key"]);
    // A key file others can read is refused with the fix.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = key_cmd(home.path(), &["key", "show", "--handle", "alice"]);
    assert!(String::from_utf8_lossy(&open.stderr).contains("chmod 600"));
}
