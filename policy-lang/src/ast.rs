//! The typed AST of a `.ward` policy.
//!
//! Every node is wrapped in [`Node`], which carries the node's [`Span`]. Node
//! equality ignores spans, so two policies that differ only in layout compare
//! equal (the formatter's round-trip property relies on it).
//!
//! The AST is what the text says, after value validation: prefixes have no
//! host bits, ports fit in 16 bits, ICMP type names are resolved to numbers,
//! dates are real calendar dates. Name resolution (does zone `pacs` exist?) is
//! a separate pass ([`crate::check`]); the AST keeps names as written.
//!
//! Two views exist:
//! - [`File`]: one parsed file, statements in source order, with its comments
//!   (the formatter's input);
//! - [`Policy`]: all files of a policy (root, includes) merged, with inventory
//!   devices added to their zones as hosts (the compiler's input).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::ops::{Deref, DerefMut};

pub use ipnetwork::IpNetwork;

pub use crate::date::Date;
use crate::span::{FileId, Span};

/// A value with the source span it came from. Equality, ordering and hashing
/// look at the value only.
#[derive(Clone)]
pub struct Node<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Node<T> {
    pub fn new(node: T, span: Span) -> Self {
        Self { node, span }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Node<U> {
        Node {
            node: f(self.node),
            span: self.span,
        }
    }

    pub fn as_ref(&self) -> Node<&T> {
        Node {
            node: &self.node,
            span: self.span,
        }
    }
}

impl<T> Deref for Node<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.node
    }
}

impl<T> DerefMut for Node<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.node
    }
}

impl<T: PartialEq> PartialEq for Node<T> {
    fn eq(&self, other: &Self) -> bool {
        self.node == other.node
    }
}

impl<T: Eq> Eq for Node<T> {}

impl<T: Hash> Hash for Node<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.node.hash(state);
    }
}

impl<T: fmt::Debug> fmt::Debug for Node<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Spans are noise in test output and snapshots; `{:#?}` of a policy
        // stays readable.
        self.node.fmt(f)
    }
}

impl<T: fmt::Display> fmt::Display for Node<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.node.fmt(f)
    }
}

/// A zone, service or tag name as written.
pub type Ident = Node<String>;

/// One parsed source file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct File {
    pub id: FileId,
    pub statements: Vec<Node<Statement>>,
    /// `#` comments in source order; the span covers `#` to the end of the
    /// line (newline excluded) and the text is without the `#`, trailing
    /// whitespace trimmed.
    pub comments: Vec<Node<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    Include(Include),
    Inventory(Inventory),
    Service(Service),
    Zone(Zone),
    Rule(Rule),
    Require(Require),
}

/// `include "path.ward"`: the path as written (relative to the including file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Include {
    pub path: Node<String>,
}

/// `inventory "assets.yaml"`: the path as written (relative to the file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    pub path: Node<String>,
}

/// `service NAME = SERVICE, ...`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: Ident,
    pub atoms: Vec<Node<ServiceAtom>>,
}

/// One element of a service list.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServiceAtom {
    /// A reference to a `service` definition.
    Named(Ident),
    /// `tcp` (every port, `None`) or `tcp/PORT` or `tcp/LOW-HIGH`.
    Tcp(Option<PortRange>),
    Udp(Option<PortRange>),
    Sctp(Option<PortRange>),
    /// `icmp` (every type, `None`) or `icmp/TYPE`.
    Icmp(Option<IcmpType>),
    Icmpv6(Option<IcmpType>),
    /// `proto/NUMBER`: any other IP protocol.
    Proto(u8),
    /// `any`: every packet.
    Any,
}

/// An inclusive port range; a single port has `low == high`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    #[must_use]
    pub fn single(port: u16) -> Self {
        Self {
            low: port,
            high: port,
        }
    }

    #[must_use]
    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

/// An ICMP or ICMPv6 type: the number, and the standard name if the policy
/// used one (kept so that the formatter writes it back).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IcmpType {
    pub value: u8,
    pub name: Option<String>,
}

impl fmt::Display for IcmpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.value),
        }
    }
}

