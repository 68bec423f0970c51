//! `musehub login <hub> --user <handle>`: signs the hub's challenge with the user's key,
//! receives a bearer token bound to that key, and stores it where the Muse CLI reads it
//! (`~/.muse/identity.toml`, protocol doc §4.5), so `muse push` just works.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use super::key;
use crate::{httpsig, identity};

/// What `musehub login` was asked to do.
#[derive(Debug)]
pub(super) struct LoginArgs {
    pub hub: String,
    pub user: String,
    pub key_file: Option<PathBuf>,
    /// A token the user already has on this hub, to add the key to that account.
    pub token: Option<String>,
    pub label: String,
}

pub(super) fn run(args: LoginArgs) -> Result<()> {
    key::check_handle(&args.user)?;
    let base = args.hub.trim_end_matches('/').to_owned();
    let url = reqwest::Url::parse(&base).with_context(|| {
        format!("{base:?} is not a hub address like https://musehub.local:8443")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("the hub address must start with http:// or https://");
    }
    let host_key = host_key(&url)?;
    let key_path = args
        .key_file
        .clone()
        .map_or_else(|| key::default_key_path(&args.user), Ok)?;
    let keypair = identity::read_key_file(&key_path).with_context(|| {
        format!(
            "no usable key for {} (create one with: musehub key generate --handle {})",
            args.user, args.user
        )
    })?;
    let bundle = std::fs::read(key::bundle_path(&key_path)).ok();
    let public = hex::encode(keypair.public().to_bytes());

    let rt = super::runtime()?;
    let token = rt.block_on(async {
        let client = super::dag::http_client()?;
        let res = client
            .post(format!("{base}/api/v1/login/challenge"))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "handle": args.user }).to_string())
            .send()
            .await
            .with_context(|| format!("cannot reach {base}"))?;
        let challenge = answer(res, "the login challenge").await?;
        let challenge = challenge["challenge"]
            .as_str()
            .ok_or_else(|| anyhow!("{base} sent no challenge (is it a musehub?)"))?
            .to_owned();

        let body = serde_json::to_vec(&serde_json::json!({
            "handle": args.user,
            "key": public,
            "bundle": bundle.as_ref().map(|b| data_encoding::BASE64.encode(b)),
            "label": args.label,
        }))?;
        let login_url = format!("{base}/api/v1/login");
        let lib_key = identity::keypair(&keypair);
        let signed = httpsig::signed_headers(
            "POST",
            &login_url,
            &body,
            &httpsig::Signing {
                created: crate::db::unix_now(),
                expires: crate::db::unix_now() + 120,
                nonce: &challenge,
                keyid: &public,
                label: "sig1",
            },
            &lib_key,
        )?;
        let mut req = client
            .post(&login_url)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in signed {
            req = req.header(k, v);
        }
        if let Some(t) = &args.token {
            req = req.bearer_auth(t);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot reach {base}"))?;
        let v = answer(res, "login").await?;
        let token = v["token"]
            .as_str()
            .ok_or_else(|| anyhow!("{base} answered without a token"))?
            .to_owned();
        let anchored = v["anchored"].as_bool().unwrap_or(false);
        Ok::<_, anyhow::Error>((token, anchored))
    })?;
    let (token, anchored) = token;

    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set"))?;
    let muse_dir = Path::new(&home).join(".muse");
    store_token(&muse_dir, &host_key, &args.user, &token)?;
    println!("Signed in to {base} as {}.", args.user);
    if anchored {
        println!("Your key is anchored on chain; the token ends if the key is rotated or revoked.");
    } else {
        println!("Your key is known to this hub (not anchored on chain).");
    }
    println!(
        "The Muse CLI now uses this token for {host_key} (saved in {}): `muse push` works.",
        muse_dir.join("identity.toml").display()
    );
    if url.scheme() == "http" && !is_loopback(&url) {
        println!(
            "Note: the Muse CLI sends tokens over http:// only to this machine; use the hub's https:// address for pushes."
        );
    }
    Ok(())
}

/// The JSON of a successful answer, or the hub's `detail` as the error.
async fn answer(res: reqwest::Response, what: &str) -> Result<serde_json::Value> {
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let detail = v["detail"].as_str().map(str::to_owned).unwrap_or(text);
        bail!("{what} was refused ({status}): {detail}");
    }
    Ok(v)
}

fn is_loopback(url: &reqwest::Url) -> bool {
    matches!(
        url.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
    )
}

