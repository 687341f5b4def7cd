//! The wardgate compiler: policy in, `(PolicyImage, Vec<Diagnostic>)` out.
//!
//! Pure: no syscalls, no aya. Same input, byte-identical image.
//!
//! What it is: resolution of the AST into a zone model ([`model`]), rule
//! lowering to the datapath's interval tables ([`lower`]), the policy image
//! ([`image`]), the reference evaluator ([`eval`]), the flow graph and
//! requirement proofs ([`graph`]), lints ([`lints`]), and the reviewer's views
//! (`query`, `graph`, `diff`, `report`). What it is not: a parser (that is
//! `wardgate-lang`) or a loader (that is `wardgate-agent`).
#![forbid(unsafe_code)]

pub mod analysis;
pub mod capacity;
pub mod codes;
pub mod ctlimits;
pub mod discover;
pub mod eval;
pub mod graph;
pub mod image;
pub mod lints;
pub mod lower;
pub mod lsp;
pub mod model;
pub mod mud;
pub mod nft;
pub mod portdir;
pub mod prefix;
pub mod reach;
pub mod resolve;
#[doc(hidden)]
pub mod testutil;
pub mod v4table;
pub mod views;

pub use analysis::{Analysis, Options, analyze, compile};
pub use eval::{Decision, Packet, Verdict, decide};
pub use image::{ImageError, PolicyImage};

/// Lowers a resolved policy and builds its image, for the rules in force on
/// `today` (every rule when `None`).
///
/// # Errors
/// [`ImageError::Capacity`] when the policy does not fit the datapath's maps.
pub fn build_image(
    policy: &model::Policy,
    today: Option<model::Date>,
) -> Result<PolicyImage, ImageError> {
    let lowered = lower::lower(policy, today)?;
    PolicyImage::build(policy, &lowered)
}
