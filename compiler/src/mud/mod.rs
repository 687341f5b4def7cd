//! Manufacturer Usage Descriptions (RFC 8520): MUD files to `.ward` rules
//! (`wardgate import mud`) and a zone's flows to a draft MUD file
//! (`wardgate export mud`). `docs/mud.md` describes both.
//!
//! [`schema`] reads the JSON (three key layouts), [`bindings`] the site's
//! YAML saying where the MUD abstractions are, [`import`] turns ACEs into
//! flows and a fragment, [`check`] withholds rules that would break a site
//! requirement, [`export`] writes a zone's flows as a draft MUD file.

pub mod bindings;
pub mod check;
pub mod export;
pub mod import;
pub mod schema;

pub use bindings::{Bindings, BindingsError};
pub use import::{Flow, Imported, Initiator, Problem, Section, Side, import, render};
pub use schema::{Document, ParseError, parse};
