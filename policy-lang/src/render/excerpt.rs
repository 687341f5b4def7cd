//! Excerpts: the few source lines a snippet shows, made safe to print.
//!
//! The human renderer hands miette an [`Excerpt`] instead of a whole file.
//! An excerpt holds a contiguous run of lines around some labels, with:
//!
//! - control characters shown as visible pictures (`␛` for ESC; see
//!   [`sanitize`]), so a policy cannot drive the terminal;
//! - lines longer than [`MAX_LINE_CHARS`] cut to a window around the labels
//!   on them (`…` marks each cut), so a 72 KB line prints as one screen line
//!   and no column passes the formatter's limits;
//! - the real line numbers and character columns of the file.
//!
//! Building an excerpt costs the length of its lines, never of the file, so
//! rendering N diagnostics is linear in N.

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

use crate::span::SourceFile;

/// Lines longer than this (in characters) are cut around their labels.
pub const MAX_LINE_CHARS: usize = 200;
/// Characters kept on each side of the labels of a cut line.
const MARGIN_CHARS: usize = 40;
/// Lines of context miette shows before and after a label.
pub const CONTEXT_LINES: usize = 1;
/// Labels at most this many lines apart share a snippet (the lines between
/// are shown); labels further apart get snippets of their own.
pub const MAX_GAP_LINES: usize = 6;
/// A label spanning more lines than this is shown on its first line only.
pub const MAX_SPAN_LINES: usize = 8;

/// One line of an excerpt.
#[derive(Debug)]
struct Line {
    /// Byte range of the shown text in the excerpt (without the newline).
    start: usize,
    end: usize,
    /// Byte range of the file that the shown text comes from.
    real_start: usize,
    real_end: usize,
    /// 0-based character column of `real_start` in its line.
    real_col: usize,
    /// Bytes of the leading `…` (0 when the line is not cut on the left).
    prefix: usize,
    /// Bytes of the trailing `…` (0 when the line is not cut on the right).
    suffix: usize,
    /// The file text shown (before sanitizing).
    real: String,
}

/// A contiguous run of lines of one file, sanitized and cut, that miette
/// reads as its source code. Spans given to miette are offsets into
/// [`Excerpt::text`], made with [`Excerpt::map`].
#[derive(Debug)]
pub struct Excerpt {
    name: String,
    text: String,
    /// 1-based line number of the first line.
    first_line: usize,
    lines: Vec<Line>,
}

impl Excerpt {
    /// The lines `first..=last` (1-based, clamped to the file) of `file`,
    /// each cut around the byte offsets in `points` that fall on it.
    pub fn new(
        name: String,
        file: &SourceFile,
        first: usize,
        last: usize,
        points: &[usize],
    ) -> Self {
        let count = file.line_count();
        let first = first.clamp(1, count);
        let last = last.clamp(first, count);
        let mut text = String::new();
        let mut lines = Vec::with_capacity(last - first + 1);
        for n in first..=last {
            let (ls, le) = file.line_bounds(n);
            let line = &file.text[ls..le];
            let on_line: Vec<usize> = points
                .iter()
                .copied()
                .filter(|&p| p >= ls && p <= le)
                .map(|p| p - ls)
                .collect();
            let (ws, we) = window(line, &on_line);
            let start = text.len();
            let prefix = if ws > 0 {
                text.push('…');
                '…'.len_utf8()
            } else {
                0
            };
            sanitize_into(&line[ws..we], &mut text);
            let suffix = if we < line.len() {
                text.push('…');
                '…'.len_utf8()
            } else {
                0
            };
            let end = text.len();
            lines.push(Line {
                start,
                end,
                real_start: ls + ws,
                real_end: ls + we,
                real_col: line[..ws].chars().count(),
                prefix,
                suffix,
                real: line[ws..we].to_string(),
            });
            text.push('\n');
        }
        Self {
            name,
            text,
            first_line: first,
            lines,
        }
    }

