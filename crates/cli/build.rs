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

use std::{env, fs, path::PathBuf, process::Command};

const FLAG: &str = "-Wl,-z,pack-relative-relocs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let target = env::var("TARGET").unwrap_or_default();
    let host = env::var("HOST").unwrap_or_default();
    if target == host && target.ends_with("-linux-gnu") && relr_works() {
        println!("cargo:rustc-link-arg-bins={FLAG}");
    }
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
