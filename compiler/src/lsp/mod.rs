//! `wardgate lsp`: a language server for `.ward` files, over stdio.
//!
//! Built on `lsp-server`'s message types and `lsp-types` (the synchronous
//! approach of rust-analyzer); the framing is our own so that bad input
//! gets an error response instead of ending the connection
//! ([`transport`]). What the editor gets:
//!
//! - diagnostics while typing: everything `wardgate check` reports, with a
//!   requirement's counter-example chain as related information, one entry
//!   per hop pointing at its rule ([`diagnostics`]); the editor's unsaved
//!   texts are read instead of the disk, includes resolved relative to the
//!   file ([`documents`]);
//! - go to definition and find references for zones, services and tags,
//!   across includes ([`navigation`], over [`symbols`]);
//! - hovers on zones, services, tags, rules and `until` dates ([`hover`]);
//! - completion by context ([`completion`]);
//! - formatting with `wardgate fmt`'s function, document symbols, and
//!   quick fixes for findings with a mechanical fix ([`actions`]).
//!
//! The parser recovers statement by statement, and the compiler's analysis
//! runs on every statement that parses, so a half-typed statement hides
//! nothing else of the file.

pub mod actions;
pub mod completion;
pub mod diagnostics;
pub mod documents;
pub mod hover;
pub mod navigation;
pub mod position;
pub mod server;
pub mod symbols;
pub mod transport;

pub use server::serve;
