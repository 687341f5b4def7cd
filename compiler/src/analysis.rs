//! The pipeline: loaded AST to resolved policy, lowered tables, flow graph,
//! requirement proofs, lints and the image.

use wardgate_lang::{Diagnostic, FileId, Loaded, Span};

use crate::codes;
use crate::graph::{FlowGraph, Hop, Proof};
use crate::image::PolicyImage;
use crate::lints;
use crate::lower::{Lowered, lower};
use crate::model::{Date, Policy, RequireKind};
use crate::resolve::resolve;

/// What the compiler needs to know beyond the policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The date rules' `until` is compared with (UTC). `None` keeps every
    /// rule in force and skips the date lints; the CLI always passes one
    /// (`--today`, or the system date).
    pub today: Option<Date>,
}

/// Everything the compiler found out about a policy.
#[derive(Debug)]
pub struct Analysis {
    pub policy: Policy,
    /// `None` when the policy does not fit the datapath.
    pub lowered: Option<Lowered>,
    pub graph: Option<FlowGraph>,
    /// Per requirement (same order as `policy.requirements`).
    pub proofs: Vec<Proof>,
    /// `None` when there are errors (the loaded policy's or the compiler's).
    pub image: Option<PolicyImage>,
    /// The compiler's diagnostics only (not the loaded policy's), sorted.
    pub diagnostics: Vec<Diagnostic>,
}

impl Analysis {
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Resolves, lowers, proves and lints a loaded policy. When the loaded
/// policy has errors, nothing further is analysed (its statements may be
/// incomplete) and the analysis is empty.
#[must_use]
pub fn analyze(loaded: &Loaded, opts: &Options) -> Analysis {
    if loaded.has_errors() {
        return Analysis {
            policy: Policy::new(),
            lowered: None,
            graph: None,
            proofs: Vec::new(),
            image: None,
            diagnostics: Vec::new(),
        };
    }
    let (policy, diagnostics) = resolve(&loaded.policy, &loaded.sources);
    analyze_policy(policy, diagnostics, opts)
}

/// [`analyze`] for a policy already resolved (tests, benchmarks, generators).
#[must_use]
pub fn analyze_policy(
    policy: Policy,
    mut diagnostics: Vec<Diagnostic>,
    opts: &Options,
) -> Analysis {
    let root = Span::new(FileId(0), 0, 0);
    let capacity = |e: &dyn std::fmt::Display| {
        Diagnostic::new(&codes::CAPACITY_EXCEEDED, root, e.to_string())
            .with_help("use fewer, broader selectors and tags, or split the policy across gateways")
    };
    let lowered = match lower(&policy, opts.today) {
        Ok(l) => l,
        Err(e) => {
            diagnostics.push(capacity(&e));
            wardgate_lang::diagnostic::sort(&mut diagnostics);
            return Analysis {
                policy,
                lowered: None,
                graph: None,
                proofs: Vec::new(),
                image: None,
                diagnostics,
            };
        }
    };
    let graph = FlowGraph::of_policy(&policy, &lowered);
    let proofs: Vec<Proof> = policy.requirements.iter().map(|r| graph.prove(r)).collect();
    for (req, proof) in policy.requirements.iter().zip(&proofs) {
        if let Some(d) = requirement_diagnostic(&policy, req, proof) {
            diagnostics.push(d);
        }
    }
    diagnostics.extend(lints::run(&lints::Context {
        policy: &policy,
        lowered: &lowered,
        today: opts.today,
    }));
    let mut image = None;
    if !diagnostics.iter().any(Diagnostic::is_error) {
        match PolicyImage::build(&policy, &lowered) {
            Ok(i) => image = Some(i),
            Err(e) => diagnostics.push(capacity(&e)),
        }
    }
    wardgate_lang::diagnostic::sort(&mut diagnostics);
    Analysis {
        policy,
        lowered: Some(lowered),
        graph: Some(graph),
        proofs,
        image,
        diagnostics,
    }
}

/// Compiles a loaded policy: the image (if there is no error) and every
/// diagnostic, the loaded policy's and the compiler's, sorted.
#[must_use]
pub fn compile(loaded: &Loaded, opts: &Options) -> (Option<PolicyImage>, Vec<Diagnostic>) {
    let analysis = analyze(loaded, opts);
    let mut diags = loaded.diagnostics.clone();
    diags.extend(analysis.diagnostics);
    wardgate_lang::diagnostic::sort(&mut diags);
    let image = if diags.iter().any(Diagnostic::is_error) {
        None
    } else {
        analysis.image
    };
    (image, diags)
}

/// One hop in words: `a -> b (file:line)`.
#[must_use]
pub fn hop_text(policy: &Policy, hop: &Hop) -> String {
    let (a, b) = (&policy.zone(hop.from).name, &policy.zone(hop.to).name);
    match hop.rule {
        Some(r) => format!("{a} -> {b} ({})", policy.rule(r).origin),
        None => {
            let m = if policy.zone(hop.from).monitor { a } else { b };
            format!("{a} -> {b} (`{m}` is in mode monitor)")
        }
    }
}

fn requirement_diagnostic(
    policy: &Policy,
    req: &crate::model::Requirement,
    proof: &Proof,
) -> Option<Diagnostic> {
    let (chain, info, verb) = match proof {
        Proof::Holds => return None,
        Proof::Violated(c) => (
            c,
            match req.kind {
                RequireKind::NoFlow => &codes::NO_FLOW_VIOLATED,
                RequireKind::NoPath => &codes::NO_PATH_VIOLATED,
            },
            "is violated",
        ),
        Proof::NotEnforced(c) => (c, &codes::REQUIREMENT_NOT_ENFORCED, "is not enforced yet"),
    };
    let first = &policy.zone(chain[0].from).name;
    let last = &policy.zone(chain[chain.len() - 1].to).name;
    let hops = chain.len();
    let mut d = Diagnostic::new(
        info,
        req.origin.span(),
        format!(
            "`{}` {verb}: `{first}` reaches `{last}` in {hops} hop{}",
            req.text,
            if hops == 1 { "" } else { "s" }
        ),
    )
    .with_primary_label("required here");
    for (i, hop) in chain.iter().enumerate() {
        let (a, b) = (&policy.zone(hop.from).name, &policy.zone(hop.to).name);
        match hop.rule {
            Some(r) => {
                d = d.with_label(
                    policy.rule(r).origin.span(),
                    format!("hop {}: `{a}` -> `{b}` allowed here", i + 1),
                );
            }
            None => {
                let m = if policy.zone(hop.from).monitor {
                    hop.from
                } else {
                    hop.to
                };
                if let Some(o) = &policy.zone(m).origin {
                    d = d.with_label(
                        o.span(),
                        format!(
                            "hop {}: `{a}` -> `{b}` passes: `{}` is in mode monitor",
                            i + 1,
                            policy.zone(m).name
                        ),
                    );
                }
            }
        }
    }
    let path: Vec<String> = chain.iter().map(|h| hop_text(policy, h)).collect();
    let advice = match proof {
        Proof::NotEnforced(_) => "switch the zone to `mode enforce` once its audits are clean",
        _ if hops == 1 => "remove or narrow the rule, or add a `deny` for this pair",
        _ => "break the chain at any hop: remove or narrow one of these rules",
    };
    Some(d.with_help(format!("chain: {}; {advice}", path.join(", "))))
}
