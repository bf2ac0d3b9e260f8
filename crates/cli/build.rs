//! Links `sbx` with packed relative relocations (`DT_RELR`) where the
//! toolchain and C library support them. A position-independent binary of
//! this size carries about a megabyte of `.rela.dyn` that the loader reads
//! at every start and keeps resident; packed, it is a few kilobytes. The
//! binary stays position-independent (ASLR is kept).
//!
//! Support is probed, not assumed: a tiny program with one relative
//! relocation is linked with the flag and run. An older linker refuses the
//! flag, an older glibc (before 2.36) refuses to load the result; either
//! way `sbx` is linked as before.
//!
//! A release `sbx` also has the functions it runs to start and to answer
//! typical requests placed side by side (`link-order.txt`, made by
//! `bench/link-order.sh`): the kernel maps code 64 KiB around each first
//! touch, so start-up's ~2 MB scattered over the 30 MB text kept ~12 MB
//! resident. Only with the toolchain's own linker (lld, the default on
//! x86_64 Linux since Rust 1.90), which reads the list; `SBX_NO_LINK_ORDER`
//! turns it off.

use std::{env, fs, path::PathBuf, process::Command};

const FLAG: &str = "-Wl,-z,pack-relative-relocs";

/// The functions to place together, one symbol a line.
const LINK_ORDER: &str = "link-order.txt";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={LINK_ORDER}");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    println!("cargo:rerun-if-env-changed=SBX_NO_LINK_ORDER");
    let target = env::var("TARGET").unwrap_or_default();
    let host = env::var("HOST").unwrap_or_default();
    if target == host && target.ends_with("-linux-gnu") && relr_works() {
        println!("cargo:rustc-link-arg-bins={FLAG}");
    }
    let own_lld = env::var_os("RUSTC_LINKER").is_none() && links_with_lld();
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    if target == "x86_64-unknown-linux-gnu"
        && own_lld
        && release
        && env::var_os("SBX_NO_LINK_ORDER").is_none()
        && let Some(dir) = env::var_os("CARGO_MANIFEST_DIR")
    {
        let order = PathBuf::from(dir).join(LINK_ORDER);
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        // Symbols the list names that this build no longer has are skipped.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether rustc links with its own lld by default here: Rust 1.90 and
/// later on x86_64 Linux (older ones use the system linker, which may not
/// read an ordering file).
fn links_with_lld() -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(output) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    // `rustc 1.95.0 (…)`
    let version = String::from_utf8_lossy(&output.stdout);
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|minor| minor >= 90)
}

fn relr_works() -> bool {
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    let source = out.join("relr_probe.c");
    let program = out.join("relr_probe");
    // `pointer` needs a relative relocation in a position-independent binary.
    let probe = "static int value;\nint *pointer = &value;\nint main(void) { return *pointer; }\n";
    if fs::write(&source, probe).is_err() {
        return false;
    }
    let linker = env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".to_owned());
    let linked = Command::new(linker)
        .args(["-fPIE", "-pie", FLAG, "-o"])
        .arg(&program)
        .arg(&source)
        .output()
        .is_ok_and(|output| output.status.success());
    linked && Command::new(&program).status().is_ok_and(|s| s.success())
}
