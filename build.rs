//! Release link options: symbols stripped, and the functions a session runs (link/symbol-order.txt) laid out next to
//! each other, so the recorder processes map fewer pages of code (the kernel maps code in 64 KiB windows around each
//! page touched; scattered, 30 such windows made most of the relay's resident size).
//!
//! `bench/symbol-order` regenerates the list from a profiled session. It is passed to LLD only (the default linker of
//! Rust's x86_64 Linux toolchains since 1.90); with any other linker the build is as usual. A stale or missing list
//! costs memory, never correctness: names it does not find are ignored.
//!
//! Every profile: the binary carries its own copy of the unwinder (libgcc_eh.a, linked statically) instead of loading
//! libgcc_s.so.1. That library's constructor probes the CPU with a run of CPUID instructions, each of which traps to
//! the hypervisor on a virtual machine: loading it cost 0.3-0.45 ms of every login's start-up on our 2-vCPU VM
//! (docs/benchmarks.md). Rust's standard library names `gcc_s` for the unwinder on GNU/Linux; a linker script of that
//! name in a directory searched first stands in for it. Without a static libgcc_eh the build is as usual.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=link/symbol-order.txt");
    println!("cargo:rerun-if-env-changed=AUDITTY_KEEP_SYMBOLS");
    println!("cargo:rerun-if-env-changed=AUDITTY_NO_SYMBOL_ORDER");
    if let Some(dir) = static_unwinder() {
        println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
    }
    if std::env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    if std::env::var_os("AUDITTY_KEEP_SYMBOLS").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,--strip-all");
    }
    let list =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("link/symbol-order.txt");
    if list.exists() && std::env::var_os("AUDITTY_NO_SYMBOL_ORDER").is_none() && uses_rust_lld() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// True when the binary will be linked by the toolchain's own LLD: x86_64 GNU/Linux, a sysroot that ships it, and
/// no linker chosen by the environment.
fn uses_rust_lld() -> bool {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" {
        return false;
    }
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if linker_chosen(&target) || flags.contains("fuse-ld") {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
    else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join(format!("lib/rustlib/{target}/bin/gcc-ld/ld.lld"))
        .exists()
}

/// A directory holding `libgcc_s.so`, a linker script that names the toolchain's static unwinder (libgcc_eh.a), for
/// GNU/Linux targets linked by the system C compiler driver; None (link as usual) anywhere else.
fn static_unwinder() -> Option<PathBuf> {
    let target = std::env::var("TARGET").ok()?;
    if !target.ends_with("-linux-gnu") || linker_chosen(&target) {
        return None;
    }
    let out = std::process::Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let eh = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // The driver echoes the bare name when it has no such file.
    if !eh.is_absolute() || !eh.is_file() {
        return None;
    }
    let dir = PathBuf::from(std::env::var_os("OUT_DIR")?).join("static-unwinder");
    std::fs::create_dir_all(&dir).ok()?;
    let script = format!(
        "/* auditty build.rs: the static unwinder instead of libgcc_s.so.1 */\nINPUT ( {} )\n",
        eh.display()
    );
    std::fs::write(dir.join("libgcc_s.so"), script).ok()?;
    Some(dir)
}

/// The environment chose another linker for `target` (then its own defaults apply).
fn linker_chosen(target: &str) -> bool {
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace('-', "_")
    );
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    std::env::var_os(linker_var).is_some() || flags.contains("linker")
}
