//! Reading timing files back (classic and advanced) to repair a recording's timing (an orphan's, or one cut short
//! by a full disk) and to cut a head+tail excerpt that still replays with `scriptreplay`. Lines are read with the
//! parser `auditty play` uses (`play::parse_line`): what it would reject is dropped (and counted), so a repaired
//! timing plays.

use crate::play::{self, Format};

pub use crate::cli::Stream;

/// One line of a timing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An `O` (output) or `I` (input) chunk: `delta` as written (`s.uuuuuu`), `len` bytes of its stream.
    Data {
        stream: Stream,
        delta: String,
        len: u64,
    },
    /// `S` and `H` lines of the advanced format, kept verbatim (without the newline).
    Other(Vec<u8>),
}

/// Index of a stream in `[output, input]` arrays.
fn idx(s: Stream) -> usize {
    match s {
        Stream::Out => 0,
        Stream::In => 1,
    }
}

#[derive(Debug, Clone, Default)]
pub struct Timing {
    pub classic: bool,
    pub entries: Vec<Entry>,
    /// Lines that did not parse, plus an unterminated last line (dropped).
    pub dropped_lines: usize,
}

impl Timing {
    /// Parse a timing file; lines `auditty play` would reject (and an unterminated last line) are dropped and
    /// counted in `dropped_lines`.
    pub fn parse(bytes: &[u8]) -> Timing {
        let classic = bytes.first().is_none_or(|c| c.is_ascii_digit());
        let format = if classic {
            Format::Classic
        } else {
            Format::Advanced
        };
        let mut t = Timing {
            classic,
            ..Timing::default()
        };
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(i) => &bytes[..i + 1],
            None => &[][..],
        };
        if complete.len() < bytes.len() {
            t.dropped_lines += 1;
        }
        for line in complete.split_inclusive(|&b| b == b'\n') {
            let line = &line[..line.len() - 1];
            match play::parse_line(format, line) {
                Ok(play::Entry::Data {
                    stream,
                    delay_us,
                    size,
                }) => t.entries.push(Entry::Data {
                    stream,
                    delta: format!("{}.{:06}", delay_us / 1_000_000, delay_us % 1_000_000),
                    len: size,
                }),
                Ok(play::Entry::Signal { .. } | play::Entry::Info { .. }) => {
                    t.entries.push(Entry::Other(line.to_vec()))
                }
                Err(_) => t.dropped_lines += 1,
            }
        }
        t
    }

    /// What the repair dropped, for the recording's problems list; `None` when every line was kept.
    pub fn dropped_note(&self) -> Option<String> {
        match self.dropped_lines {
            0 => None,
            1 => Some("1 malformed timing line was dropped".into()),
            n => Some(format!("{n} malformed timing lines were dropped")),
        }
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.entries {
            match e {
                Entry::Data { stream, delta, len } => {
                    if !self.classic {
                        out.extend_from_slice(if *stream == Stream::Out { b"O " } else { b"I " });
                    }
                    out.extend_from_slice(format!("{delta} {len}\n").as_bytes());
                }
                Entry::Other(l) => {
                    out.extend_from_slice(l);
                    out.push(b'\n');
                }
            }
        }
        out
    }

    /// Bytes each stream's entries account for: [output, input].
    pub fn totals(&self) -> [u64; 2] {
        let mut t = [0u64; 2];
        for e in &self.entries {
            if let Entry::Data { stream, len, .. } = e {
                // Saturating: a damaged timing may claim sizes near u64::MAX.
                t[idx(*stream)] = t[idx(*stream)].saturating_add(*len);
            }
        }
        t
    }

    /// Make the entries agree with the data actually on disk (`have[stream]` body bytes, header excluded), as
    /// after a crash: entries beyond the data are shortened or dropped, data beyond the entries gets one
    /// final entry. Returns true if anything changed.
    pub fn reconcile(&mut self, have: [u64; 2], input_present: bool) -> bool {
        let mut changed = false;
        let mut used = [0u64; 2];
        let mut kept = Vec::with_capacity(self.entries.len());
        for e in self.entries.drain(..) {
            match e {
                Entry::Data { stream, delta, len } => {
                    let i = idx(stream);
                    let room = have[i].saturating_sub(used[i]);
                    if stream == Stream::In && !input_present {
                        changed = true;
                        continue;
                    }
                    if len <= room {
                        used[i] += len;
                        kept.push(Entry::Data { stream, delta, len });
                    } else {
                        changed = true;
                        if room > 0 {
                            used[i] += room;
                            kept.push(Entry::Data {
                                stream,
                                delta,
                                len: room,
                            });
                        }
                    }
                }
                other => kept.push(other),
            }
        }
        self.entries = kept;
        for (i, stream) in [Stream::Out, Stream::In].into_iter().enumerate() {
            if (stream == Stream::Out || input_present) && have[i] > used[i] {
                if self.classic && stream == Stream::In {
                    continue;
                }
                self.entries.push(Entry::Data {
                    stream,
                    delta: "0.000000".into(),
                    len: have[i] - used[i],
                });
                changed = true;
            }
        }
        changed
    }

    /// Plan a head+tail excerpt keeping about `head` bytes from the start and `tail` bytes from the end (output and
    /// input counted together). `None` when everything fits.
    pub fn plan_cut(&self, head: u64, tail: u64) -> Option<Cut> {
        let data: Vec<(usize, Stream, u64)> = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Entry::Data { stream, len, .. } => Some((i, *stream, *len)),
                Entry::Other(_) => None,
            })
            .collect();
        let mut acc = 0u64;
        let mut h = 0; // number of data entries in the head
        while h < data.len() && acc.saturating_add(data[h].2) <= head {
            acc += data[h].2;
            h += 1;
        }
        let mut acc = 0u64;
        let mut t = data.len(); // index of the first data entry of the tail
        while t > h && acc.saturating_add(data[t - 1].2) <= tail {
            acc += data[t - 1].2;
            t -= 1;
        }
        if t <= h {
            return None;
        }
        // With no data in the head, the entries before the first data entry (the H lines at the top) stay in it.
        let head_end = if h == 0 { data[0].0 } else { data[h - 1].0 + 1 };
        // Not even the last data entry fits the tail (a tiny budget, or one huge entry at the end, as the repair of
        // an orphan appends): the tail keeps no data, only the entries after the last one (H DURATION, EXIT_CODE).
        let tail_start = match data.get(t) {
            Some(d) => d.0,
            None => data[data.len() - 1].0 + 1,
        };
        let mut head_bytes = [0u64; 2];
        let mut omitted = [0u64; 2];
        for (k, (_, s, len)) in data.iter().enumerate() {
            if k < h {
                head_bytes[idx(*s)] += len;
            } else if k < t {
                omitted[idx(*s)] = omitted[idx(*s)].saturating_add(*len);
            }
        }
        Some(Cut {
            head_end,
            tail_start,
            head_bytes,
            omitted,
        })
    }

    /// The timing of an excerpt: the head, one marker output entry of `marker_len` bytes, the H lines from the
    /// omitted middle, then the tail.
    pub fn excerpt(&self, cut: &Cut, marker_len: u64) -> Timing {
        let mut entries: Vec<Entry> = self.entries[..cut.head_end].to_vec();
        entries.push(Entry::Data {
            stream: Stream::Out,
            delta: "0.000000".into(),
            len: marker_len,
        });
        entries.extend(
            self.entries[cut.head_end..cut.tail_start]
                .iter()
                .filter(|e| matches!(e, Entry::Other(l) if l.starts_with(b"H ")))
                .cloned(),
        );
        entries.extend_from_slice(&self.entries[cut.tail_start..]);
        Timing {
            classic: self.classic,
            entries,
            dropped_lines: 0,
        }
    }
}

