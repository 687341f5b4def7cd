//! Go to definition and find references for zones, services and tags, in
//! every file of the policy (includes too).

use lsp_types::Location;
use wardgate_lang::{FileId, Span};

use super::documents::Snapshot;
use super::position::LineIndex;
use super::symbols::Occurrence;

fn location(snap: &Snapshot, span: Span) -> Option<Location> {
    let idx = LineIndex::new(snap.loaded.sources.text(span.file));
    Some(Location::new(
        snap.uri(span)?,
        idx.range(span.start, span.end),
    ))
}

fn locations<'a>(snap: &Snapshot, occ: impl Iterator<Item = &'a Occurrence>) -> Vec<Location> {
    occ.filter_map(|o| location(snap, o.span)).collect()
}

/// Where the name at a byte offset of the root file is declared (every
/// zone carrying it, for a tag).
#[must_use]
pub fn definition(snap: &Snapshot, offset: usize) -> Vec<Location> {
    let Some(o) = snap.index.at(FileId(0), offset) else {
        return Vec::new();
    };
    locations(snap, snap.index.declarations(o.kind, &o.name).into_iter())
}

/// Every place the name at a byte offset of the root file is written.
#[must_use]
pub fn references(snap: &Snapshot, offset: usize, include_declaration: bool) -> Vec<Location> {
    let Some(o) = snap.index.at(FileId(0), offset) else {
        return Vec::new();
    };
    locations(
        snap,
        snap.index
            .all(o.kind, &o.name)
            .filter(|r| include_declaration || !r.declaration),
    )
}
