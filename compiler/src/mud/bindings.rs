//! The bindings file: where the MUD abstractions are on this site.
//!
//! A MUD file names its peers abstractly (`controller`, `local-networks`,
//! `same-manufacturer`, DNS names...); the site says which zones (or tag
//! selectors) they are. YAML, every key optional (`docs/mud.md`):
//!
//! ```yaml
//! controller:          # controller URI -> selectors
//!   "urn:ietf:params:mud:dns": infra
//! my-controller:       # MUD URL -> selectors
//!   "https://example.com/.well-known/mud/pump": [pump-server]
//! local-networks: [clinical-lan, printers]
//! manufacturer:        # authority of a MUD URL -> selectors (also same-manufacturer)
//!   "example.com": tag:example-devices
//! model:               # MUD URL -> selectors
//!   "https://example.com/.well-known/mud/gateway": gateways
//! dnsname:             # DNS name -> selectors
//!   "updates.example.com": world
//! any-address: world   # ACEs that name no peer at all
//! ```
//!
//! A selector is a zone name, `tag:NAME` or `world`; `any` is refused (a
//! binding says where a peer is, and `any` says nothing).

use std::collections::BTreeMap;

use serde::Deserialize;

/// One selector or a list of them.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Selectors {
    One(String),
    Many(Vec<String>),
}

impl Selectors {
    #[must_use]
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// A parsed bindings file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Bindings {
    #[serde(default)]
    pub controller: BTreeMap<String, Selectors>,
    #[serde(default)]
    pub my_controller: BTreeMap<String, Selectors>,
    #[serde(default)]
    pub local_networks: Option<Selectors>,
    #[serde(default)]
    pub manufacturer: BTreeMap<String, Selectors>,
    #[serde(default)]
    pub model: BTreeMap<String, Selectors>,
    #[serde(default)]
    pub dnsname: BTreeMap<String, Selectors>,
    #[serde(default)]
    pub any_address: Option<Selectors>,
}

/// A bindings file that cannot be used, with the YAML path of the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BindingsError(pub String);

impl Bindings {
    /// Parses and checks a bindings file.
    ///
    /// # Errors
    /// Not YAML, unknown keys, wrong types, a selector that is not a zone
    /// name, `tag:NAME` or `world`, an empty list.
    pub fn parse(text: &str) -> Result<Self, BindingsError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let de = serde_yaml::Deserializer::from_str(text);
        let b: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            BindingsError(if path == "." {
                format!("{inner}")
            } else {
                format!("at `{path}`: {inner}")
            })
        })?;
        b.check()?;
        Ok(b)
    }

    fn check(&self) -> Result<(), BindingsError> {
        let maps = [
            ("controller", &self.controller),
            ("my-controller", &self.my_controller),
            ("manufacturer", &self.manufacturer),
            ("model", &self.model),
            ("dnsname", &self.dnsname),
        ];
        for (key, map) in maps {
            for (k, sel) in map {
                check_selectors(&format!("{key}.{k}"), sel)?;
            }
        }
        if let Some(sel) = &self.local_networks {
            check_selectors("local-networks", sel)?;
        }
        if let Some(sel) = &self.any_address {
            check_selectors("any-address", sel)?;
        }
        Ok(())
    }
}

fn check_selectors(path: &str, sel: &Selectors) -> Result<(), BindingsError> {
    let v = sel.to_vec();
    if v.is_empty() {
        return Err(BindingsError(format!(
            "at `{path}`: an empty list binds nothing"
        )));
    }
    for s in &v {
        let name = s.strip_prefix("tag:").unwrap_or(s);
        if s == "any" {
            return Err(BindingsError(format!(
                "at `{path}`: `any` is not a binding (name the zones, a `tag:` or `world`)"
            )));
        }
        if s != "world" && !is_name(name) {
            return Err(BindingsError(format!(
                "at `{path}`: `{s}` is not a zone name, `tag:NAME` or `world`"
            )));
        }
    }
    Ok(())
}

/// A name of the language: a letter, then letters, digits, `-` and `_`,
/// and not a keyword.
#[must_use]
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !wardgate_lang::ast::is_keyword(s)
}
