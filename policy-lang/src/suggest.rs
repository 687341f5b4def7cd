//! "Did you mean" suggestions: the closest known word within a small edit
//! distance.

/// Edit distance with adjacent transpositions (optimal string alignment),
/// for "did you mean" suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The closest candidate within a small edit distance (about a third of
/// the word, at least one, at most three edits).
pub(crate) fn suggest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let len = word.chars().count();
    let limit = if len < 3 { 1 } else { (len / 2).clamp(1, 3) };
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= limit && *d < c.chars().count() && *c != word)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// Edit distances a [`Suggester`] computes at most, over all its words: past
/// this budget it suggests nothing, so that 50,000 undefined names against
/// 50,000 declared ones cost a bounded time instead of 2.5 billion
/// comparisons (human output shows the first 100 diagnostics anyway).
pub(crate) const SUGGESTION_BUDGET: usize = 250_000;

/// [`suggest`] over a fixed list of candidates, for many words: each word is
/// looked up once, only candidates of a length within reach are compared,
/// and the total work is bounded by [`SUGGESTION_BUDGET`].
pub(crate) struct Suggester<'c> {
    /// Sorted by byte length.
    candidates: Vec<&'c str>,
    cache: std::collections::HashMap<String, Option<&'c str>>,
    budget: usize,
}

impl<'c> Suggester<'c> {
    pub(crate) fn new(candidates: impl IntoIterator<Item = &'c str>) -> Self {
        let mut candidates: Vec<&'c str> = candidates.into_iter().collect();
        candidates.sort_by_key(|c| c.len());
        Self {
            candidates,
            cache: std::collections::HashMap::new(),
            budget: SUGGESTION_BUDGET,
        }
    }

    pub(crate) fn suggest(&mut self, word: &str) -> Option<&'c str> {
        if let Some(hit) = self.cache.get(word) {
            return *hit;
        }
        if self.budget == 0 {
            return None;
        }
        // Within `limit` edits the character counts differ by at most
        // `limit`, so the byte lengths by at most 4 * limit.
        let len = word.chars().count();
        let limit = if len < 3 { 1 } else { (len / 2).clamp(1, 3) };
        let lo = self
            .candidates
            .partition_point(|c| c.len() + 4 * limit < word.len());
        let hi = self
            .candidates
            .partition_point(|c| c.len() <= word.len() + 4 * limit);
        let near = &self.candidates[lo..hi.max(lo)];
        let found = if near.len() > self.budget {
            self.budget = 0;
            None
        } else {
            self.budget -= near.len();
            suggest(word, near.iter().copied())
        };
        self.cache.insert(word.to_string(), found);
        found
    }
}
