//! Loading a policy: the root file, its includes and its inventories.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use crate::ast::{File, Host, Node, Policy, Statement, ZoneItem};
use crate::check::check_policy;
use crate::codes;
use crate::diagnostic::{self, CodeInfo, Diagnostic};
use crate::inventory;
use crate::parser::parse_file;
use crate::span::{FileId, SourceMap, Span};
use crate::suggest::Suggester;
use crate::suppress::{self, SuppressionComment};

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
    /// Suppression comments (`# wardgate: allow(...) "reason"`) that can be
    /// applied; see [`Loaded::suppress`].
    pub suppressions: Vec<SuppressionComment>,
}

impl Loaded {
    /// Marks the findings in `diagnostics` that suppression comments
    /// acknowledge, and appends the problems with those comments (unknown
    /// or error codes). `registry` holds every code (language and
    /// compiler). Call it once every diagnostic of a run is known.
    pub fn suppress(&self, diagnostics: &mut Vec<Diagnostic>, registry: &[&CodeInfo]) {
        let problems = suppress::apply(&self.suppressions, diagnostics, registry);
        diagnostics.extend(problems);
        diagnostic::sort(diagnostics);
    }

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

/// Largest file a policy reads (root, include or inventory): 16 MiB.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Deepest chain of includes below the root file.
pub const MAX_INCLUDE_DEPTH: usize = 64;

/// What a policy may read besides the directory of its root file.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Further directories whose files (and their subdirectories') an
    /// `include` or `inventory` may name (`wardgate check --allow-outside`).
    pub allow_outside: Vec<PathBuf>,
}

/// Loads a policy from disk. An unreadable root file is an `Err` (the CLI's
/// exit code 2); every other problem is a diagnostic in [`Loaded`].
pub fn load(path: &Path) -> io::Result<Loaded> {
    load_with_options(path, &LoadOptions::default())
}

/// [`load`] with options. Files are read with [`read_file`]: regular files
/// of at most [`MAX_FILE_BYTES`] only. `include` and `inventory` may name
/// files under the root file's directory (and the `allow_outside`
/// directories), compared after resolving symbolic links.
pub fn load_with_options(path: &Path, options: &LoadOptions) -> io::Result<Loaded> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| normalize(p));
    let mut allowed: Vec<PathBuf> = options.allow_outside.iter().map(|d| canonical(d)).collect();
    let root_dir = canonical(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    allowed.insert(0, root_dir);
    run(path, &mut |p: &Path| read_file(p), &canonical, &allowed)
}

/// [`load`] with a caller-supplied reader: tests and fuzzers load from
/// memory. Paths are compared lexically; includes may name files under the
/// root file's directory only.
pub fn load_with(
    path: &Path,
    read: &mut dyn FnMut(&Path) -> io::Result<String>,
) -> io::Result<Loaded> {
    let root_dir = normalize(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    run(path, read, &normalize, &[root_dir])
}

/// Reads a policy or inventory file: a regular file (symbolic links
/// followed) of at most [`MAX_FILE_BYTES`], in UTF-8. Devices, FIFOs and
/// directories are refused without blocking: the file is opened
/// non-blocking and checked again once open.
pub fn read_file(path: &Path) -> io::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let check = |meta: &std::fs::Metadata| -> io::Result<()> {
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(too_large());
        }
        Ok(())
    };
    check(&std::fs::metadata(path)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    check(&file.metadata()?)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not valid UTF-8 text"))
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("larger than {} MiB", MAX_FILE_BYTES / (1024 * 1024)),
    )
}