/// `zone NAME { ITEM* }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    pub name: Ident,
    /// Items in source order. In a [`Policy`], inventory devices are appended
    /// as [`ZoneItem::Hosts`] whose hosts carry their [`Host::device`].
    pub items: Vec<Node<ZoneItem>>,
}

impl Zone {
    /// Every `networks` prefix, in order.
    pub fn networks(&self) -> impl Iterator<Item = &Node<IpNetwork>> {
        self.items
            .iter()
            .filter_map(|i| match &i.node {
                ZoneItem::Networks(n) => Some(n.iter()),
                _ => None,
            })
            .flatten()
    }

    /// Every host (written `hosts` and inventory devices), in order.
    pub fn hosts(&self) -> impl Iterator<Item = &Node<Host>> {
        self.items
            .iter()
            .filter_map(|i| match &i.node {
                ZoneItem::Hosts(h) => Some(h.iter()),
                _ => None,
            })
            .flatten()
    }

    /// Networks and hosts as prefixes (a host is a /32 or /128), each with the
    /// span of the written prefix or address.
    pub fn prefixes(&self) -> impl Iterator<Item = Node<IpNetwork>> + '_ {
        self.networks()
            .cloned()
            .chain(self.hosts().map(|h| Node::new(h.network(), h.span)))
    }

    pub fn tags(&self) -> impl Iterator<Item = &Ident> {
        self.items
            .iter()
            .filter_map(|i| match &i.node {
                ZoneItem::Tags(t) => Some(t.iter()),
                _ => None,
            })
            .flatten()
    }

    #[must_use]
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags().any(|t| t.node == tag)
    }

    /// The zone's mode: the last `mode` item, `enforce` if none.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.items
            .iter()
            .filter_map(|i| match i.node {
                ZoneItem::Mode(m) => Some(m),
                _ => None,
            })
            .next_back()
            .unwrap_or(Mode::Enforce)
    }

    #[must_use]
    pub fn is_isolated(&self) -> bool {
        self.items
            .iter()
            .any(|i| matches!(i.node, ZoneItem::Isolated))
    }

    #[must_use]
    pub fn criticality(&self) -> Option<Criticality> {
        self.items
            .iter()
            .filter_map(|i| match i.node {
                ZoneItem::Criticality(c) => Some(c),
                _ => None,
            })
            .next_back()
    }

    #[must_use]
    pub fn description(&self) -> Option<&str> {
        self.items
            .iter()
            .filter_map(|i| match &i.node {
                ZoneItem::Description(d) => Some(d.as_str()),
                _ => None,
            })
            .next_back()
    }

    /// The zone's `conntrack-limit`: the last one, if any.
    #[must_use]
    pub fn conntrack_limit(&self) -> Option<u32> {
        self.items
            .iter()
            .filter_map(|i| match i.node {
                ZoneItem::ConntrackLimit(n) => Some(n),
                _ => None,
            })
            .next_back()
    }

    /// Whether the zone declares any address (networks, hosts, inventory).
    #[must_use]
    pub fn has_addresses(&self) -> bool {
        self.networks().next().is_some() || self.hosts().next().is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZoneItem {
    /// `networks PREFIX, ...`; a bare address is stored as a /32 or /128.
    Networks(Vec<Node<IpNetwork>>),
    /// `hosts ADDRESS, ...`
    Hosts(Vec<Node<Host>>),
    /// `tags NAME, ...`
    Tags(Vec<Ident>),
    /// `mode enforce|monitor`
    Mode(Mode),
    /// `isolated`
    Isolated,
    /// `criticality life-critical|high|medium|low`
    Criticality(Criticality),
    /// `description "..."` (unescaped)
    Description(String),
    /// `conntrack-limit N`: at most N established tracked connections
    /// started from this zone.
    ConntrackLimit(u32),
}

/// A single address of a zone. Written in a `hosts` item, or read from an
/// inventory file: then `device` is set and the node's span points at the
/// device's `address:` value in the YAML file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Host {
    pub addr: IpAddr,
    pub device: Option<Box<Device>>,
}

impl Host {
    #[must_use]
    pub fn new(addr: IpAddr) -> Self {
        Self { addr, device: None }
    }

    /// The host as a /32 or /128 network.
    #[must_use]
    pub fn network(&self) -> IpNetwork {
        IpNetwork::from(self.addr)
    }
}

