//! Loading a policy: the root file, its includes and its inventories.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use crate::ast::{File, Host, Node, Policy, Statement, ZoneItem};
use crate::check::check_policy;
use crate::codes;
use crate::diagnostic::{self, Diagnostic};
use crate::inventory;
use crate::parser::{parse_file, suggest};
use crate::span::{FileId, SourceMap, Span};

/// Everything read for one policy.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every file read: `.ward` files and inventory YAML files.
    pub sources: SourceMap,
    /// Parsed `.ward` files, root first, then includes in the order first met.
    pub files: Vec<File>,
    /// All files merged; inventory devices added to their zones as hosts.
    pub policy: Policy,
    /// Syntax, value, name, include and inventory diagnostics, sorted by file
    /// and position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The root file's id.
    #[must_use]
    pub fn root(&self) -> FileId {
        FileId(0)
    }
}

/// Loads a policy from disk. An unreadable root file is an `Err` (the CLI's
/// exit code 2); every other problem is a diagnostic in [`Loaded`].
pub fn load(path: &Path) -> io::Result<Loaded> {
    load_with(path, &mut |p: &Path| std::fs::read_to_string(p))
}

/// [`load`] with a caller-supplied reader: tests and fuzzers load from memory.
pub fn load_with(
    path: &Path,
    read: &mut dyn FnMut(&Path) -> io::Result<String>,
) -> io::Result<Loaded> {
    let text = read(path)?;
    let mut loader = Loader {
        read,
        loaded: Loaded::default(),
        chain: Vec::new(),
        inventories: Vec::new(),
    };
    let root = normalize(path);
    let id = loader.loaded.sources.add(root.clone(), text);
    loader.load_file(id, root);
    let Loader {
        mut loaded,
        inventories,
        ..
    } = loader;
    loaded.policy = Policy::from_files(&loaded.files);
    let mut diags = std::mem::take(&mut loaded.diagnostics);
    add_inventory(&mut loaded, inventories, &mut diags);
    let references = !has_syntax_errors(&diags);
    diags.extend(check_policy(&loaded.policy, references));
    diagnostic::sort(&mut diags);
    loaded.diagnostics = diags;
    Ok(loaded)
}

/// Parses one text: no include or inventory is followed. Name checks run over
/// the file alone.
#[must_use]
pub fn parse_str(name: &str, text: &str) -> Loaded {
    let mut loaded = Loaded::default();
    let id = loaded.sources.add(name, text);
    let (file, mut diags) = parse_file(id, text);
    loaded.files.push(file);
    loaded.policy = Policy::from_files(&loaded.files);
    let references = !has_syntax_errors(&diags);
    diags.extend(check_policy(&loaded.policy, references));
    diagnostic::sort(&mut diags);
    loaded.diagnostics = diags;
    loaded
}

/// Syntax errors (WG1xx) may have swallowed declarations.
fn has_syntax_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| {
        d.code.starts_with("WG1")
            && d.code != codes::KEYWORD_AS_NAME.code
            && d.code != codes::INVALID_ADDRESS.code
    })
}

struct Loader<'r> {
    read: &'r mut dyn FnMut(&Path) -> io::Result<String>,
    loaded: Loaded,
    /// Files being loaded, outermost first, with the span of the include
    /// that led to the next one.
    chain: Vec<(PathBuf, Option<Span>)>,
    /// (inventory file id, span of the `inventory` path) in load order.
    inventories: Vec<(FileId, Span)>,
}

