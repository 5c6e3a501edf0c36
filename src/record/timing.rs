//! Timing files: util-linux classic (`%u.%06u %u`) and advanced (`O`/`I`/`S`/`H` lines) writers.

use std::io::Write;

use crate::config::TimingFormat;

/// Formats timing lines into a buffer; deltas form one chain over O, I and S entries, in microseconds.
pub struct TimingWriter {
    format: TimingFormat,
    /// Monotonic time (µs) of the previous entry, or of the log's opening for the first one. Deltas are taken
    /// between whole microseconds, so they add up to the recorded time exactly instead of losing up to 1 µs
    /// per entry to truncation.
    last_us: u64,
}

impl TimingWriter {
    pub fn new(format: TimingFormat, opened_ns: u64) -> Self {
        TimingWriter {
            format,
            last_us: opened_ns / 1000,
        }
    }

    fn delta(&mut self, ts_ns: u64) -> (u64, u64) {
        let ts_us = ts_ns / 1000;
        let us = ts_us.saturating_sub(self.last_us);
        self.last_us = self.last_us.max(ts_us);
        (us / 1_000_000, us % 1_000_000)
    }

    /// An output chunk of `len` bytes read at `ts_ns`.
    pub fn output(&mut self, buf: &mut Vec<u8>, ts_ns: u64, len: usize) {
        let (s, us) = self.delta(ts_ns);
        match self.format {
            TimingFormat::Classic => writeln!(buf, "{s}.{us:06} {len}"),
            TimingFormat::Advanced => writeln!(buf, "O {s}.{us:06} {len}"),
        }
        .expect("Vec write");
    }

    /// An input chunk (advanced format only; a classic log holds output alone).
    pub fn input(&mut self, buf: &mut Vec<u8>, ts_ns: u64, len: usize) {
        if self.format == TimingFormat::Advanced {
            let (s, us) = self.delta(ts_ns);
            writeln!(buf, "I {s}.{us:06} {len}").expect("Vec write");
        }
    }

    /// A window resize (advanced only).
    pub fn resize(&mut self, buf: &mut Vec<u8>, ts_ns: u64, rows: u16, cols: u16) {
        if self.format == TimingFormat::Advanced {
            let (s, us) = self.delta(ts_ns);
            writeln!(buf, "S {s}.{us:06} SIGWINCH ROWS={rows} COLS={cols}").expect("Vec write");
        }
    }

    /// A signal that ended the session, e.g. `SIGTERM` (advanced only).
    pub fn signal(&mut self, buf: &mut Vec<u8>, ts_ns: u64, name: &str) {
        if self.format == TimingFormat::Advanced {
            let (s, us) = self.delta(ts_ns);
            writeln!(buf, "S {s}.{us:06} {name}").expect("Vec write");
        }
    }

    /// An information entry (advanced only): `H 0.000000 NAME value`, the value made one line without control
    /// characters (`typescript::one_line`).
    pub fn info(&mut self, buf: &mut Vec<u8>, name: &str, value: &str) {
        if self.format == TimingFormat::Advanced {
            writeln!(
                buf,
                "H 0.000000 {name} {}",
                crate::record::typescript::one_line(value)
            )
            .expect("Vec write");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_lines() {
        let mut w = TimingWriter::new(TimingFormat::Classic, 1_000_000_000);
        let mut b = Vec::new();
        w.output(&mut b, 1_000_942_000, 4);
        w.output(&mut b, 2_302_468_999, 7);
        w.resize(&mut b, 2_400_000_000, 40, 120);
        assert_eq!(String::from_utf8(b).unwrap(), "0.000942 4\n1.301526 7\n");
    }

    #[test]
    fn deltas_add_up_to_the_elapsed_time() {
        let mut w = TimingWriter::new(TimingFormat::Classic, 999);
        let mut b = Vec::new();
        // 1000 chunks 1.999 µs apart: 1999 µs in all (truncating each delta would give 1000 µs).
        for i in 1..=1000u64 {
            w.output(&mut b, 999 + i * 1999, 1);
        }
        let total: u64 = String::from_utf8(b)
            .unwrap()
            .lines()
            .map(|l| l.split(['.', ' ']).nth(1).unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, 1999, "the last chunk is at 1_999_999 ns");
    }

    #[test]
    fn advanced_chain() {
        let mut w = TimingWriter::new(TimingFormat::Advanced, 0);
        let mut b = Vec::new();
        w.info(&mut b, "START_TIME", "2026-11-22 03:58:54+00:00");
        w.resize(&mut b, 200_036_000, 40, 120);
        w.input(&mut b, 400_866_000, 7);
        w.output(&mut b, 400_922_000, 8);
        w.signal(&mut b, 500_000_000, "SIGTERM");
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "H 0.000000 START_TIME 2026-11-22 03:58:54+00:00\nS 0.200036 SIGWINCH ROWS=40 COLS=120\nI 0.200830 7\nO 0.000056 8\nS 0.099078 SIGTERM\n"
        );
    }
}
