//! `musehub setup` as the appliance runs it at every boot, on directories standing in for the
//! boot partition and the data partition: what a first run makes, that a second run does
//! nothing twice, refusals in words, and the owner's sign-in link landing on `/setup`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use libp2p::identity::ed25519;
use reqwest::StatusCode;

use crate::harness::{client, musehub, spawn_serve_with};

fn setup(dir: &Path) -> crate::harness::Run {
    musehub(
        &dir.join("data"),
        &[
            "setup",
            "--from",
            dir.join("boot/musehub.toml").to_str().expect("utf-8"),
            "--report",
            dir.join("boot/musehub-setup.txt").to_str().expect("utf-8"),
        ],
    )
}

fn state(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("data/setup.json")).expect("setup.json"))
        .expect("json")
}

fn step(state: &serde_json::Value, name: &str) -> (String, String) {
    let s = state["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {state}"));
    (
        s["status"].as_str().expect("status").to_owned(),
        s["detail"].as_str().expect("detail").to_owned(),
    )
}

/// The sign-in link `musehub setup` printed (on the console, in the report).
pub fn printed_link(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| w.starts_with("https://musehub.local/login/"))
        .map(str::to_owned)
}

/// Signs in with a setup link's path at `base`, checks the owner lands on `/setup`, and
/// returns that page.
pub async fn setup_page_after_link(c: &reqwest::Client, base: &str, link_path: &str) -> String {
    let res = c
        .post(format!("{base}{link_path}"))
        .header("origin", base)
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/setup");
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let page = c
        .get(format!("{base}/setup"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("setup page");
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.expect("html")
}

fn boot_dir(owner: &ed25519::Keypair) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("boot")).expect("mkdir");
    std::fs::write(
        dir.path().join("boot/musehub.toml"),
        "# as the musician left it\n[federation]\nowner = \"alice\"\njoin = [\"http://127.0.0.1:9\"]\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("boot/owner.key"),
        musehub::identity::to_pem(owner),
    )
    .expect("write");
    dir
}

#[test]
fn setup_makes_a_hub_from_the_boot_partition_and_does_nothing_twice() {
    let owner = ed25519::Keypair::generate();
    let dir = boot_dir(&owner);
    let d = dir.path();
    let first = setup(d).ok();

    // The link is printed (console) and written to the boot partition.
    let link = printed_link(&first.stdout).unwrap_or_else(|| panic!("no link printed: {first:?}"));
    let report = std::fs::read_to_string(d.join("boot/musehub-setup.txt")).expect("report");
    assert!(report.contains(&link), "{report}");
    assert!(report.contains("SHA-256 fingerprint"), "{report}");

    // The owner's key left the FAT partition for a 0600 file in the data directory.
    assert!(!d.join("boot/owner.key").exists());
    let kept = d.join("data/keys/alice.key");
    assert_eq!(
        std::fs::metadata(&kept).expect("key").permissions().mode() & 0o777,
        0o600
    );
    let key = musehub::identity::read_key_file(&kept).expect("key reads");
    assert_eq!(key.public().to_bytes(), owner.public().to_bytes());

    // The data directory's settings: the appliance's defaults plus what the owner wrote.
    let config = std::fs::read_to_string(d.join("data/musehub.toml")).expect("config");
    for line in [
        "listen = \"0.0.0.0:443\"",
        "tls = true",
        "public_url = \"https://musehub.local\"",
        "lan_name = \"musehub\"",
        "owner = \"alice\"",
    ] {
        assert!(config.contains(line), "{line} missing:\n{config}");
    }

    let s = state(d);
    for name in [
        "config", "secrets", "storage", "tls", "owner", "join", "link",
    ] {
        assert_eq!(step(&s, name).0, "done", "{name}: {s}");
    }
    assert_eq!(step(&s, "anchor").0, "skipped");
    assert!(step(&s, "tls").1.contains("made a new CA"), "{s}");
    assert!(step(&s, "owner").1.contains("created the account"), "{s}");

    // The hub to join is a peer already; the account exists once.
    let peers = musehub(&d.join("data"), &["peer", "list", "--json"]).ok();
    assert!(peers.stdout.contains("http://127.0.0.1:9"), "{peers:?}");
    let users = musehub(&d.join("data"), &["user", "list"]).ok();
    assert_eq!(users.stdout.lines().count(), 1, "{users:?}");

    // A second boot: the same CA, the same unused link, no second account or peer.
    let ca = std::fs::read(d.join("data/tls/ca.crt")).expect("ca");
    let second = setup(d).ok();
    assert!(
        second.stdout.contains(&link),
        "the unused link is shown again: {second:?}"
    );
    assert_eq!(std::fs::read(d.join("data/tls/ca.crt")).expect("ca"), ca);
    let s = state(d);
    assert!(step(&s, "tls").1.contains("kept the CA"), "{s}");
    assert!(step(&s, "owner").1.contains("already in place"), "{s}");
    assert!(step(&s, "secrets").1.contains("Moved owner.key"), "{s}");
    assert_eq!(s["runs"], 2);
    let peers = musehub(&d.join("data"), &["peer", "list", "--json"]).ok();
    assert_eq!(
        peers.stdout.matches("http://127.0.0.1:9").count(),
        1,
        "{peers:?}"
    );

    // A different owner key dropped on the card later is refused and left where it was.
    let other = ed25519::Keypair::generate();
    std::fs::write(d.join("boot/owner.key"), musehub::identity::to_pem(&other)).expect("write");
    setup(d).ok();
    let (status, detail) = step(&state(d), "secrets");
    assert_eq!(status, "failed");
    assert!(detail.contains("different key"), "{detail}");
    assert!(d.join("boot/owner.key").exists());
    std::fs::remove_file(d.join("boot/owner.key")).expect("rm");

    // A broken file: setup says so, the report too, and the working settings stay.
    std::fs::write(d.join("boot/musehub.toml"), "[federation\nowner = alice\n").expect("write");
    let bad = setup(d).fails();
    assert!(
        bad.stderr.contains("could not read its settings"),
        "{bad:?}"
    );
    let report = std::fs::read_to_string(d.join("boot/musehub-setup.txt")).expect("report");
    assert!(report.contains("musehub.toml is not valid"), "{report}");
    assert_eq!(
        std::fs::read_to_string(d.join("data/musehub.toml")).expect("config"),
        config
    );

    // No owner at all.
    std::fs::write(d.join("boot/musehub.toml"), "[ipfs]\nmdns = false\n").expect("write");
    setup(d).fails();
    let report = std::fs::read_to_string(d.join("boot/musehub-setup.txt")).expect("report");
    assert!(report.contains("names no owner"), "{report}");
}

