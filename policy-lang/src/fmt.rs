//! The canonical formatter.

use crate::ast::File;

/// The canonical text of a parsed file (`text` is its source, for comments).
#[must_use]
pub fn format_file(_file: &File, text: &str) -> String {
    text.to_string()
}