/// Where an excerpt cuts: entries `[0, head_end)` and `[tail_start, ..)` are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub head_end: usize,
    pub tail_start: usize,
    /// Body bytes kept at the start of [output, input].
    pub head_bytes: [u64; 2],
    /// Body bytes left out of [output, input].
    pub omitted: [u64; 2],
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A damaged timing whose sizes add up past u64::MAX: totals saturate, the excerpt plan and the reconciliation
    /// against the data on disk neither overflow nor keep more than is there.
    #[test]
    fn sizes_near_u64_max_do_not_overflow() {
        let huge = u64::MAX;
        let text = format!("O 0.000001 {huge}\nO 0.000001 {huge}\nI 0.500000 7\nO 0.100000 5\n");
        let mut t = Timing::parse(text.as_bytes());
        assert_eq!(t.entries.len(), 4, "{:?}", t.dropped_lines);
        assert_eq!(t.totals(), [u64::MAX, 7]);
        let cut = t.plan_cut(10, 10).expect("the huge entries do not fit");
        assert_eq!(cut.head_end, 0);
        assert_eq!(cut.omitted[0], u64::MAX);
        assert!(t.reconcile([100, 7], true));
        assert_eq!(t.totals(), [100, 7]);
    }

    #[test]
    fn classic_parse_render_and_partial_line() {
        let t = Timing::parse(b"0.000942 4\n1.301526 7\n0.5 3\n0.000001 9");
        assert!(t.classic);
        assert_eq!(t.entries.len(), 2);
        assert_eq!(t.dropped_lines, 2, "bad delta + unterminated line");
        assert_eq!(t.render(), b"0.000942 4\n1.301526 7\n");
        assert_eq!(t.totals(), [11, 0]);
    }

    #[test]
    fn advanced_parse_keeps_h_and_s() {
        let src = "H 0.000000 START_TIME 2026-11-22 03:58:54+00:00\nS 0.200036 SIGWINCH ROWS=40 COLS=120\nI 0.200830 7\nO 0.000056 8\nH 0.000000 DURATION 0.8\n";
        let t = Timing::parse(src.as_bytes());
        assert!(!t.classic);
        assert_eq!(t.render(), src.as_bytes());
        assert_eq!(t.totals(), [8, 7]);
    }

    #[test]
    fn lines_play_rejects_are_dropped_and_counted() {
        // Each bad line is one `auditty play` (and scriptreplay) refuses: a delay without six fractional digits, an S
        // or H line with a bad delay or no name, trailing whitespace, CRLF, an unknown entry type, an empty line.
        let src = b"H 0.000000 START_TIME 2026-11-22 03:58:54+00:00\n\
S 0.1 SIGWINCH ROWS=40 COLS=120\n\
O 0.000010 4\n\
H 0.0000001 DURATION 1\n\
S 12345678901.000000 SIGTERM\n\
O 0.000020 5 \n\
O 0.000030 6\r\n\
S 0.000040\n\
X 0.000050 7\n\
\n\
O 00.000060 8\n\
I 0.000070 3\n\
S 0.000080 SIGWINCH ROWS=24 COLS=80\n\
H 0.000000 EXIT_CODE 0\n\
O 0.000090 9";
        let t = Timing::parse(src);
        assert!(!t.classic);
        assert_eq!(
            t.dropped_lines, 9,
            "eight malformed lines and the unterminated last one"
        );
        assert_eq!(
            t.dropped_note().as_deref(),
            Some("9 malformed timing lines were dropped")
        );
        let out = t.render();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "H 0.000000 START_TIME 2026-11-22 03:58:54+00:00\nO 0.000010 4\nO 0.000060 8\nI 0.000070 3\n\
S 0.000080 SIGWINCH ROWS=24 COLS=80\nH 0.000000 EXIT_CODE 0\n"
        );
        // What is left plays: play's reader takes every line.
        let mut r = crate::play::TimingReader::new(&out[..]);
        let mut n = 0;
        while r
            .next_entry()
            .expect("play accepts the repaired timing")
            .is_some()
        {
            n += 1;
        }
        assert_eq!(n, 6);
        let t = Timing::parse(b"0.000001 4\n1.5 2\n0.1234567 3\n1 3\n0.000002 5\n");
        assert_eq!((t.dropped_lines, t.totals()), (3, [9, 0]));
        assert_eq!(Timing::parse(b"0.000001 4\n").dropped_note(), None);
    }

    #[test]
    fn reconcile_clamps_and_extends() {
        let mut t = Timing::parse(b"0.100000 10\n0.100000 10\n0.100000 10\n");
        assert!(t.reconcile([25, 0], false));
        assert_eq!(t.render(), b"0.100000 10\n0.100000 10\n0.100000 5\n");
        let mut t = Timing::parse(b"0.100000 10\n");
        assert!(t.reconcile([14, 0], false));
        assert_eq!(t.render(), b"0.100000 10\n0.000000 4\n");
        let mut t = Timing::parse(b"0.100000 10\n");
        assert!(!t.reconcile([10, 0], false));
    }

    #[test]
    fn cut_keeps_head_and_tail() {
        let mut src = String::from("H 0.000000 START_TIME x\n");
        for i in 0..10 {
            src.push_str(&format!("O 0.{i:06} 100\n"));
        }
        src.push_str("H 0.000000 DURATION 1.0\n");
        let t = Timing::parse(src.as_bytes());
        let cut = t.plan_cut(250, 300).unwrap();
        assert_eq!(cut.head_bytes, [200, 0]);
        assert_eq!(cut.omitted, [500, 0]);
        let ex = t.excerpt(&cut, 42);
        let text = String::from_utf8(ex.render()).unwrap();
        assert_eq!(
            text,
            "H 0.000000 START_TIME x\nO 0.000000 100\nO 0.000001 100\nO 0.000000 42\nO 0.000007 100\nO 0.000008 100\nO 0.000009 100\nH 0.000000 DURATION 1.0\n"
        );
        assert!(t.plan_cut(600, 600).is_none(), "everything fits");
    }

    /// A tail budget smaller than the last data entry (a tiny mail.max_size, or one huge entry at the end): an
    /// excerpt with an empty tail, not an index past the end (which aborted flush for every queued recording).
    #[test]
    fn a_tail_that_holds_no_entry_is_empty() {
        let src = "H 0.000000 START_TIME x\nO 0.000001 100\nO 0.000002 100\nO 0.000003 4104818\nH 0.000000 DURATION 1.0\n";
        let t = Timing::parse(src.as_bytes());
        let cut = t.plan_cut(250, 300).unwrap();
        assert_eq!(cut.head_bytes, [200, 0]);
        assert_eq!(cut.omitted, [4104818, 0]);
        assert_eq!(
            String::from_utf8(t.excerpt(&cut, 42).render()).unwrap(),
            "H 0.000000 START_TIME x\nO 0.000001 100\nO 0.000002 100\nO 0.000000 42\nH 0.000000 DURATION 1.0\n"
        );
        let cut = t.plan_cut(0, 0).unwrap();
        assert_eq!((cut.head_bytes, cut.omitted), ([0, 0], [4105018, 0]));
        assert_eq!(
            String::from_utf8(t.excerpt(&cut, 42).render()).unwrap(),
            "H 0.000000 START_TIME x\nO 0.000000 42\nH 0.000000 DURATION 1.0\n"
        );
    }
}