#[tokio::test]
async fn the_setup_link_signs_the_owner_in_and_shows_what_setup_did() {
    let owner = ed25519::Keypair::generate();
    let dir = boot_dir(&owner);
    let d = dir.path();
    let out = setup(d).ok();
    let link = printed_link(&out.stdout).expect("link");
    let path = link
        .strip_prefix("https://musehub.local")
        .expect("path")
        .to_owned();
    // Served over plain http on loopback for the test; the appliance serves https on 443.
    let (_hub, url) = spawn_serve_with(
        &d.join("data"),
        &[
            ("MUSEHUB_TLS", "false"),
            ("MUSEHUB_PUBLIC_URL", "http://127.0.0.1:0"),
        ],
    );
    let c = client();
    // Before signing in, /setup asks for it.
    let res = c.get(format!("{url}/setup")).send().await.expect("get");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let page = setup_page_after_link(&c, &url, &path).await;
    for needle in [
        "Owner account and key",
        "HTTPS certificate authority",
        "Download ca.crt",
        "Windows",
        "macOS",
        "SSL_CERT_FILE=musehub-ca.crt",
        "No [chain] in musehub.toml",
    ] {
        assert!(
            page.contains(needle),
            "{needle} missing from /setup:\n{page}"
        );
    }
    // The link is used up: the next boot does not print a new one.
    let again = setup(d).ok();
    assert!(!again.stdout.contains("/login/"), "{again:?}");
    assert!(again.stdout.contains("alice has signed in"), "{again:?}");
}

/// A disk someone mounted on the data directory (a tmpfs stands in for it, in a mount
/// namespace of the test's own): setup refuses it and writes nothing there, names the device
/// to type, and goes ahead once the owner typed it.
#[test]
fn setup_refuses_a_data_filesystem_it_did_not_make() {
    let owner = ed25519::Keypair::generate();
    let dir = boot_dir(&owner);
    let d = dir.path();
    let data = d.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let run = |extra: &[&str]| {
        let out = std::process::Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(
                r#"mount -t tmpfs musehub-test-disk "$0" || exit 99
"$@"; status=$?
echo "files on the disk:"; ls -A "$0"; exit $status"#,
            )
            .arg(&data)
            .arg(env!("CARGO_BIN_EXE_musehub"))
            .arg("--data-dir")
            .arg(&data)
            .arg("setup")
            .arg("--from")
            .arg(d.join("boot/musehub.toml"))
            .arg("--report")
            .arg(d.join("boot/musehub-setup.txt"))
            .args(extra)
            .output()
            .expect("unshare (util-linux) runs");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        assert_ne!(
            out.status.code(),
            Some(99),
            "mounting a tmpfs in a user and mount namespace: {}",
            text(&out.stderr)
        );
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };

    let (ok, stdout, stderr) = run(&[]);
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("--accept-data-filesystem musehub-test-disk"),
        "{stderr}"
    );
    let files = stdout.split("files on the disk:").nth(1).expect("listing");
    assert_eq!(files.trim(), "", "setup wrote on a disk it did not make");
    // The owner reads why on the boot partition; the key stays there, unmoved.
    let report = std::fs::read_to_string(d.join("boot/musehub-setup.txt")).expect("report");
    assert!(report.contains("did not create"), "{report}");
    assert!(d.join("boot/owner.key").exists());

    // A confirmation that is not the device name is none.
    let (ok, _, stderr) = run(&["--accept-data-filesystem", "yes"]);
    assert!(!ok, "{stderr}");

    let (ok, stdout, stderr) = run(&["--accept-data-filesystem", "musehub-test-disk"]);
    assert!(ok, "{stdout}\n{stderr}");
    let files = stdout.split("files on the disk:").nth(1).expect("listing");
    assert!(files.contains("setup.json"), "{files}");
    assert!(files.contains("musehub.toml"), "{files}");
}
