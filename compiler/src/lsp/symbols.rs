//! Where zones, services and tags are named: declarations and references in
//! every file of a policy, and the outline of one file.

use lsp_types::{DocumentSymbol, SymbolKind};
use wardgate_lang::ast::{Selector, ServiceAtom, Statement, ZoneItem};
use wardgate_lang::{FileId, Loaded, Span};

use super::position::LineIndex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Zone,
    Service,
    Tag,
}

impl Kind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Zone => "zone",
            Kind::Service => "service",
            Kind::Tag => "tag",
        }
    }
}

/// One place a name is written.
#[derive(Clone, Debug)]
pub struct Occurrence {
    pub kind: Kind,
    pub name: String,
    pub span: Span,
    /// A declaration: `zone NAME`, `service NAME`, or a tag in a zone's
    /// `tags` (a tag is declared by every zone that carries it).
    pub declaration: bool,
}

/// Every occurrence of a name in a policy, in file and source order.
#[derive(Debug, Default)]
pub struct Index {
    pub occurrences: Vec<Occurrence>,
}

impl Index {
    #[must_use]
    pub fn of(loaded: &Loaded) -> Self {
        let mut out = Vec::new();
        let mut push = |kind, name: &str, span: Span, declaration| {
            out.push(Occurrence {
                kind,
                name: name.to_string(),
                span,
                declaration,
            });
        };
        for file in &loaded.files {
            for stmt in &file.statements {
                match &stmt.node {
                    Statement::Service(s) => {
                        push(Kind::Service, &s.name, s.name.span, true);
                        for a in &s.atoms {
                            if let ServiceAtom::Named(n) = &a.node {
                                push(Kind::Service, n, n.span, false);
                            }
                        }
                    }
                    Statement::Zone(z) => {
                        push(Kind::Zone, &z.name, z.name.span, true);
                        for item in &z.items {
                            if let ZoneItem::Tags(tags) = &item.node {
                                for t in tags {
                                    push(Kind::Tag, t, t.span, true);
                                }
                            }
                        }
                    }
                    Statement::Rule(r) => {
                        for s in r.src.iter().chain(&r.dst) {
                            selector(&mut push, &s.node);
                        }
                        for a in &r.services {
                            if let ServiceAtom::Named(n) = &a.node {
                                push(Kind::Service, n, n.span, false);
                            }
                        }
                    }
                    Statement::Require(r) => {
                        for s in r.src.iter().chain(&r.dst) {
                            selector(&mut push, &s.node);
                        }
                    }
                    Statement::Include(_) | Statement::Inventory(_) => {}
                }
            }
        }
        Self { occurrences: out }
    }

    /// The occurrence at a byte offset of a file (its end included, so that
    /// a cursor just after a name still finds it).
    #[must_use]
    pub fn at(&self, file: FileId, offset: usize) -> Option<&Occurrence> {
        self.occurrences
            .iter()
            .find(|o| o.span.file == file && o.span.start <= offset && offset <= o.span.end)
    }

    /// Every occurrence of a name of a kind.
    pub fn all<'a>(&'a self, kind: Kind, name: &'a str) -> impl Iterator<Item = &'a Occurrence> {
        self.occurrences
            .iter()
            .filter(move |o| o.kind == kind && o.name == name)
    }

    /// The declarations of a name: the first for a zone or service (a
    /// second one is an error), every zone carrying it for a tag.
    #[must_use]
    pub fn declarations<'a>(&'a self, kind: Kind, name: &'a str) -> Vec<&'a Occurrence> {
        let all = self.all(kind, name).filter(|o| o.declaration);
        match kind {
            Kind::Tag => all.collect(),
            Kind::Zone | Kind::Service => all.take(1).collect(),
        }
    }

    /// Declared names of a kind, each once, sorted.
    #[must_use]
    pub fn names(&self, kind: Kind) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .occurrences
            .iter()
            .filter(|o| o.kind == kind && o.declaration)
            .map(|o| o.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

fn selector(push: &mut impl FnMut(Kind, &str, Span, bool), s: &Selector) {
    match s {
        Selector::Zone(n) => push(Kind::Zone, n, n.span, false),
        Selector::Tag(n) => push(Kind::Tag, n, n.span, false),
        Selector::World | Selector::Any => {}
    }
}

/// The outline of the root file: zones (with their tags), services, rules
/// and requirements.
#[must_use]
#[allow(deprecated)] // `DocumentSymbol::deprecated` must still be written
pub fn document_symbols(loaded: &Loaded) -> Vec<DocumentSymbol> {
    let Some(file) = loaded.files.first() else {
        return Vec::new();
    };
    let text = loaded.sources.text(file.id);
    let idx = LineIndex::new(text);
    let symbol =
        |name: String, detail: Option<String>, kind, span: Span, name_span: Span| DocumentSymbol {
            name,
            detail,
            kind,
            tags: None,
            deprecated: None,
            range: idx.range(span.start, span.end),
            selection_range: idx.range(name_span.start, name_span.end),
            children: None,
        };
    let one_line = |span: Span| -> String {
        text[span.start..span.end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = Vec::new();
    for stmt in &file.statements {
        let span = stmt.span;
        let s = match &stmt.node {
            Statement::Zone(z) => {
                let detail: Vec<String> = z.prefixes().map(|p| p.node.to_string()).collect();
                symbol(
                    z.name.node.clone(),
                    Some(detail.join(", ")),
                    SymbolKind::NAMESPACE,
                    span,
                    z.name.span,
                )
            }
            Statement::Service(s) => {
                let atoms: Vec<String> = s
                    .atoms
                    .iter()
                    .map(|a| wardgate_lang::fmt::service_atom(&a.node))
                    .collect();
                symbol(
                    s.name.node.clone(),
                    Some(atoms.join(", ")),
                    SymbolKind::CONSTANT,
                    span,
                    s.name.span,
                )
            }
            Statement::Rule(r) => {
                symbol(one_line(span), None, SymbolKind::EVENT, span, r.action.span)
            }
            Statement::Require(r) => symbol(
                one_line(span),
                None,
                SymbolKind::PROPERTY,
                span,
                r.kind.span,
            ),
            Statement::Include(i) => symbol(
                format!("include {}", i.path.node),
                None,
                SymbolKind::FILE,
                span,
                i.path.span,
            ),
            Statement::Inventory(i) => symbol(
                format!("inventory {}", i.path.node),
                None,
                SymbolKind::FILE,
                span,
                i.path.span,
            ),
        };
        out.push(s);
    }
    out
}
