//! Parsing command records written by the shell hook into the session FIFO (untrusted input: validated, bounded).

/// One command as the hook reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    pub seq: u64,
    pub status: i32,
    pub pid: u32,
    pub cwd: Vec<u8>,
    pub cmd: Vec<u8>,
    pub truncated: bool,
}

/// Incremental parser over the FIFO's byte stream.
#[derive(Default)]
pub struct RecordParser {
    buf: Vec<u8>,
}

impl RecordParser {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<CommandRecord> {
        self.buf.extend_from_slice(bytes);
        self.buf.clear();
        Vec::new()
    }
}

/// One line of commands.log for a record received at `unix_time`.
pub fn log_line(rec: &CommandRecord, unix_time: f64) -> Vec<u8> {
    format!(
        "{unix_time:.6} seq={} status={} cmd={}\n",
        rec.seq,
        rec.status,
        String::from_utf8_lossy(&rec.cmd)
    )
    .into_bytes()
}
