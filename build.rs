//! Release link options: symbols stripped, and the functions a session runs (link/symbol-order.txt) laid out next to
//! each other, so the recorder processes map fewer pages of code (the kernel maps code in 64 KiB windows around each
//! page touched; scattered, 30 such windows made most of the relay's resident size).
//!
//! `bench/symbol-order` regenerates the list from a profiled session. It is passed to LLD only (the default linker of
//! Rust's x86_64 Linux toolchains since 1.90); with any other linker the build is as usual. A stale or missing list
//! costs memory, never correctness: names it does not find are ignored.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=link/symbol-order.txt");
    println!("cargo:rerun-if-env-changed=AUDITTY_KEEP_SYMBOLS");
    println!("cargo:rerun-if-env-changed=AUDITTY_NO_SYMBOL_ORDER");
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
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace('-', "_")
    );
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if std::env::var_os(linker_var).is_some()
        || flags.contains("linker")
        || flags.contains("fuse-ld")
    {
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