    /// The excerpt offset of a file byte offset on line `line` (1-based);
    /// offsets cut away are clamped to the nearest shown character.
    pub fn map(&self, line: usize, offset: usize) -> usize {
        let Some(l) = line
            .checked_sub(self.first_line)
            .and_then(|i| self.lines.get(i))
        else {
            return if line < self.first_line {
                0
            } else {
                self.lines.last().map_or(0, |l| l.end)
            };
        };
        let shown = l.start + l.prefix;
        if offset <= l.real_start {
            return shown;
        }
        if offset >= l.real_end {
            // At or past the end of what is shown (the closing `…`, if any,
            // follows).
            return shown + self.text[shown..l.end].len() - l.suffix;
        }
        // Sanitizing keeps one shown character per file character.
        let n = l.real[..offset - l.real_start].chars().count();
        shown
            + self.text[shown..l.end]
                .chars()
                .take(n)
                .map(char::len_utf8)
                .sum::<usize>()
    }

    /// Index in `lines` of the line holding excerpt offset `at`.
    fn line_at(&self, at: usize) -> usize {
        self.lines
            .partition_point(|l| l.start <= at)
            .saturating_sub(1)
    }
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        if self.lines.is_empty() {
            return Err(MietteError::OutOfBounds);
        }
        let first = self.line_at(span.offset());
        let last = self
            .line_at(span.offset() + span.len().saturating_sub(1))
            .max(first);
        let lo = first.saturating_sub(context_lines_before);
        let hi = (last + context_lines_after).min(self.lines.len() - 1);
        let start = self.lines[lo].start;
        let end = (self.lines[hi].end + 1).min(self.text.len());
        let l = &self.lines[first];
        let shown = l.start + l.prefix;
        let column = l.real_col
            + self.text[shown..span.offset().clamp(shown, l.end)]
                .chars()
                .count();
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            &self.text.as_bytes()[start..end],
            SourceSpan::new(start.into(), end - start),
            self.first_line - 1 + lo,
            column,
            // miette draws two labels in one snippet when their line ranges
            // touch; everything in an excerpt belongs in one snippet.
            self.lines.len(),
        )))
    }
}

/// The byte range of `line` to show: all of it when short, else a window of
/// at most [`MAX_LINE_CHARS`] characters around `points` (byte offsets in
/// the line), or the start of the line when no point is on it.
fn window(line: &str, points: &[usize]) -> (usize, usize) {
    let chars = line.chars().count();
    if chars <= MAX_LINE_CHARS {
        return (0, line.len());
    }
    let starts: Vec<usize> = line.char_indices().map(|(i, _)| i).collect();
    let char_of = |b: usize| starts.partition_point(|&s| s < b);
    let byte_of = |c: usize| starts.get(c).copied().unwrap_or(line.len());
    let (lo, hi) = match (points.iter().min(), points.iter().max()) {
        (Some(&lo), Some(&hi)) => (char_of(lo), char_of(hi)),
        _ => (0, 0),
    };
    let from = lo.saturating_sub(MARGIN_CHARS);
    let to = (hi + MARGIN_CHARS)
        .max(from + 2 * MARGIN_CHARS)
        .min(from + MAX_LINE_CHARS)
        .min(chars);
    (byte_of(from), byte_of(to))
}

/// Appends `s` with every control character except tab replaced by a
/// visible picture of one character: C0 controls by their Unicode control
/// pictures (`␛`, `␇`), DEL by `␡`, C1 controls by `�`.
pub fn sanitize_into(s: &str, out: &mut String) {
    for c in s.chars() {
        out.push(visible(c));
    }
}

/// [`sanitize_into`] as a new string; newlines are kept when `keep_newlines`.
#[must_use]
pub fn sanitize(s: &str, keep_newlines: bool) -> String {
    s.chars()
        .map(|c| {
            if keep_newlines && c == '\n' {
                c
            } else {
                visible(c)
            }
        })
        .collect()
}

fn visible(c: char) -> char {
    match c {
        '\t' => c,
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
        '\u{7f}' => '\u{2421}',
        '\u{80}'..='\u{9f}' => '\u{fffd}',
        _ => c,
    }
}
