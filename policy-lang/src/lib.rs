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
//!   and the diagnostics. It reads regular files of at most
//!   [`MAX_FILE_BYTES`] only, `.ward` includes and `.yaml` inventories under
//!   the root file's directory only (see [`load_with_options`]), and includes
//!   at most [`MAX_INCLUDE_DEPTH`] deep.
//! - [`load_with`]: the same with a caller-supplied file reader (tests, fuzzing).
//! - [`parse_str`]: one text, no includes or inventories followed (they are
//!   kept as statements), checks run. For tests and tools.
//! - [`parser::parse_file`]: the bare parser: text to [`ast::File`] and
//!   syntax/value diagnostics, no name checks.
//! - [`fmt::format_file`]: the canonical text of a parsed file.
//! - [`render`]: diagnostics as human text (miette), one line each
//!   (concise), JSON, SARIF or GitHub workflow annotations.
//! - [`codes::ALL`]: the registry of the language's diagnostic codes.
//! - [`suppress`]: suppression comments (`# wardgate: allow(WG502) "reason"`);
//!   [`Loaded::suppress`] marks the findings they acknowledge.
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
mod suggest;
pub mod suppress;

pub use diagnostic::{CodeInfo, Diagnostic, Severity, Suppression};
pub use load::{
    LoadOptions, Loaded, MAX_FILE_BYTES, MAX_INCLUDE_DEPTH, load, load_with, load_with_options,
    parse_str, read_file,
};
pub use span::{FileId, LineCol, SourceMap, Span};
