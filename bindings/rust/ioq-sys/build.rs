//! Finds the ioq C library, in this order:
//!  1. IOQ_LIB_DIR: a directory holding libioq.a (linked statically) or libioq.so.
//!     IOQ_LINK=static|dylib forces one of them.
//!  2. pkg-config, run as a program (`pkg-config --libs ioq`).
//!  3. The C sources of this repository, built with CMake into OUT_DIR (static).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("../../..");
    let header = root.join("abi/include/ioq.h");
    println!("cargo:rerun-if-env-changed=IOQ_LIB_DIR");
    println!("cargo:rerun-if-env-changed=IOQ_LINK");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-changed=build.rs");
    if header.exists() {
        // Dependents read this as DEP_IOQ_INCLUDE.
        println!("cargo:include={}", root.join("abi/include").display());
    }

    if let Some(dir) = env::var_os("IOQ_LIB_DIR") {
        let dir = PathBuf::from(dir);
        let want = env::var("IOQ_LINK").unwrap_or_default();
        let have_static = dir.join("libioq.a").exists();
        let have_shared = dir.join("libioq.so").exists() || dir.join("libioq.dylib").exists();
        if !have_static && !have_shared {
            panic!(
                "IOQ_LIB_DIR={} holds neither libioq.a nor libioq.so",
                dir.display()
            );
        }
        for f in ["libioq.a", "libioq.so", "libioq.dylib"] {
            if dir.join(f).exists() {
                println!("cargo:rerun-if-changed={}", dir.join(f).display());
            }
        }
        if have_static && want != "dylib" {
            link_static(&dir);
        } else {
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=dylib=ioq");
        }
        return;
    }

    if pkg_config() {
        return;
    }

    build_with_cmake(&root);
}

/// Links libioq.a from dir, plus what the archive needs: the thread library always, and
/// liburing when the io_uring backend is inside (the archive does not contain liburing).
fn link_static(dir: &Path) {
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static=ioq");
    let archive = fs::read(dir.join("libioq.a")).unwrap_or_default();
    let uring_syms: [&[u8]; 3] = [
        b"io_uring_queue_init",
        b"io_uring_get_sqe",
        b"io_uring_submit",
    ];
    if uring_syms.iter().any(|s| contains(&archive, s)) {
        link_uring();
    }
    println!("cargo:rustc-link-lib=dylib=pthread");
}

/// liburing's static archive is preferred, so that programs do not need liburing.so.
fn link_uring() {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = run("pkg-config", &["--variable=libdir", "liburing"]) {
        dirs.push(PathBuf::from(d.trim()));
    }
    for d in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
    ] {
        dirs.push(PathBuf::from(d));
    }
    for d in &dirs {
        if d.join("liburing.a").exists() {
            println!("cargo:rustc-link-search=native={}", d.display());
            println!("cargo:rustc-link-lib=static=uring");
            return;
        }
    }
    println!("cargo:rustc-link-lib=dylib=uring");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn run(prog: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(prog).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}

fn pkg_config() -> bool {
    let libs = match run("pkg-config", &["--libs", "ioq"]) {
        Some(l) => l,
        None => return false,
    };
    for tok in libs.split_whitespace() {
        if let Some(d) = tok.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={}", d);
        } else if let Some(l) = tok.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={}", l);
        }
    }
    true
}

fn build_with_cmake(root: &Path) {
    if !root.join("CMakeLists.txt").exists() {
        panic!(
            "ioq C library not found: set IOQ_LIB_DIR, install ioq with its pkg-config file, \
             or build from the ioq source tree"
        );
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("ioq-c");
    let profile = if env::var("PROFILE").as_deref() == Ok("release") {
        "Release"
    } else {
        "RelWithDebInfo"
    };
    let status = Command::new("cmake")
        .arg("-S")
        .arg(root)
        .arg("-B")
        .arg(&out)
        .arg(format!("-DCMAKE_BUILD_TYPE={}", profile))
        .args([
            "-DIOQ_BUILD_TESTS=OFF",
            "-DIOQ_BUILD_EXAMPLES=OFF",
            "-DIOQ_BUILD_BENCH=OFF",
            "-DIOQ_BUILD_BINDINGS=OFF",
        ])
        .status()
        .expect("cannot run cmake (install cmake, or set IOQ_LIB_DIR)");
    assert!(
        status.success(),
        "cmake configure of the ioq C library failed"
    );
    let jobs = env::var("NUM_JOBS").unwrap_or_else(|_| "2".into());
    let status = Command::new("cmake")
        .arg("--build")
        .arg(&out)
        .args(["--target", "ioq_static", "--parallel", &jobs])
        .status()
        .expect("cannot run cmake --build");
    assert!(status.success(), "cmake build of the ioq C library failed");
    for entry in ["core", "abi/include", "CMakeLists.txt"] {
        println!("cargo:rerun-if-changed={}", root.join(entry).display());
    }
    let dir = find_archive(&out).expect("libioq.a not found after the CMake build");
    link_static(&dir);
}

fn find_archive(dir: &Path) -> Option<PathBuf> {
    if dir.join("libioq.a").exists() {
        return Some(dir.to_path_buf());
    }
    for e in fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(found) = find_archive(&p) {
                return Some(found);
            }
        }
    }
    None
}
