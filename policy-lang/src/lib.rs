//! The wardgate policy language (`.ward`): text to a typed AST and diagnostics.
//!
//! This crate knows nothing of graphs, eBPF or the kernel. It turns text into
//! an AST ([`ast`]) and [`Diagnostic`]s; syntax errors are values, never
//! panics. What it checks needs only the AST: syntax, values (addresses,
//! prefixes, ports, ICMP types, dates), names and references, includes and
//! inventories. Resolution, requirements and lints are the compiler's.
//!
//! # Entry points
//!
//! - [`load`]: read a root file from disk, follow `include` (relative to the
//!   including file, cycles are errors) and `inventory` (YAML; errors point at
//!   the YAML file and line), run the AST checks, and return a [`Loaded`]:
//!   the [`SourceMap`] of every file read, each parsed [`ast::File`], the
//!   merged [`ast::Policy`] (inventory devices added to their zones as hosts)
//!   and the diagnostics.
//! - [`load_with`]: the same with a caller-supplied file reader (tests, fuzzing).
//! - [`parse_str`]: one text, no includes or inventories followed (they are
//!   kept as statements), checks run. For tests and tools.
//! - [`parser::parse_file`]: the bare parser: text to [`ast::File`] and
//!   syntax/value diagnostics, no name checks.
//! - [`fmt::format_file`]: the canonical text of a parsed file.
//! - [`render`]: diagnostics as human text (miette), JSON, SARIF or GitHub
//!   workflow annotations.
//! - [`codes::ALL`]: the registry of the language's diagnostic codes.
#![forbid(unsafe_code)]

pub mod ast;
pub mod check;
pub mod codes;
pub mod date;
pub mod diagnostic;
pub mod fmt;
mod inventory;
mod load;
pub mod parser;
pub mod render;
pub mod span;

pub use diagnostic::{CodeInfo, Diagnostic, Severity};
pub use load::{Loaded, load, load_with, parse_str};
pub use span::{FileId, LineCol, SourceMap, Span};
