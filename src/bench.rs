//! `musehub bench` (being written).
use anyhow::Result;

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_config: &Config, _args: Args) -> Result<()> {
    anyhow::bail!("not yet")
}