impl Loader<'_> {
    fn load_file(&mut self, id: FileId, path: PathBuf) {
        let text = self.loaded.sources.text(id).to_string();
        let (file, diags) = parse_file(id, &text);
        self.loaded.diagnostics.extend(diags);
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut includes = Vec::new();
        for stmt in &file.statements {
            match &stmt.node {
                Statement::Include(inc) => includes.push(inc.path.clone()),
                Statement::Inventory(inv) => self.load_inventory(&base, &inv.path),
                _ => {}
            }
        }
        self.loaded.files.push(file);
        self.chain.push((path, None));
        for inc in includes {
            self.chain.last_mut().expect("chain holds this file").1 = Some(inc.span);
            self.include(&base, &inc);
        }
        self.chain.pop();
    }

    fn include(&mut self, base: &Path, inc: &Node<String>) {
        let target = normalize(&base.join(&inc.node));
        if let Some(at) = self.chain.iter().position(|(p, _)| *p == target) {
            let names: Vec<String> = self.chain[at..]
                .iter()
                .map(|(p, _)| format!("`{}`", p.display()))
                .chain([format!("`{}`", target.display())])
                .collect();
            let mut d = Diagnostic::new(
                &codes::INCLUDE_CYCLE,
                inc.span,
                format!("including `{}` here makes a cycle", inc.node),
            )
            .with_primary_label(names.join(" includes "))
            .with_help("a file cannot include itself, directly or through other files; move the shared statements to a file both include");
            for (_, span) in &self.chain[at..self.chain.len() - 1] {
                if let Some(span) = span {
                    d = d.with_label(*span, "included here");
                }
            }
            self.loaded.diagnostics.push(d);
            return;
        }
        if self.loaded.sources.find(&target).is_some() {
            return; // already loaded through another include: once is enough
        }
        match (self.read)(&target) {
            Ok(text) => {
                let id = self.loaded.sources.add(target.clone(), text);
                self.load_file(id, target);
            }
            Err(e) => self.loaded.diagnostics.push(
                Diagnostic::new(
                    &codes::INCLUDE_NOT_FOUND,
                    inc.span,
                    format!(
                        "cannot read included file `{}`: {}",
                        target.display(),
                        io_reason(&e)
                    ),
                )
                .with_help("include paths are relative to the file that includes them"),
            ),
        }
    }

    fn load_inventory(&mut self, base: &Path, path: &Node<String>) {
        let target = normalize(&base.join(&path.node));
        if let Some(id) = self.loaded.sources.find(&target) {
            if !self.inventories.iter().any(|(i, _)| *i == id) {
                self.inventories.push((id, path.span));
            }
            return;
        }
        match (self.read)(&target) {
            Ok(text) => {
                let id = self.loaded.sources.add(target, text);
                self.inventories.push((id, path.span));
            }
            Err(e) => self.loaded.diagnostics.push(
                Diagnostic::new(
                    &codes::INVALID_INVENTORY,
                    path.span,
                    format!(
                        "cannot read inventory `{}`: {}",
                        target.display(),
                        io_reason(&e)
                    ),
                )
                .with_help("inventory paths are relative to the file that names them"),
            ),
        }
    }
}

/// Adds every inventory device to its zone as a host.
fn add_inventory(
    loaded: &mut Loaded,
    inventories: Vec<(FileId, Span)>,
    diags: &mut Vec<Diagnostic>,
) {
    let zone_index: HashMap<String, usize> = loaded
        .policy
        .zones
        .iter()
        .enumerate()
        .rev()
        .map(|(i, z)| (z.name.node.clone(), i))
        .collect();
    let mut seen: HashMap<IpAddr, (Span, String)> = HashMap::new();
    for (id, _) in inventories {
        let entries = match inventory::read(id, loaded.sources.file(id)) {
            Ok(entries) => entries,
            Err(d) => {
                diags.push(*d);
                continue;
            }
        };
        for e in entries {
            let Ok(addr) = IpAddr::from_str(e.address.trim()) else {
                let mut d = Diagnostic::new(
                    &codes::INVENTORY_BAD_ADDRESS,
                    e.address_span,
                    format!(
                        "device `{}` has address `{}`, which is not an IP address",
                        e.device.name, e.address
                    ),
                )
                .with_primary_label("not an IPv4 or IPv6 address");
                d = if e.address.contains('/') {
                    d.with_help("a device has one address, without a prefix length")
                } else {
                    d.with_help("write one IPv4 (`10.20.0.11`) or IPv6 (`2001:db8::11`) address")
                };
                diags.push(d);
                continue;
            };
            if let Some((first, first_name)) = seen.get(&addr) {
                diags.push(
                    Diagnostic::new(
                        &codes::INVENTORY_DUPLICATE_ADDRESS,
                        e.address_span,
                        format!(
                            "devices `{first_name}` and `{}` have the same address `{addr}`",
                            e.device.name
                        ),
                    )
                    .with_primary_label("address used again here")
                    .with_label(*first, format!("first used by `{first_name}`"))
                    .with_help("one address belongs to one device; fix or remove the stale entry"),
                );
                continue;
            }
            seen.insert(addr, (e.address_span, e.device.name.clone()));
            let Some(&zi) = zone_index.get(&e.device.zone) else {
                let mut d = Diagnostic::new(
                    &codes::INVENTORY_UNKNOWN_ZONE,
                    e.zone_span,
                    format!(
                        "device `{}` is in zone `{}`, which is not declared",
                        e.device.name, e.device.zone
                    ),
                )
                .with_primary_label("no zone of this name");
                d = match suggest(&e.device.zone, zone_index.keys().map(String::as_str)) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!(
                        "declare `zone {} {{ }}` in the policy, or fix the device's zone",
                        e.device.zone
                    )),
                };
                diags.push(d);
                continue;
            };
            let host = Host {
                addr,
                device: Some(Box::new(e.device)),
            };
            let item = ZoneItem::Hosts(vec![Node::new(host, e.address_span)]);
            loaded.policy.zones[zi].items.push(Node::new(item, e.span));
        }
    }
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string().to_lowercase(),
    }
}

/// Removes `.` and resolves `..` lexically, so that `a/./b/../c.ward` and
/// `a/c.ward` are the same file for cycle detection and messages.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(
            normalize(Path::new("a/./b/../c.ward")),
            PathBuf::from("a/c.ward")
        );
        assert_eq!(
            normalize(Path::new("../x.ward")),
            PathBuf::from("../x.ward")
        );
    }
}