/// One device of an inventory file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Device {
    pub name: String,
    pub zone: String,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    #[default]
    Enforce,
    Monitor,
}

impl Mode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        }
    }
}

/// Ordered from least to most critical.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Criticality {
    Low,
    Medium,
    High,
    LifeCritical,
}

impl Criticality {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Criticality::Low => "low",
            Criticality::Medium => "medium",
            Criticality::High => "high",
            Criticality::LifeCritical => "life-critical",
        }
    }
}

/// `allow|deny SELECTORS -> SELECTORS : SERVICES [until DATE] [STRING]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub action: Node<Action>,
    pub src: Vec<Node<Selector>>,
    pub dst: Vec<Node<Selector>>,
    pub services: Vec<Node<ServiceAtom>>,
    pub until: Option<Node<Date>>,
    /// The trailing string (unescaped).
    pub comment: Option<Node<String>>,
}

/// Ordered `allow` before `deny`; serialized lowercase (the policy image's
/// rule metadata).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    /// A zone name.
    Zone(Ident),
    /// `tag:NAME`: every zone carrying the tag.
    Tag(Ident),
    /// `world`: every address no declared zone holds.
    World,
    /// `any`: every zone, `world` included.
    Any,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Zone(n) => f.write_str(n),
            Selector::Tag(n) => write!(f, "tag:{}", n.node),
            Selector::World => f.write_str("world"),
            Selector::Any => f.write_str("any"),
        }
    }
}

/// `require no-flow|no-path SELECTORS -> SELECTORS`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Require {
    pub kind: Node<RequireKind>,
    pub src: Vec<Node<Selector>>,
    pub dst: Vec<Node<Selector>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequireKind {
    NoFlow,
    NoPath,
}

impl RequireKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RequireKind::NoFlow => "no-flow",
            RequireKind::NoPath => "no-path",
        }
    }
}

/// A whole policy: every file of it merged, statements grouped by kind (order
/// never changes meaning). Inventory devices are already hosts of their zones.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Policy {
    pub services: Vec<Node<Service>>,
    pub zones: Vec<Node<Zone>>,
    pub rules: Vec<Node<Rule>>,
    pub requirements: Vec<Node<Require>>,
}

impl Policy {
    /// Merges parsed files (root first, then includes in load order).
    #[must_use]
    pub fn from_files<'a>(files: impl IntoIterator<Item = &'a File>) -> Self {
        let mut policy = Policy::default();
        for file in files {
            for stmt in &file.statements {
                let span = stmt.span;
                match &stmt.node {
                    Statement::Service(s) => policy.services.push(Node::new(s.clone(), span)),
                    Statement::Zone(z) => policy.zones.push(Node::new(z.clone(), span)),
                    Statement::Rule(r) => policy.rules.push(Node::new(r.clone(), span)),
                    Statement::Require(r) => policy.requirements.push(Node::new(r.clone(), span)),
                    Statement::Include(_) | Statement::Inventory(_) => {}
                }
            }
        }
        policy
    }

    /// The first zone with this name.
    #[must_use]
    pub fn zone(&self, name: &str) -> Option<&Node<Zone>> {
        self.zones.iter().find(|z| z.name.node == name)
    }

    /// The first service with this name.
    #[must_use]
    pub fn service(&self, name: &str) -> Option<&Node<Service>> {
        self.services.iter().find(|s| s.name.node == name)
    }
}

/// Words that cannot be names: statement, item, selector and protocol
/// keywords. Item values (`enforce`, `high`, `life-critical`, ...) are not
/// reserved: `tag:life-critical` is a natural tag.
pub const KEYWORDS: &[&str] = &[
    "include",
    "inventory",
    "service",
    "zone",
    "allow",
    "deny",
    "require",
    "until",
    "networks",
    "hosts",
    "tags",
    "mode",
    "isolated",
    "criticality",
    "description",
    "conntrack-limit",
    "world",
    "any",
    "tag",
    "tcp",
    "udp",
    "sctp",
    "icmp",
    "icmpv6",
    "proto",
    "no-flow",
    "no-path",
];

#[must_use]
pub fn is_keyword(word: &str) -> bool {
    KEYWORDS.contains(&word)
}
