//! `auditty play`: replay one stream of a recording on stdout, paced by its timing file.

use std::io::{ErrorKind, Write};

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::{Cli, Stream};
use crate::cmd::Exit;
use crate::play::{self, ClockPacer, CrToNl, Options, PlayError, TimingReader, TtyGuard};
use crate::privilege::Privilege;
use crate::spool::layout::Spool;

pub fn run(
    cli: &Cli,
    mut privilege: Privilege,
    speed: f64,
    max_delay: Option<f64>,
    stream: Stream,
    rec: &str,
) -> Result<Exit> {
    privilege.drop_unless_trusted()?;
    let opts = Options {
        stream,
        speed,
        max_delay,
    };
    opts.check()?;
    let found = play::locate(rec, || {
        let cfg = privilege.load_config(cli)?;
        Ok(Spool::new(&cfg.spool.dir))
    })?;
    let timing_name = found.timing.display().to_string();
    let data_path = match stream {
        Stream::Out => found.typescript.clone().with_context(|| {
            format!("no typescript next to {timing_name}")
        })?,
        Stream::In => found.input.clone().with_context(|| {
            format!(
                "this recording has no input stream (it was made without record.input): no input or input.gz next to {timing_name}"
            )
        })?,
    };
    let data_name = data_path.display().to_string();
    let timing_err = |e: play::TimingError| anyhow!("{timing_name}: line {}: {}", e.line, e.msg);

    // Pass 1: the whole timing file is valid and the chosen stream fits in its data file.
    let mut data = play::open_maybe_gz(&data_path)?;
    play::skip_header(&mut *data)
        .with_context(|| format!("cannot read {data_name}"))?
        .with_context(|| format!("{data_name}: no header line (is it a typescript?)"))?;
    let available =
        play::recorded_len(&mut *data).with_context(|| format!("cannot read {data_name}"))?;
    let mut timing = TimingReader::new(play::open_maybe_gz(&found.timing)?);
    let scan = play::scan(&mut timing, stream, available, &data_name).map_err(timing_err)?;
    if scan.format == Some(play::Format::Classic) && stream == Stream::In {
        bail!("{timing_name} is a classic timing file: it holds output only");
    }
    if scan.bytes < available {
        // Data the timing does not cover (e.g. written while the spool's disk was full) cannot be timed: say so
        // rather than end quietly early.
        eprintln!(
            "auditty: warning: {timing_name} times {} of the {available} bytes recorded in {data_name}; the last {} \
             are not played (the recording's mail or meta.json may say why)",
            scan.bytes,
            available - scan.bytes
        );
    }

    // Pass 2: play.
    let mut timing = TimingReader::new(play::open_maybe_gz(&found.timing)?);
    let mut data = play::open_maybe_gz(&data_path)?;
    play::skip_header(&mut *data).with_context(|| format!("cannot read {data_name}"))?;
    let tty = TtyGuard::enter(stream);
    let keystrokes_on_tty = tty.is_some() && stream == Stream::In;
    let mut pacer = ClockPacer::new(tty)?;
    let stdout = std::io::stdout();
    let mut out: Box<dyn Write> = if keystrokes_on_tty {
        Box::new(CrToNl(stdout.lock()))
    } else {
        Box::new(stdout.lock())
    };
    let r = play::replay(&mut timing, &mut *data, &opts, &mut out, &mut pacer);
    let _ = out.flush();
    drop(out);
    match r {
        Ok(_) => Ok(Exit::SUCCESS),
        Err(PlayError::Stopped(sig)) => pacer.die_of(sig),
        Err(PlayError::Output(e)) if e.kind() == ErrorKind::BrokenPipe => Ok(Exit::SUCCESS),
        Err(PlayError::Output(e)) => Err(anyhow!("cannot write to stdout: {e}")),
        Err(PlayError::Timing(e)) => Err(timing_err(e)),
        Err(PlayError::DataShort { line, missing }) => Err(anyhow!(
            "{timing_name}: line {line}: {data_name} ended {missing} bytes early (did it change while playing?)"
        )),
        Err(PlayError::DataRead(e)) => Err(anyhow!("cannot read {data_name}: {e}")),
    }
}
