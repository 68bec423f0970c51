//! `musehub setup`: prints what [`crate::setup::run`] did, for the console and the journal.

use anyhow::Result;

use crate::setup::{Options, Status};

pub(super) fn run(opts: Options) -> Result<()> {
    let rt = super::runtime()?;
    let outcome = rt.block_on(crate::setup::run(&opts))?;
    println!("{}", outcome.report);
    if let Some(path) = &opts.report {
        println!("(also written to {})", path.display());
    }
    let failed = outcome.state.failed();
    if !failed.is_empty() {
        // The hub still starts: a step that needs the network or the chain is tried again
        // at the next start, and the web UI's Setup page shows what is missing.
        eprintln!(
            "setup: {} step(s) need attention: {}",
            failed.len(),
            failed
                .iter()
                .map(|s| s.title.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if outcome.state.step("config").map(|s| s.status) == Some(Status::Failed) {
        anyhow::bail!("setup could not read its settings; see above");
    }
    Ok(())
}
