//! `auditty verify RECORDING`: check a recording's files against the SHA-256 sums in its meta.json.

use std::io::BufReader;
use std::path::PathBuf;

use anyhow::{Result, bail};
use flate2::read::GzDecoder;

use crate::cli::Cli;
use crate::cmd::Exit;
use crate::deliver::compress;
use crate::privilege::Privilege;
use crate::record::meta::Meta;
use crate::spool::layout::{self, Spool};

pub fn run(cli: &Cli, mut privilege: Privilege, rec: &str) -> Result<Exit> {
    privilege.drop_unless_trusted()?;
    let cfg = privilege.load_config(cli)?;
    let spool = Spool::new(&cfg.spool.dir);
    let path = PathBuf::from(rec);
    let dir: PathBuf = if path.is_dir() {
        path
    } else if path.is_file() {
        // One of the recording's files (its typescript, as `play` takes it): the recording is its directory.
        match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        }
    } else if layout::valid_id(rec) && !rec.contains('/') {
        // An id or a unique prefix of one, as for `play`; "not allowed to look" is told apart from "no such".
        spool.resolve(rec).map_err(super::list::access_hint)?
    } else {
        bail!("{rec}: no such recording directory, file or recording id");
    };
    let meta = Meta::read(&dir.join(layout::META)).map_err(super::list::access_hint)?;
    if meta.files.is_empty() {
        bail!(
            "{}: no sums recorded yet (the recording is still being written, or was never queued)",
            dir.display()
        );
    }
    let mut bad = 0;
    let mut checked = 0;
    for (name, want) in &meta.files {
        if !layout::is_data_file_name(name) {
            println!("UNKNOWN  {name:?} is not a recording's file name; not read");
            bad += 1;
            continue;
        }
        let path = dir.join(name);
        let got = if path.symlink_metadata().is_ok() {
            compress::sum_file(&path)
        } else if dir.join(format!("{name}.gz")).symlink_metadata().is_ok() {
            // The uncompressed file is checked through its .gz.
            let gz = dir.join(format!("{name}.gz"));
            layout::open_no_follow(&gz)
                .and_then(|f| Ok(compress::sum_reader(GzDecoder::new(BufReader::new(f)))?))
                .map_err(|e| e.context(format!("cannot decompress {}", gz.display())))
        } else {
            println!("MISSING  {name}");
            bad += 1;
            continue;
        };
        checked += 1;
        match got {
            Ok(s) if s == *want => println!(
                "OK       {name:<16} {:>12} bytes  sha256 {}",
                s.size, s.sha256
            ),
            Ok(s) => {
                bad += 1;
                println!(
                    "MISMATCH {name:<16} expected {} bytes sha256 {}, found {} bytes sha256 {}",
                    want.size, want.sha256, s.size, s.sha256
                );
            }
            Err(e) => {
                bad += 1;
                println!("ERROR    {name:<16} {e:#}");
            }
        }
    }
    if bad > 0 {
        eprintln!("auditty verify: {bad} problem(s) in {}", dir.display());
        return Ok(Exit::from(1));
    }
    println!("{}: all {checked} files match", meta.id);
    Ok(Exit::SUCCESS)
}
