//! The imported rules checked with the site policy: a rule that would break
//! one of the site's `require` statements is withheld, with the chain.
//!
//! Rules are added one at a time, in the fragment's order, to the site
//! policy (read with its includes and inventory), and the requirements are
//! proved again by the compiler's flow graph each time. Requirements the site
//! already breaks on its own are not blamed on the import.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use wardgate_lang::Loaded;

use crate::analysis::{Options, analyze, hop_text};
use crate::graph::Proof;
use crate::model::Date;

/// Why the combined policy cannot be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read the site policy: {0}")]
    Io(#[from] io::Error),
    #[error("the site policy with the imported rules has errors: {0}")]
    Invalid(String),
}

/// Per candidate rule (full `allow` statement): `None` if it can be added,
/// else the requirement it would break and the chain, in words. Files are
/// read through `read` (the crate makes no syscalls; the CLI passes
/// `std::fs::read_to_string`).
///
/// # Errors
/// The site cannot be read, or site and rules do not check (an undefined
/// zone in the bindings, for example).
pub fn withhold(
    site: &Path,
    read: &mut dyn FnMut(&Path) -> io::Result<String>,
    candidates: &[String],
    today: Option<Date>,
) -> Result<Vec<Option<String>>, CheckError> {
    let opts = Options { today };
    let site_text = read(site)?;
    let site_lines = u32::try_from(site_text.lines().count()).unwrap_or(u32::MAX);
    let mut violated = |extra: &str| -> Result<Vec<(String, String)>, CheckError> {
        let loaded = load_with_extra(site, &site_text, extra, read)?;
        if let Some(d) = loaded.diagnostics.iter().find(|d| d.is_error()) {
            return Err(CheckError::Invalid(d.message.clone()));
        }
        let analysis = analyze(&loaded, &opts);
        let mut out = Vec::new();
        for (req, proof) in analysis.policy.requirements.iter().zip(&analysis.proofs) {
            if let Proof::Violated(chain) = proof {
                let hops: Vec<String> = chain
                    .iter()
                    .map(|h| match h.rule {
                        Some(r) if analysis.policy.rule(r).origin.line > site_lines => {
                            let p = &analysis.policy;
                            format!(
                                "{} -> {} (imported)",
                                p.zone(h.from).name,
                                p.zone(h.to).name
                            )
                        }
                        _ => hop_text(&analysis.policy, h),
                    })
                    .collect();
                out.push((req.text.clone(), hops.join(", ")));
            }
        }
        if out.is_empty()
            && let Some(d) = analysis.diagnostics.iter().find(|d| d.is_error())
        {
            return Err(CheckError::Invalid(d.message.clone()));
        }
        Ok(out)
    };
    let baseline: BTreeSet<String> = violated("")?.into_iter().map(|(r, _)| r).collect();
    let mut accepted = String::new();
    let mut result = Vec::new();
    for rule in candidates {
        let extra = format!("{accepted}{rule}\n");
        let new: Vec<(String, String)> = violated(&extra)?
            .into_iter()
            .filter(|(r, _)| !baseline.contains(r))
            .collect();
        if let Some((req, chain)) = new.into_iter().next() {
            result.push(Some(format!("would break `{req}`: {chain}")));
        } else {
            accepted = extra;
            result.push(None);
        }
    }
    Ok(result)
}

/// Loads the site with `extra` appended to its root file.
fn load_with_extra(
    site: &Path,
    site_text: &str,
    extra: &str,
    read: &mut dyn FnMut(&Path) -> io::Result<String>,
) -> Result<Loaded, CheckError> {
    let mut first = true;
    let combined = format!("{site_text}\n{extra}");
    let loaded = wardgate_lang::load_with(site, &mut |p: &Path| {
        if first {
            first = false;
            Ok(combined.clone())
        } else {
            read(p)
        }
    })?;
    Ok(loaded)
}
