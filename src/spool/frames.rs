//! The relay → spool-writer pipe protocol: a 16-byte header (kind, length, monotonic ns) and a payload.

pub const HEADER_LEN: usize = 16;
/// Largest payload a decoder accepts; anything bigger means a corrupt stream.
pub const MAX_PAYLOAD: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Payload: "pty\0shell_pid" once the shell runs on its PTY.
    Started = 1,
    Output = 2,
    Input = 3,
    /// Payload: u32 byte count of keystrokes withheld because echo was off.
    InputWithheld = 4,
    /// Payload: rows u16, cols u16.
    Resize = 5,
    /// Payload: signal name that ended the session (logged as an S entry).
    Signal = 6,
    /// Write everything buffered to disk now (SIGUSR1).
    Flush = 7,
    /// Payload: exit status i32, end reason u8, signal name.
    End = 8,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Started,
            2 => Kind::Output,
            3 => Kind::Input,
            4 => Kind::InputWithheld,
            5 => Kind::Resize,
            6 => Kind::Signal,
            7 => Kind::Flush,
            8 => Kind::End,
            _ => return None,
        })
    }
}

/// Append one frame to `buf`.
pub fn encode(buf: &mut Vec<u8>, kind: Kind, ts_ns: u64, payload: &[u8]) {
    buf.push(kind as u8);
    buf.extend_from_slice(&[0, 0, 0]);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&ts_ns.to_le_bytes());
    buf.extend_from_slice(payload);
}

pub fn end_payload(exit_status: i32, reason: u8, signal: &str) -> Vec<u8> {
    let mut p = exit_status.to_le_bytes().to_vec();
    p.push(reason);
    p.extend_from_slice(signal.as_bytes());
    p
}

#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: Kind,
    pub ts_ns: u64,
    pub payload: &'a [u8],
}

/// Parse the next complete frame at the start of `buf`: Ok(Some((frame, consumed))), Ok(None) when more bytes are
/// needed, Err on a corrupt stream.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, String> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let kind = Kind::from_u8(buf[0]).ok_or_else(|| format!("unknown frame kind {}", buf[0]))?;
    let len = u32::from_le_bytes(buf[4..8].try_into().unwrap()) as usize;
    if len > MAX_PAYLOAD {
        return Err(format!("frame of {len} bytes is too large"));
    }
    let ts_ns = u64::from_le_bytes(buf[8..16].try_into().unwrap());
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    Ok(Some((
        Frame {
            kind,
            ts_ns,
            payload: &buf[HEADER_LEN..HEADER_LEN + len],
        },
        HEADER_LEN + len,
    )))
}

/// What can be saved of an incomplete frame at the end of the stream (the relay died in the middle of writing
/// it): the bytes that did arrive of an Output or Input payload. Anything else (or a bare header part) is None.
pub fn decode_truncated(buf: &[u8]) -> Option<Frame<'_>> {
    if buf.len() <= HEADER_LEN {
        return None;
    }
    let kind = Kind::from_u8(buf[0]).filter(|k| matches!(k, Kind::Output | Kind::Input))?;
    let len = u32::from_le_bytes(buf[4..8].try_into().unwrap()) as usize;
    if len > MAX_PAYLOAD || buf.len() >= HEADER_LEN + len {
        return None;
    }
    Some(Frame {
        kind,
        ts_ns: u64::from_le_bytes(buf[8..16].try_into().unwrap()),
        payload: &buf[HEADER_LEN..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_partial() {
        let mut b = Vec::new();
        encode(&mut b, Kind::Resize, 42, &[1, 0, 2, 0]);
        encode(&mut b, Kind::Output, 43, b"hello");
        let (f, n) = decode(&b).unwrap().unwrap();
        assert_eq!(
            (f.kind, f.ts_ns, f.payload),
            (Kind::Resize, 42, &[1u8, 0, 2, 0][..])
        );
        let (f, m) = decode(&b[n..]).unwrap().unwrap();
        assert_eq!((f.kind, f.payload), (Kind::Output, &b"hello"[..]));
        assert_eq!(n + m, b.len());
        assert_eq!(
            decode(&b[..n + 3]).unwrap(),
            Some((
                Frame {
                    kind: Kind::Resize,
                    ts_ns: 42,
                    payload: &[1, 0, 2, 0]
                },
                n
            ))
        );
        assert!(decode(&b[n..n + 20]).unwrap().is_none());
        assert!(decode(&[99u8; 16]).is_err());
    }

    #[test]
    fn truncated_output_is_salvaged() {
        let mut b = Vec::new();
        encode(&mut b, Kind::Output, 7, b"hello world");
        let f = decode_truncated(&b[..HEADER_LEN + 5]).unwrap();
        assert_eq!(
            (f.kind, f.ts_ns, f.payload),
            (Kind::Output, 7, &b"hello"[..])
        );
        assert!(
            decode_truncated(&b[..HEADER_LEN]).is_none(),
            "no payload yet"
        );
        assert!(
            decode_truncated(&b).is_none(),
            "complete frames are decode()'s"
        );
        let mut r = Vec::new();
        encode(&mut r, Kind::Resize, 1, &[1, 0, 2, 0]);
        assert!(decode_truncated(&r[..HEADER_LEN + 2]).is_none());
    }
}
