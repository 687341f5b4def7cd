//! Port directories, lowered for the datapath: a span with many intervals
//! (a zone pair with hundreds of allowed ports) gets one run of its
//! intervals per 256 ports, so the program's binary search starts from the
//! few intervals that can hold the port's block instead of the span's
//! hundreds. Up to `MAX_PORT_DIRS` spans get one, those with the most
//! intervals; the rest are searched whole.
//!
//! The image does not hold directories: the agent builds them when it
//! loads an image, like the IPv4 block directories (`v4table`).

use std::collections::BTreeMap;

use wardgate_common::{
    Interval, PORT_DIR_RUNS, Run, Span,
    maps::{MAX_PORT_DIRS, PORT_DIR_MIN_INTERVALS},
};

use crate::image::PolicyImage;

/// The port directories of an image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortDirs {
    /// `(first interval of a span, its directory's number from 1)`, by interval.
    pub marks: Vec<(u32, u16)>,
    /// The directories, `PORT_DIR_RUNS` runs each (indices into the
    /// image's intervals): directory `n`'s runs start at `(n - 1) * PORT_DIR_RUNS`.
    pub runs: Vec<Run>,
}

impl PortDirs {
    /// The directories of `image`'s distinct spans.
    #[must_use]
    pub fn build(image: &PolicyImage) -> Self {
        // Pairs share spans (identical interval tables are stored once).
        let mut spans: BTreeMap<u32, u32> = BTreeMap::new();
        for (_, span) in image.pairs() {
            spans.insert(span.first, span.count);
        }
        let mut dense: Vec<Span> = spans
            .into_iter()
            .filter(|&(_, count)| count as usize > PORT_DIR_MIN_INTERVALS)
            .map(|(first, count)| Span { first, count })
            .collect();
        // The most intervals first; the span's place breaks ties (deterministic).
        dense.sort_by_key(|s| (std::cmp::Reverse(s.count), s.first));
        dense.truncate(MAX_PORT_DIRS as usize);
        dense.sort_by_key(|s| s.first);
        let intervals = image.intervals();
        let mut dirs = Self::default();
        for (n, span) in dense.iter().enumerate() {
            let table = &intervals[span.first as usize..(span.first + span.count) as usize];
            // The last interval starting at or before `port` (a span covers
            // every port, so its first interval starts at 0).
            let holding = |port: u32| {
                span.first + table.partition_point(|i| u32::from(i.lo) <= port) as u32 - 1
            };
            #[expect(clippy::cast_possible_truncation, reason = "n < MAX_PORT_DIRS < 2^16")]
            dirs.marks.push((span.first, n as u16 + 1));
            for block in 0..PORT_DIR_RUNS {
                dirs.runs.push(Run {
                    first: holding(block << 8),
                    end: holding(block << 8 | 0xff) + 1,
                });
            }
        }
        dirs
    }

    /// The interval of `span` holding `port`, searched the way the datapath
    /// does: from the port's run of the span's directory if it has one.
    #[must_use]
    pub fn find(&self, intervals: &[Interval], span: Span, port: u16) -> Option<Interval> {
        let (first, end) = match self.marks.binary_search_by_key(&span.first, |m| m.0) {
            Ok(at) => {
                let n = u32::from(self.marks[at].1);
                let run = self.runs[((n - 1) * PORT_DIR_RUNS + u32::from(port >> 8)) as usize];
                (run.first, run.end)
            }
            Err(_) => (span.first, span.first + span.count),
        };
        let run = &intervals[first as usize..end as usize];
        let found = run[run.partition_point(|i| i.lo <= port).checked_sub(1)?];
        (found.lo <= port && port <= found.hi).then_some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::image;

    /// `a -> b` allows 300 scattered TCP ports and a range; `b -> a` one port.
    fn many_ports() -> PolicyImage {
        let ports: Vec<String> = (0..300)
            .map(|k| format!("tcp/{}", 1000 + k * 97 % 60_000))
            .chain(["tcp/20000-20999".to_owned()])
            .collect();
        image(&format!(
            "zone a {{ networks 10.0.0.0/24 }}\nzone b {{ networks 10.1.0.0/24 }}\n\
             allow a -> b : {}\nallow b -> a : tcp/22\n",
            ports.join(", ")
        ))
    }

    #[test]
    fn only_spans_with_many_intervals_get_a_directory() {
        let img = many_ports();
        let dirs = PortDirs::build(&img);
        let counts: Vec<u32> = img.pairs().iter().map(|(_, s)| s.count).collect();
        let dense = counts
            .iter()
            .filter(|&&c| c as usize > PORT_DIR_MIN_INTERVALS);
        assert_eq!(dirs.marks.len(), 1, "{counts:?}");
        assert_eq!(dense.count(), 1, "{counts:?}");
        assert_eq!(dirs.runs.len(), PORT_DIR_RUNS as usize);
        // A run never holds more than the intervals of its 256 ports and the one before.
        assert!(
            dirs.runs
                .iter()
                .all(|r| r.end > r.first && r.end - r.first <= 257)
        );
    }

    #[test]
    fn finds_every_port_as_the_whole_span_does() {
        let img = many_ports();
        let dirs = PortDirs::build(&img);
        let none = PortDirs::default();
        for (_, span) in img.pairs() {
            for port in 0..=u16::MAX {
                let want = none.find(img.intervals(), *span, port);
                assert!(want.is_some(), "spans cover every port");
                assert_eq!(dirs.find(img.intervals(), *span, port), want, "port {port}");
            }
        }
    }

    #[test]
    fn at_most_max_port_dirs_spans_get_one_and_the_longest_win() {
        // MAX_PORT_DIRS + 1 zone pairs with distinct tables of 10 ports
        // (21 intervals), and one pair with 40 ports.
        let zones = MAX_PORT_DIRS as usize + 2;
        let mut src = String::new();
        for z in 0..zones {
            src += &format!("zone z{z} {{ hosts 10.{}.{}.1 }}\n", z / 256, z % 256);
        }
        for z in 1..zones {
            let ports: Vec<String> = (0..10)
                .map(|k| format!("tcp/{}", 100 + z + 1000 * k))
                .collect();
            src += &format!("allow z0 -> z{z} : {}\n", ports.join(", "));
        }
        let ports: Vec<String> = (0..40).map(|k| format!("tcp/{}", 7 + 1000 * k)).collect();
        src += &format!("allow z1 -> z0 : {}\n", ports.join(", "));
        let img = image(&src);
        let dirs = PortDirs::build(&img);
        assert_eq!(dirs.marks.len(), MAX_PORT_DIRS as usize);
        let longest = img
            .pairs()
            .iter()
            .map(|(_, s)| s)
            .max_by_key(|s| s.count)
            .unwrap();
        assert!(dirs.marks.iter().any(|m| m.0 == longest.first));
    }
}