fn run(
    path: &Path,
    read: &mut dyn FnMut(&Path) -> io::Result<String>,
    canonical: &dyn Fn(&Path) -> PathBuf,
    allowed: &[PathBuf],
) -> io::Result<Loaded> {
    let text = read(path)?;
    let mut loader = Loader {
        read,
        canonical,
        allowed,
        loaded: Loaded::default(),
        by_canonical: HashMap::new(),
        inventories: Vec::new(),
    };
    let root = normalize(path);
    loader.load_all(root, text);
    let Loader {
        mut loaded,
        inventories,
        ..
    } = loader;
    loaded.policy = Policy::from_files(&loaded.files);
    let mut diags = std::mem::take(&mut loaded.diagnostics);
    let (suppressions, problems) = suppress::collect(&loaded.files, &loaded.sources);
    loaded.suppressions = suppressions;
    diags.extend(problems);
    add_inventory(&mut loaded, inventories, &mut diags);
    let references = !has_syntax_errors(&diags);
    let had_errors = diags.iter().any(Diagnostic::is_error);
    diags.extend(check_policy(&loaded.policy, references));
    if had_errors {
        // A file that could not be read or parsed is the error to report; a
        // missing zone then says nothing new.
        diags.retain(|d| d.code != codes::NO_ZONES.code);
    }
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
    let (suppressions, problems) = suppress::collect(&loaded.files, &loaded.sources);
    loaded.suppressions = suppressions;
    diags.extend(problems);
    let references = !has_syntax_errors(&diags);
    let had_errors = diags.iter().any(Diagnostic::is_error);
    diags.extend(check_policy(&loaded.policy, references));
    if had_errors {
        // A file that could not be read or parsed is the error to report; a
        // missing zone then says nothing new.
        diags.retain(|d| d.code != codes::NO_ZONES.code);
    }
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
    /// A path with `.`, `..` and (on disk) symbolic links resolved.
    canonical: &'r dyn Fn(&Path) -> PathBuf,
    /// Canonical directories whose files may be read.
    allowed: &'r [PathBuf],
    loaded: Loaded,
    /// Every file read, by canonical path: a file reached twice (through
    /// another include or a symbolic link) is read once.
    by_canonical: HashMap<PathBuf, FileId>,
    /// (inventory file id, span of the `inventory` path) in load order.
    inventories: Vec<(FileId, Span)>,
}

/// A file being loaded: the includes it holds and how far they are done.
struct Frame {
    path: PathBuf,
    canonical: PathBuf,
    base: PathBuf,
    includes: Vec<Node<String>>,
    next: usize,
}

