//! gzip (flate2 with the zlib-rs backend) and SHA-256 of a recording's files, in one streaming pass.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use crate::record::meta::FileSum;
use crate::spool::layout;

const CHUNK: usize = 128 << 10;

/// A writer that hashes and counts what passes through it.
pub struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hash: Sha256::new(),
            len: 0,
        }
    }

    pub fn finish(self) -> (W, FileSum) {
        let sum = FileSum {
            size: self.len,
            sha256: hex(&self.hash.finalize()),
        };
        (self.inner, sum)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// SHA-256 and size of a byte slice.
pub fn sum_bytes(data: &[u8]) -> FileSum {
    FileSum {
        size: data.len() as u64,
        sha256: hex(&Sha256::digest(data)),
    }
}

/// SHA-256 and size of everything a reader yields.
pub fn sum_reader(mut r: impl Read) -> io::Result<FileSum> {
    let mut hw = HashWriter::new(io::sink());
    io::copy(&mut r, &mut hw)?;
    Ok(hw.finish().1)
}

/// SHA-256 and size of a file.
pub fn sum_file(path: &Path) -> Result<FileSum> {
    let f = layout::open_no_follow(path)?;
    sum_reader(f).with_context(|| format!("cannot read {}", path.display()))
}

fn level(level: u32) -> Compression {
    Compression::new(level.min(9))
}

/// Compress `src` into `dir/<gz_name>` (written to a temporary file, fsynced, then renamed into place).
/// Returns the sums of the uncompressed and of the compressed file.
pub fn gzip_file(src: &Path, dir: &Path, gz_name: &str, lvl: u32) -> Result<(FileSum, FileSum)> {
    let mut input = layout::open_no_follow(src)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{gz_name}."))
        .permissions(std::fs::Permissions::from_mode(0o640))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let inner_name = src
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("data")
        .to_string();
    let out = HashWriter::new(BufWriter::with_capacity(CHUNK, tmp.as_file()));
    let mut enc = GzBuilder::new()
        .filename(inner_name.as_bytes())
        .write(out, level(lvl));
    let mut raw = HashWriter::new(io::sink());
    let mut buf = vec![0u8; CHUNK];
    let target = dir.join(gz_name);
    let werr =
        |e: io::Error| anyhow::Error::new(e).context(format!("cannot write {}", target.display()));
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", src.display())),
        };
        raw.write_all(&buf[..n]).expect("sink");
        enc.write_all(&buf[..n]).map_err(werr)?;
    }
    let out = enc.finish().map_err(werr)?;
    let (mut bw, gz_sum) = out.finish();
    bw.flush().map_err(werr)?;
    drop(bw);
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(&target).map_err(|e| werr(e.error))?;
    Ok((raw.finish().1, gz_sum))
}

/// gzip a byte slice in memory.
pub fn gzip_bytes(data: &[u8], name: &str, lvl: u32) -> Vec<u8> {
    let mut enc = GzBuilder::new()
        .filename(name.as_bytes())
        .write(Vec::with_capacity(data.len() / 4 + 64), level(lvl));
    enc.write_all(data).expect("Vec write");
    enc.finish().expect("Vec write")
}

/// fsync a directory, so renames and new entries in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;

    #[test]
    fn gzip_file_round_trips_and_sums_match() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("typescript");
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("line {i} \x1b[1mbold\x1b[0m\r\n").into_bytes())
            .collect();
        std::fs::write(&src, &data).unwrap();
        let (raw, gz) = gzip_file(&src, d.path(), "typescript.gz", 6).unwrap();
        assert_eq!(raw, sum_bytes(&data));
        let z = std::fs::read(d.path().join("typescript.gz")).unwrap();
        assert_eq!(gz, sum_bytes(&z));
        assert!(z.len() < data.len() / 5, "text compresses: {}", z.len());
        let mut back = Vec::new();
        GzDecoder::new(&z[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(
            sum_bytes(b"abc").sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn gzip_bytes_round_trips() {
        let z = gzip_bytes(b"hello", "x", 9);
        let mut back = Vec::new();
        GzDecoder::new(&z[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, b"hello");
    }
}