/// The Muse CLI's key for a hub: lowercased `host[:port]`, no scheme or user info.
pub(crate) fn host_key(url: &reqwest::Url) -> Result<String> {
    let host = url
        .host_str()
        .ok_or_else(|| anyhow!("{url} has no host"))?
        .to_ascii_lowercase();
    Ok(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// Writes `token` for `host_key` into `<muse_dir>/identity.toml` the way the Muse CLI does:
/// directory 0700, file 0600, a temp file renamed over the old one, never through a symlink,
/// holding an exclusive lock on `.identity.lock`. Other hubs' entries are kept.
pub(crate) fn store_token(muse_dir: &Path, host_key: &str, name: &str, token: &str) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if muse_dir
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        bail!(
            "{} is a symbolic link; refusing to write through it",
            muse_dir.display()
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(muse_dir)
        .with_context(|| format!("creating {}", muse_dir.display()))?;
    std::fs::set_permissions(muse_dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", muse_dir.display()))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(muse_dir.join(".identity.lock"))
        .context("opening ~/.muse/.identity.lock")?;
    lock.lock().context("locking ~/.muse/.identity.lock")?;

    let path = muse_dir.join("identity.toml");
    let mut table = match path.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() => {
            bail!(
                "{} is a symbolic link; refusing to write through it",
                path.display()
            )
        }
        Ok(_) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            text.parse::<toml::Table>().with_context(|| {
                format!("{} is not valid TOML; fix or remove it", path.display())
            })?
        }
        Err(_) => toml::Table::new(),
    };
    let mut entry = match table.remove(host_key) {
        Some(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    };
    entry.insert("type".into(), "human".into());
    entry.insert("name".into(), name.into());
    entry.insert("token".into(), token.into());
    table.insert(host_key.to_owned(), toml::Value::Table(entry));

    // `toml` quotes a key only when it must; the CLI always quotes host keys, so a dotted
    // host is never read as nested tables. Write each table by hand with a quoted key.
    let mut text = String::new();
    for (k, v) in &table {
        match v {
            toml::Value::Table(t) => {
                text.push_str(&format!("[{}]\n", quote(k)));
                text.push_str(&toml::to_string(t).context("writing identity.toml")?);
                text.push('\n');
            }
            other => bail!(
                "{} has a top-level {k} = {other} that is not a hub table; fix or remove it",
                path.display()
            ),
        }
    }
    crate::fsutil::write_atomic(&path, text.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    drop(lock);
    Ok(())
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn identity_file_has_the_cli_layout_and_keeps_other_hubs() {
        let home = tempfile::tempdir().unwrap();
        let muse = home.path().join(".muse");
        store_token(&muse, "musehub.ai", "alice", "tok-1").unwrap();
        store_token(&muse, "127.0.0.1:18765", "alice", "tok-2").unwrap();
        store_token(&muse, "musehub.ai", "alice", "tok-3").unwrap();
        let text = std::fs::read_to_string(muse.join("identity.toml")).unwrap();
        assert!(text.contains("[\"musehub.ai\"]\n"), "{text}");
        assert!(text.contains("[\"127.0.0.1:18765\"]\n"), "{text}");
        let t: toml::Table = text.parse().unwrap();
        assert_eq!(t["musehub.ai"]["token"].as_str(), Some("tok-3"));
        assert_eq!(t["musehub.ai"]["type"].as_str(), Some("human"));
        assert_eq!(t["127.0.0.1:18765"]["token"].as_str(), Some("tok-2"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&muse), 0o700);
        assert_eq!(mode(&muse.join("identity.toml")), 0o600);
        assert!(!muse.join(".identity.toml.tmp").exists());
    }

    #[test]
    fn a_symlinked_identity_file_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let muse = home.path().join(".muse");
        std::fs::create_dir_all(&muse).unwrap();
        let elsewhere = home.path().join("elsewhere.toml");
        std::fs::write(&elsewhere, "").unwrap();
        std::os::unix::fs::symlink(&elsewhere, muse.join("identity.toml")).unwrap();
        let e = store_token(&muse, "h", "alice", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "");
    }

    #[test]
    fn host_keys_follow_the_cli() {
        let k = |u: &str| host_key(&reqwest::Url::parse(u).unwrap()).unwrap();
        assert_eq!(k("https://MuseHub.AI/a/b"), "musehub.ai");
        assert_eq!(k("http://127.0.0.1:18765/x"), "127.0.0.1:18765");
        assert_eq!(k("https://user:pw@hub.local:8443"), "hub.local:8443");
    }
}