impl Loader<'_> {
    /// Loads the root file and, depth first, every file it includes. The
    /// include chain is an explicit stack, so its depth costs no native
    /// stack (the parser always starts at the same depth) and is limited to
    /// [`MAX_INCLUDE_DEPTH`].
    fn load_all(&mut self, root: PathBuf, text: String) {
        let mut stack = vec![self.open(root, text)];
        while let Some(top) = stack.last_mut() {
            let Some(inc) = top.includes.get(top.next).cloned() else {
                stack.pop();
                continue;
            };
            top.next += 1;
            let base = top.base.clone();
            if let Some(frame) = self.include(&stack, &base, &inc) {
                stack.push(frame);
            }
        }
    }

    /// Adds a file read as `path`, parses it and reads its inventories.
    fn open(&mut self, path: PathBuf, text: String) -> Frame {
        let canonical = (self.canonical)(&path);
        let id = self.loaded.sources.add(path.clone(), text);
        self.by_canonical.insert(canonical.clone(), id);
        let (file, diags) = parse_file(id, self.loaded.sources.text(id));
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
        Frame {
            path,
            canonical,
            base,
            includes,
            next: 0,
        }
    }

    /// Follows one `include`: the new frame to load, or a diagnostic.
    fn include(&mut self, chain: &[Frame], base: &Path, inc: &Node<String>) -> Option<Frame> {
        let target = normalize(&base.join(&inc.node));
        let canonical = (self.canonical)(&target);
        if let Some(at) = chain.iter().position(|f| f.canonical == canonical) {
            self.cycle(&chain[at..], &target, inc);
            return None;
        }
        if self.by_canonical.contains_key(&canonical) {
            return None; // already loaded through another include: once is enough
        }
        if let Some(d) = self.refuse(&target, &canonical, inc, &["ward"]) {
            self.loaded.diagnostics.push(d);
            return None;
        }
        if chain.len() > MAX_INCLUDE_DEPTH {
            self.loaded.diagnostics.push(
                Diagnostic::new(
                    &codes::INCLUDE_TOO_DEEP,
                    inc.span,
                    format!(
                        "including `{}` here nests includes more than {MAX_INCLUDE_DEPTH} files deep",
                        inc.node
                    ),
                )
                .with_primary_label("not read")
                .with_help("flatten the chain: include shared files from the root file or one common file"),
            );
            return None;
        }
        match (self.read)(&target) {
            Ok(text) => Some(self.open(target, text)),
            Err(e) => {
                self.loaded.diagnostics.push(
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
                );
                None
            }
        }
    }

    fn cycle(&mut self, cycle: &[Frame], target: &Path, inc: &Node<String>) {
        let names: Vec<String> = cycle
            .iter()
            .map(|f| format!("`{}`", f.path.display()))
            .chain([format!("`{}`", target.display())])
            .collect();
        let mut d = Diagnostic::new(
            &codes::INCLUDE_CYCLE,
            inc.span,
            format!("including `{}` here makes a cycle", inc.node),
        )
        .with_primary_label(names.join(" includes "))
        .with_help("a file cannot include itself, directly or through other files; move the shared statements to a file both include");
        // The include each file of the cycle is at (the last one is `inc`).
        for f in &cycle[..cycle.len() - 1] {
            if let Some(via) = f.next.checked_sub(1).and_then(|i| f.includes.get(i)) {
                d = d.with_label(via.span, "included here");
            }
        }
        self.loaded.diagnostics.push(d);
    }

    /// Why a file named by `include` or `inventory` may not be read: its
    /// name does not end in one of `extensions`, or it lies outside the
    /// allowed directories.
    fn refuse(
        &self,
        target: &Path,
        canonical: &Path,
        named: &Node<String>,
        extensions: &[&str],
    ) -> Option<Diagnostic> {
        let ext = target.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !extensions.contains(&ext) {
            let (what, names) = if extensions.contains(&"ward") {
                ("included files", "`.ward`")
            } else {
                ("inventories", "`.yaml` or `.yml`")
            };
            return Some(
                Diagnostic::new(
                    &codes::NOT_A_POLICY_FILE,
                    named.span,
                    format!("`{}` is not read: {what} must end in {names}", named.node),
                )
                .with_primary_label("refused before reading")
                .with_help(format!("name a {names} file")),
            );
        }
        if !self.allowed.iter().any(|dir| is_within(dir, canonical)) {
            return Some(
                Diagnostic::new(
                    &codes::OUTSIDE_POLICY_DIRECTORY,
                    named.span,
                    format!(
                        "`{}` is outside the policy's directory and is not read",
                        named.node
                    ),
                )
                .with_primary_label("refused before reading")
                .with_help("move the file next to the policy, or allow its directory with `wardgate check --allow-outside DIR`"),
            );
        }
        None
    }

    fn load_inventory(&mut self, base: &Path, path: &Node<String>) {
        let target = normalize(&base.join(&path.node));
        let canonical = (self.canonical)(&target);
        if let Some(&id) = self.by_canonical.get(&canonical) {
            if !self.inventories.iter().any(|(i, _)| *i == id) {
                self.inventories.push((id, path.span));
            }
            return;
        }
        if let Some(d) = self.refuse(&target, &canonical, path, &["yaml", "yml"]) {
            self.loaded.diagnostics.push(d);
            return;
        }
        match (self.read)(&target) {
            Ok(text) => {
                let id = self.loaded.sources.add(target, text);
                self.by_canonical.insert(canonical, id);
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

/// Whether `path` is `dir` or below it; both canonical (or both lexically
/// normalized, where a relative `dir` of `""` or `.` holds every relative
/// path that does not start with `..`).
fn is_within(dir: &Path, path: &Path) -> bool {
    if dir.as_os_str().is_empty() || dir == Path::new(".") {
        return path.is_relative()
            && !matches!(path.components().next(), Some(Component::ParentDir));
    }
    path.starts_with(dir)
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
    let mut zone_names = Suggester::new(zone_index.keys().map(String::as_str));
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
                d = match zone_names.suggest(&e.device.zone) {
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
        // Our own reasons (`read_file`), already worded for the user.
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => e.to_string(),
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
