//! The administrative commands: `init`, `user`, `token`, `repo`, `login-link`, `doctor`.

use anyhow::{Context, Result, anyhow, bail};

use super::{RepoCommand, TokenCommand, UserCommand, split_repo};
use crate::config::{Config, TEMPLATE};
use crate::db::repos::{self, Visibility};
use crate::db::{self, sessions, users};
use crate::hub::{self, Hub};
use crate::server::open_hub;
use crate::{auth, doctor, tls};

pub(super) fn init(config: &Config, tls_names: &[String]) -> Result<()> {
    let hub = open_hub(config)?;
    drop(hub);
    let file = config.paths.config_file();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
    {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(TEMPLATE.as_bytes())?;
            println!("wrote {}", file.display());
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            println!("kept existing {}", file.display())
        }
        Err(e) => return Err(e).with_context(|| format!("writing {}", file.display())),
    }
    let mut names = config.certificate_names();
    names.extend(tls_names.iter().cloned());
    let paths = config.paths.tls();
    let sans = tls::ensure_certificates(&paths, &names)?;
    println!("https certificate covers: {}", sans.join(", "));
    println!(
        "CA certificate for clients: {} (also served at /ca.crt)",
        paths.ca_cert.display()
    );
    println!("data directory ready: {}", config.paths.data_dir.display());
    Ok(())
}

pub(super) fn user(config: &Config, cmd: UserCommand) -> Result<()> {
    let hub = open_hub(config)?;
    match cmd {
        UserCommand::Add { name } => {
            hub::check_user_name(&name)?;
            let created = hub.db().write_blocking(|tx| {
                if users::by_name(tx, &name)?.is_some() {
                    return Ok::<_, db::Error>(None);
                }
                users::create(tx, &name).map(Some)
            })?;
            match created {
                Some(u) => println!("added user {}", u.name),
                None => bail!("user {name} already exists"),
            }
        }
        UserCommand::List => {
            for u in hub.db().read_blocking(users::list)? {
                println!("{}\t{}", u.name, u.created_at);
            }
        }
        UserCommand::ClearKeyCache => {
            let n = hub
                .db()
                .write_blocking(|tx| crate::db::identities::wipe_cache(tx))?;
            println!(
                "Forgot the cached key state of {n} handle(s); the hub reads it again from the chain when it starts."
            );
        }
    }
    Ok(())
}

