//! Releases (JSON records the CLI sends, msgpack it reads) and wire tags.

use crate::cids::Id;
use crate::db;
use crate::db::content;
use crate::db::repos::{self, Repo};
use crate::wire;
use crate::wire::answers::{Releases, Retracted, TagsStored};
use crate::wire::requests::Tags;

use super::{Error, Hub, Readable, Result, Writable, new_uuid};

impl Hub {
    /// `POST releases` (JSON body). Owner only. Returns the server-assigned release id.
    pub async fn create_release(&self, repo: &Writable<Repo>, body: &[u8]) -> Result<String> {
        let mut rec: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| wire::Error::Json(e.to_string()))?;
        let obj = rec
            .as_object_mut()
            .ok_or_else(|| Error::Invalid("release must be a JSON object".into()))?;
        let tag = obj
            .get("tag")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_owned();
        if tag.is_empty() || tag.len() > 100 || tag.contains(['/', '\0', '\n']) {
            return Err(Error::Invalid(format!("release tag {tag:?} is not valid")));
        }
        let pre = obj
            .get("semver")
            .and_then(|s| s.get("pre"))
            .and_then(|p| p.as_str())
            .unwrap_or("");
        let channel = match obj
            .get("channel")
            .and_then(|c| c.as_str())
            .filter(|c| !c.is_empty())
        {
            Some(c) => c.to_owned(),
            None => infer_channel(pre).to_owned(),
        };
        if !matches!(channel.as_str(), "stable" | "beta" | "alpha" | "nightly") {
            return Err(Error::Invalid(format!(
                "channel must be stable, beta, alpha or nightly, got {channel:?}"
            )));
        }
        let commit = obj
            .get("commit_id")
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_owned();
        let commit_id =
            Id::parse(&commit).map_err(|e| Error::Invalid(format!("commit_id: {e}")))?;
        let is_draft = obj
            .get("is_draft")
            .and_then(|d| d.as_bool())
            .unwrap_or(false);
        let uuid = new_uuid();
        obj.insert("release_id".into(), uuid.clone().into());
        obj.insert("repo_id".into(), repo.uuid.clone().into());
        obj.insert("channel".into(), channel.clone().into());
        if obj
            .get("created_at")
            .and_then(|c| c.as_str())
            .is_none_or(str::is_empty)
        {
            obj.insert("created_at".into(), db::now().into());
        }
        let release = repos::Release {
            uuid: uuid.clone(),
            tag: tag.clone(),
            channel,
            is_draft,
            record: rec.to_string(),
        };
        let repo_id = repo.id;
        self.db
            .write(move |tx| {
                if !content::repo_has_commit(tx, repo_id, &commit_id)? {
                    return Err(Error::Invalid(format!(
                        "commit {commit_id} is not on this hub: push it before its release"
                    )));
                }
                if !repos::add_release(tx, repo_id, &release, &commit)? {
                    return Err(Error::Conflict(format!("release {tag} already exists")));
                }
                Ok(())
            })
            .await?;
        Ok(uuid)
    }

    /// `GET releases`, newest first.
    pub async fn releases(
        &self,
        repo: &Readable<Repo>,
        channel: Option<String>,
        drafts: bool,
    ) -> Result<Releases> {
        let repo_id = repo.id;
        let channel =
            channel.filter(|c| matches!(c.as_str(), "stable" | "beta" | "alpha" | "nightly"));
        let list = self
            .db
            .read(move |c| repos::releases(c, repo_id, channel.as_deref(), drafts))
            .await?;
        let items = list
            .iter()
            .map(|r| serde_json::from_str::<serde_json::Value>(&r.record))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Invalid(format!("stored release record: {e}")))?;
        Ok(Releases(items))
    }

    /// `DELETE releases/{tag}`: removes the label only; commits and objects stay.
    pub async fn delete_release(&self, repo: &Writable<Repo>, tag: &str) -> Result<Retracted> {
        let (repo_id, t) = (repo.id, tag.to_owned());
        if !self
            .db
            .write(move |tx| repos::delete_release(tx, repo_id, &t))
            .await?
        {
            return Err(Error::NotFound(format!("release {tag} not found")));
        }
        Ok(Retracted(tag.to_owned()))
    }

    /// `POST tags`: upserts wire tags by label.
    pub async fn tags(&self, repo: &Writable<Repo>, req: Tags) -> Result<TagsStored> {
        let parsed: Vec<_> = req
            .tags
            .into_iter()
            .map(|t| {
                (
                    t.label,
                    t.tag_id.unwrap_or_else(new_uuid),
                    t.commit_id.to_hex(),
                    t.created_at.unwrap_or_else(db::now),
                )
            })
            .collect();
        let (repo_id, n) = (repo.id, parsed.len());
        self.db
            .write(move |tx| {
                for (label, tag_id, commit, created) in &parsed {
                    repos::upsert_tag(tx, repo_id, label, tag_id, commit, created)?;
                }
                Ok::<_, Error>(())
            })
            .await?;
        Ok(TagsStored(n as u64))
    }
}

fn infer_channel(pre: &str) -> &'static str {
    if pre.starts_with("alpha") {
        "alpha"
    } else if pre.starts_with("beta") {
        "beta"
    } else if pre.starts_with("nightly") {
        "nightly"
    } else {
        "stable"
    }
}
