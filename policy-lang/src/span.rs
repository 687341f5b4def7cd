//! Source files, byte spans, and line/column lookup.
//!
//! Every AST node and every diagnostic carries a [`Span`]: a file id and a
//! byte range into that file's text. The [`SourceMap`] owns the texts (`.ward`
//! files and inventory YAML files alike) and turns a span into a path and a
//! 1-based line and column for people and machine formats.

use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// A byte range `start..end` in one file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: usize,
    pub end: usize,
}

impl Span {
    #[must_use]
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        Self { file, start, end }
    }

    /// The smallest span covering both (same file assumed; `self`'s file kept).
    #[must_use]
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A 1-based line and column; the column counts characters, not bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

/// One source file: its path (as the user named it, or as resolved from an
/// `include`) and its text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    /// Byte offset of the start of every line.
    line_starts: Vec<usize>,
}

impl SourceFile {
    fn new(path: PathBuf, text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            path,
            text,
            line_starts,
        }
    }

    /// Line and column of a byte offset (clamped to the text).
    #[must_use]
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        LineCol {
            line: line + 1,
            column,
        }
    }

    /// Byte offset of the start of a 1-based line (clamped).
    #[must_use]
    pub fn line_start(&self, line: usize) -> usize {
        let i = line.saturating_sub(1).min(self.line_starts.len() - 1);
        self.line_starts[i]
    }

    /// Number of lines (a final newline does not start a new line).
    #[must_use]
    pub fn line_count(&self) -> usize {
        let n = self.line_starts.len();
        if n > 1 && self.line_starts[n - 1] == self.text.len() {
            n - 1
        } else {
            n
        }
    }

    /// The 1-based line holding a byte offset (clamped to the text).
    #[must_use]
    pub fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.line_starts.partition_point(|&s| s <= offset)
    }

    /// Byte range of a 1-based line (clamped), without its line ending.
    #[must_use]
    pub fn line_bounds(&self, line: usize) -> (usize, usize) {
        let start = self.line_start(line);
        let end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |n| start + n);
        let end = if end > start && self.text.as_bytes()[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        (start, end)
    }

    /// The text of a 1-based line, without its newline.
    #[must_use]
    pub fn line_text(&self, line: usize) -> &str {
        let start = self.line_start(line);
        let rest = &self.text[start..];
        rest.split('\n').next().unwrap_or("").trim_end_matches('\r')
    }
}

/// All files of one policy: the root, its includes and its inventories.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file and returns its id.
    pub fn add(&mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).expect("fewer than 2^32 files"));
        self.files.push(SourceFile::new(path.into(), text.into()));
        id
    }

    /// Panics if `id` did not come from this map.
    #[must_use]
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    #[must_use]
    pub fn path(&self, id: FileId) -> &Path {
        &self.file(id).path
    }

    #[must_use]
    pub fn text(&self, id: FileId) -> &str {
        &self.file(id).text
    }

    /// Every file's path and text, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.files
            .iter()
            .map(|f| (f.path.as_path(), f.text.as_str()))
    }

    /// The source text a span covers.
    #[must_use]
    pub fn snippet(&self, span: Span) -> &str {
        self.text(span.file).get(span.start..span.end).unwrap_or("")
    }

    /// Line and column (1-based) of the start of a span.
    #[must_use]
    pub fn start(&self, span: Span) -> LineCol {
        self.file(span.file).line_col(span.start)
    }

    /// Line and column (1-based) of the end of a span (exclusive end).
    #[must_use]
    pub fn end(&self, span: Span) -> LineCol {
        self.file(span.file).line_col(span.end)
    }

    /// The id of a file already in the map with this path.
    #[must_use]
    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files
            .iter()
            .position(|f| f.path == path)
            .map(|i| FileId(u32::try_from(i).expect("fewer than 2^32 files")))
    }

    /// Every file id, in the order the files were added.
    pub fn ids(&self) -> impl Iterator<Item = FileId> + '_ {
        (0..self.files.len()).map(|i| FileId(u32::try_from(i).expect("fewer than 2^32 files")))
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.files.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// End of the whitespace-delimited token starting at `start` (at least one
/// character, unless at the end of the text).
pub(crate) fn token_end(text: &str, start: usize) -> usize {
    let rest = text.get(start..).unwrap_or("");
    match rest.find(char::is_whitespace) {
        Some(0) => start + rest.chars().next().map_or(0, char::len_utf8),
        Some(n) => start + n,
        None => text.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based_and_counts_chars() {
        let mut map = SourceMap::new();
        let id = map.add("a.ward", "ab\nçd\n");
        assert_eq!(
            map.start(Span::new(id, 0, 1)),
            LineCol { line: 1, column: 1 }
        );
        assert_eq!(
            map.start(Span::new(id, 3, 4)),
            LineCol { line: 2, column: 1 }
        );
        // 'ç' is two bytes.
        assert_eq!(
            map.start(Span::new(id, 5, 6)),
            LineCol { line: 2, column: 2 }
        );
        assert_eq!(map.file(id).line_text(2), "çd");
    }
}