pub(super) fn token(config: &Config, cmd: TokenCommand) -> Result<()> {
    let hub = open_hub(config)?;
    match cmd {
        TokenCommand::Create {
            user,
            label,
            expires,
        } => {
            let u = find_user(&hub, &user)?;
            let token = auth::new_token();
            let hash = auth::hash_token(&token);
            let expires_at =
                expires.map(|d| db::unix_now() + std::time::Duration::from(d).as_secs() as i64);
            hub.db()
                .write_blocking(|tx| users::add_token(tx, u.id, &hash, &label, expires_at))?;
            println!("{token}");
            eprintln!();
            eprintln!("This token is shown once. Give it to the Muse CLI with:");
            eprintln!();
            eprintln!(
                "    muse auth login --hub {} --token {token}",
                config.public_url
            );
            eprintln!();
            if config.public_url.starts_with("https://") {
                eprintln!(
                    "and trust this hub's certificate: SSL_CERT_FILE=ca.crt muse push (get ca.crt from {}/ca.crt)",
                    config.public_url
                );
            }
        }
        TokenCommand::List { user } => {
            for t in hub
                .db()
                .read_blocking(|c| users::list_tokens(c, user.as_deref()))?
            {
                let state = if t.revoked {
                    "revoked".to_owned()
                } else {
                    match t.expires_at {
                        Some(e) if e <= db::unix_now() => "expired".to_owned(),
                        Some(e) => format!(
                            "expires {}",
                            humantime::format_rfc3339_seconds(
                                std::time::UNIX_EPOCH + std::time::Duration::from_secs(e as u64)
                            )
                        ),
                        None => "active".to_owned(),
                    }
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    t.id, t.user, t.label, t.created_at, state
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if hub.db().write_blocking(|tx| users::revoke_token(tx, id))? {
                println!("revoked token {id}");
            } else {
                bail!("no active token {id} (see `musehub token list`)");
            }
        }
    }
    Ok(())
}

pub(super) fn repo(config: &Config, cmd: RepoCommand) -> Result<()> {
    let hub = open_hub(config)?;
    match cmd {
        RepoCommand::Create { repo, private } => {
            let (owner, slug) = split_repo(&repo)?;
            hub::check_slug(slug)?;
            let u = find_user(&hub, owner)?;
            let vis = if private {
                Visibility::Private
            } else {
                Visibility::Public
            };
            let made = hub.db().write_blocking(|tx| {
                if repos::get(tx, owner, slug)?.is_some() {
                    return Ok::<_, db::Error>(false);
                }
                repos::create(tx, u.id, slug, vis, &hub::new_uuid())?;
                Ok(true)
            })?;
            if !made {
                bail!("repository {repo} already exists");
            }
            println!("created {} repository {repo}", vis.as_str());
            println!(
                "push to it with: muse remote add origin {}/{repo} && muse push origin main",
                config.public_url
            );
        }
        RepoCommand::List { owner } => {
            for r in hub
                .db()
                .read_blocking(|c| repos::list(c, owner.as_deref()))?
            {
                println!(
                    "{}/{}\t{}\t{}",
                    r.owner,
                    r.slug,
                    r.visibility.as_str(),
                    r.pushed_at.as_deref().unwrap_or("never pushed")
                );
            }
        }
        RepoCommand::SetVisibility { repo, visibility } => {
            let (owner, slug) = split_repo(&repo)?;
            let vis = Visibility::parse(&visibility)
                .ok_or_else(|| anyhow!("visibility must be public or private"))?;
            let r = hub
                .db()
                .read_blocking(|c| repos::get(c, owner, slug))?
                .ok_or_else(|| anyhow!("no repository {repo}"))?;
            hub.db()
                .write_blocking(|tx| repos::set_visibility(tx, r.id, vis))?;
            println!("{repo} is now {}", vis.as_str());
        }
    }
    Ok(())
}

/// The longest a login link may stay valid: it is meant to be opened right away.
const MAX_LOGIN_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

pub(super) fn login_link(config: &Config, user: &str, ttl: std::time::Duration) -> Result<()> {
    if ttl.is_zero() || ttl > MAX_LOGIN_LINK_TTL {
        bail!(
            "--ttl must be between 1s and 7d (got {})",
            humantime::format_duration(ttl)
        );
    }
    let hub = open_hub(config)?;
    let u = find_user(&hub, user)?;
    let expires_at = db::unix_now() + ttl.as_secs().max(1) as i64;
    let token = hub
        .db()
        .write_blocking(|tx| sessions::issue_login_link(tx, u.id, expires_at))?;
    println!("{}/login/{token}", config.public_url);
    eprintln!();
    eprintln!(
        "Open this link in a browser to sign in as {} (once, within {}).",
        u.name,
        humantime::format_duration(ttl)
    );
    eprintln!(
        "Anyone holding it can sign in as {}: send it privately.",
        u.name
    );
    Ok(())
}

pub(super) fn doctor(config: &Config, json: bool) -> Result<()> {
    let hub = open_hub(config)?;
    let report = doctor::run(&hub, |step| {
        if !json {
            eprintln!("{step}…");
        }
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "checked {} blocks, {} objects, {} commits in {} repositories",
            report.blocks_checked,
            report.objects_checked,
            report.commits_checked,
            report.repos_checked
        );
        for s in &report.shallow {
            println!("shallow: {s}");
        }
        for f in &report.faults {
            println!("FAULT: {f}");
        }
        if report.ok {
            println!("all good");
        }
    }
    if !report.ok {
        bail!("{} fault(s) found", report.faults.len());
    }
    Ok(())
}

fn find_user(hub: &Hub, name: &str) -> Result<users::User> {
    hub.db()
        .read_blocking(|c| users::by_name(c, name))?
        .ok_or_else(|| anyhow!("no user {name}; add one with `musehub user add {name}`"))
}
