//! Open documents and what the compiler makes of each.
//!
//! The editor owns the text of an open document: it is used instead of the
//! file on disk, for the document itself and wherever another policy
//! includes it. A [`Snapshot`] is one analysis of one open document as the
//! root of a policy, rebuilt from scratch after every edit (a 200-zone
//! policy takes a few milliseconds; see `bench/lsp.md`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use lsp_types::Url;
use wardgate_lang::codes::{
    INVALID_ADDRESS, KEYWORD_AS_NAME, UNDEFINED_SERVICE, UNDEFINED_TAG, UNDEFINED_ZONE,
};
use wardgate_lang::date::Date;
use wardgate_lang::{CodeInfo, Diagnostic, FileId, Loaded, Span};

use crate::analysis::{Analysis, Options, analyze_policy};
use crate::resolve::resolve;

use super::symbols::Index;

/// One open document.
pub struct Document {
    pub text: String,
    pub version: i32,
    /// The file the document is (its URI's path; a made-up path for an
    /// `untitled:` document).
    pub path: PathBuf,
    pub snapshot: Snapshot,
}

/// Every open document, by URI.
#[derive(Default)]
pub struct Documents {
    pub open: HashMap<Url, Document>,
}

impl Documents {
    /// The editor's texts, by path, to read instead of the disk.
    #[must_use]
    pub fn overlay(&self) -> HashMap<PathBuf, String> {
        self.open
            .values()
            .map(|d| (d.path.clone(), d.text.clone()))
            .collect()
    }

    /// Opens or replaces a document and analyses it, then analyses again
    /// every other open document whose policy reads it. Returns the URIs
    /// analysed.
    pub fn set(&mut self, uri: Url, text: String, version: i32, today: Date) -> Vec<Url> {
        let path = path_of(&uri);
        let mut overlay = self.overlay();
        overlay.insert(path.clone(), text.clone());
        let snapshot = Snapshot::build(&path, &overlay, today);
        self.open.insert(
            uri.clone(),
            Document {
                text,
                version,
                path: path.clone(),
                snapshot,
            },
        );
        let mut changed = vec![uri.clone()];
        changed.extend(self.reanalyse_readers_of(&path, &uri, today));
        changed
    }

    /// Closes a document; the open documents that read it read the disk
    /// again. Returns the URIs analysed again.
    pub fn close(&mut self, uri: &Url, today: Date) -> Vec<Url> {
        match self.open.remove(uri) {
            Some(doc) => self.reanalyse_readers_of(&doc.path, uri, today),
            None => Vec::new(),
        }
    }

    fn reanalyse_readers_of(&mut self, path: &Path, except: &Url, today: Date) -> Vec<Url> {
        let readers: Vec<Url> = self
            .open
            .iter()
            .filter(|(u, d)| *u != except && d.snapshot.reads(path))
            .map(|(u, _)| u.clone())
            .collect();
        let overlay = self.overlay();
        for u in &readers {
            let doc = self.open.get_mut(u).expect("listed above");
            doc.snapshot = Snapshot::build(&doc.path, &overlay, today);
        }
        readers
    }
}

/// The path of a document URI: its file path, or the URI's path for other
/// schemes (`untitled:`), whose includes then resolve nowhere useful.
#[must_use]
pub fn path_of(uri: &Url) -> PathBuf {
    uri.to_file_path()
        .unwrap_or_else(|()| PathBuf::from(uri.path()))
}

/// The URI of a file of a policy.
#[must_use]
pub fn uri_of(path: &Path) -> Option<Url> {
    Url::from_file_path(path).ok()
}

/// One analysis of a policy whose root is an open document.
pub struct Snapshot {
    pub loaded: Loaded,
    /// The compiler's analysis of the statements that parse: also when
    /// the policy has errors, so that a half-typed statement does not take
    /// away the hovers, proofs and lints of the rest of the file.
    pub analysis: Analysis,
    /// What `wardgate check` reports, suppression comments applied; while
    /// the policy has errors, with the compiler's findings on the rest.
    pub diagnostics: Vec<Diagnostic>,
    pub index: Index,
    pub today: Date,
}

