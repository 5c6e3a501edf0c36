//! The setgid `auditty` privilege: who keeps it, when it is dropped, and what a privileged run refuses.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use nix::unistd::{Gid, getgroups, getresgid, getresuid, setresgid};

use crate::cli::Cli;
use crate::config::{self, Config, Source};

#[derive(Debug, Clone, Copy)]
pub struct Privilege {
    /// The group gained from the setgid bit (effective gid differing from the real one), if any.
    pub elevated: Option<Gid>,
    /// The real user may use the spool anyway (root, or a member of the privileged group).
    pub trusted: bool,
    pub real_gid: Gid,
}

impl Privilege {
    pub fn at_start() -> Privilege {
        let gids = getresgid().expect("getresgid");
        let uids = getresuid().expect("getresuid");
        let elevated = (gids.effective != gids.real).then_some(gids.effective);
        let trusted = uids.real.is_root()
            || elevated.is_some_and(|g| getgroups().map(|gs| gs.contains(&g)).unwrap_or(false));
        Privilege {
            elevated,
            trusted,
            real_gid: gids.real,
        }
    }

    /// Running with a privilege the real user does not otherwise have: input from them is not trusted.
    pub fn untrusted_elevated(&self) -> bool {
        self.elevated.is_some() && !self.trusted
    }

    /// Give up the setgid group for good: real, effective and saved gid all become the real gid.
    pub fn drop_group(&mut self) -> Result<()> {
        if self.elevated.is_some() {
            setresgid(self.real_gid, self.real_gid, self.real_gid)
                .context("cannot drop the auditty group (setresgid)")?;
            self.elevated = None;
        }
        Ok(())
    }

    /// Drop the privilege now unless the real user is trusted (every subcommand but `session`).
    pub fn drop_unless_trusted(&mut self) -> Result<()> {
        if self.untrusted_elevated() {
            self.drop_group()
        } else {
            Ok(())
        }
    }

    /// Load the configuration the way this privilege allows: an untrusted privileged run takes only the
    /// default file, and only if it is root-owned and not writable by group or others.
    pub fn load_config(&self, cli: &Cli) -> Result<Config> {
        if self.untrusted_elevated() {
            if cli.global.config.is_some() || !cli.global.overrides.is_empty() {
                bail!("--config and -o are refused while auditty runs with its setgid privilege");
            }
            check_config_owner(Path::new(config::DEFAULT_PATH))?;
        }
        Ok(Config::load(&Source {
            file: cli.global.config.as_deref(),
            overrides: &cli.global.overrides,
        })?)
    }
}

/// A privileged run only trusts a config file that root owns and nobody else can write.
fn check_config_owner(path: &Path) -> Result<()> {
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
    };
    if md.uid() != 0 {
        bail!(
            "{} must be owned by root (owner uid is {})",
            path.display(),
            md.uid()
        );
    }
    if md.mode() & 0o022 != 0 {
        bail!(
            "{} must not be writable by group or others (mode {:o})",
            path.display(),
            md.mode() & 0o7777
        );
    }
    Ok(())
}
