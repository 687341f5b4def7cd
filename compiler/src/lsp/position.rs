//! Byte offsets to LSP positions and back.
//!
//! Spans are byte ranges; the protocol counts lines from 0 and columns in
//! UTF-16 code units (its default position encoding). A position past the
//! end of a line or of the text is clamped, never an error.

use lsp_types::{Position, Range};

/// Line starts of one text, for offset and position conversion.
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    #[must_use]
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { text, starts }
    }

    /// The position of a byte offset (clamped to the text, and moved back
    /// to a character boundary).
    #[must_use]
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let character = self.text[start..offset].encode_utf16().count();
        Position::new(to_u32(line), to_u32(character))
    }

    #[must_use]
    pub fn range(&self, start: usize, end: usize) -> Range {
        Range::new(self.position(start), self.position(end))
    }

    /// The byte offset of a position; a column past the end of its line is
    /// the end of the line, a line past the end is the end of the text.
    #[must_use]
    pub fn offset(&self, pos: Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return self.text.len();
        };
        let end = self
            .starts
            .get(pos.line as usize + 1)
            .map_or(self.text.len(), |&e| e);
        let mut units = 0;
        for (i, c) in self.text[start..end].char_indices() {
            if units >= pos.character as usize || c == '\n' || c == '\r' {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_utf16_units() {
        // `é` is 2 bytes and 1 unit; `𝄞` is 4 bytes and 2 units.
        let text = "ab\né𝄞x\n";
        let idx = LineIndex::new(text);
        assert_eq!(idx.position(0), Position::new(0, 0));
        assert_eq!(idx.position(3), Position::new(1, 0));
        assert_eq!(idx.position(5), Position::new(1, 1));
        assert_eq!(idx.position(9), Position::new(1, 3));
        assert_eq!(idx.offset(Position::new(1, 3)), 9);
        assert_eq!(idx.offset(Position::new(1, 1)), 5);
    }

    #[test]
    fn out_of_range_positions_are_clamped() {
        let idx = LineIndex::new("ab\ncd");
        assert_eq!(idx.offset(Position::new(0, 99)), 2);
        assert_eq!(idx.offset(Position::new(7, 0)), 5);
        assert_eq!(idx.position(99), Position::new(1, 2));
        // Inside a multi-byte character: back to its start.
        let idx = LineIndex::new("é");
        assert_eq!(idx.position(1), Position::new(0, 0));
    }
}