/// Every diagnostic code (language and compiler), for suppression comments.
#[must_use]
pub fn all_codes() -> Vec<&'static CodeInfo> {
    let mut codes: Vec<&'static CodeInfo> = wardgate_lang::codes::ALL.iter().collect();
    codes.extend(crate::codes::ALL.iter());
    codes
}

impl Snapshot {
    /// Loads the policy rooted at `path`, reading `overlay` texts instead of
    /// the disk where they exist, and analyses it.
    #[must_use]
    pub fn build(path: &Path, overlay: &HashMap<PathBuf, String>, today: Date) -> Self {
        let mut read = |p: &Path| match overlay.get(p) {
            Some(text) => Ok(text.clone()),
            None => wardgate_lang::read_file(p),
        };
        let loaded = match wardgate_lang::load_with(path, &mut read) {
            Ok(l) => l,
            // The root is always in the overlay; this is only defensive.
            Err(_) => wardgate_lang::parse_str(&path.display().to_string(), ""),
        };
        let (policy, resolution) = resolve(&loaded.policy, &loaded.sources);
        let analysis = analyze_policy(policy, resolution, &Options { today: Some(today) });
        let mut diagnostics = loaded.diagnostics.clone();
        diagnostics.extend(references_past_syntax_errors(&loaded));
        diagnostics.extend(analysis.diagnostics.iter().cloned());
        loaded.suppress(&mut diagnostics, &all_codes());
        let index = Index::of(&loaded);
        Self {
            loaded,
            analysis,
            diagnostics,
            index,
            today,
        }
    }

    /// Whether this policy read the file at `path`.
    #[must_use]
    pub fn reads(&self, path: &Path) -> bool {
        self.loaded.sources.find(path).is_some()
    }

    /// The root file's text (the document's).
    #[must_use]
    pub fn root_text(&self) -> &str {
        self.loaded.sources.text(FileId(0))
    }

    /// The URI of the file of a span.
    #[must_use]
    pub fn uri(&self, span: Span) -> Option<Url> {
        uri_of(self.loaded.sources.path(span.file))
    }
}

/// After a syntax error the language crate reports no undefined names: a
/// declaration lost in the unparsed text would make them false. While
/// typing, one half-typed statement would then hide every misspelt name of
/// the file; here they are reported, except names written in the text the
/// parser skipped (where they may be declared).
fn references_past_syntax_errors(loaded: &Loaded) -> Vec<Diagnostic> {
    let reference = [
        UNDEFINED_ZONE.code,
        UNDEFINED_SERVICE.code,
        UNDEFINED_TAG.code,
    ];
    let syntax = loaded.diagnostics.iter().any(|d| {
        d.code.starts_with("WG1")
            && d.code != KEYWORD_AS_NAME.code
            && d.code != INVALID_ADDRESS.code
    });
    if !syntax {
        return Vec::new();
    }
    let mut skipped: HashSet<&str> = HashSet::new();
    for file in &loaded.files {
        let text = loaded.sources.text(file.id);
        let mut covered: Vec<(usize, usize)> = file
            .statements
            .iter()
            .map(|s| (s.span.start, s.span.end))
            .chain(file.comments.iter().map(|c| (c.span.start, c.span.end)))
            .collect();
        covered.sort_unstable();
        let mut at = 0;
        for (a, b) in covered.into_iter().chain([(text.len(), text.len())]) {
            if a > at {
                skipped.extend(
                    text[at..a]
                        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
                        .filter(|w| !w.is_empty()),
                );
            }
            at = at.max(b);
        }
    }
    wardgate_lang::check::check_policy(&loaded.policy, true)
        .into_iter()
        .filter(|d| reference.contains(&d.code))
        .filter(|d| {
            let name = loaded.sources.snippet(d.primary);
            !skipped.contains(name.strip_prefix("tag:").unwrap_or(name))
        })
        .collect()
}
