//! Finds the ioq C library, in this order:
//!  1. pkg-config, run as a program (`pkg-config --libs ioq`): an installed ioq.
//!  2. IOQ_LIB_DIR: a directory holding libioq.a (linked statically) or libioq.so.
//!     IOQ_LINK=static|dylib forces one of them.
//!  3. The bundled C sources, compiled with the `cc` crate and linked statically: `csrc/`
//!     of the packaged crate, or the ioq source tree around a checkout. On Linux the
//!     io_uring backend is built in when liburing's static archive is found (linked
//!     statically, as the CMake build does); IOQ_WITH_URING=0 leaves it out.
//!
//! The feature `bundled` skips 1 and 2 and always builds the bundled sources.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=IOQ_LIB_DIR");
    println!("cargo:rerun-if-env-changed=IOQ_LINK");
    println!("cargo:rerun-if-env-changed=IOQ_WITH_URING");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-changed=build.rs");

    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = source_root(&manifest);
    if let Some(root) = &root {
        // Dependents read this as DEP_IOQ_INCLUDE.
        println!("cargo:include={}", root.join("abi/include").display());
    }

    if env::var_os("CARGO_FEATURE_BUNDLED").is_none() {
        if pkg_config() {
            return;
        }
        if let Some(dir) = env::var_os("IOQ_LIB_DIR") {
            link_lib_dir(&PathBuf::from(dir));
            return;
        }
    }
    match root {
        Some(root) => build_bundled(&root),
        None => panic!(
            "ioq C library not found: install ioq with its pkg-config file, set IOQ_LIB_DIR, \
             or build from a packaged ioq-sys (csrc/) or the ioq source tree"
        ),
    }
}

/// csrc/ of the packaged crate, else the source tree of a checkout (bindings/rust/ioq-sys).
fn source_root(manifest: &Path) -> Option<PathBuf> {
    [manifest.join("csrc"), manifest.join("../../..")]
        .into_iter()
        .find(|r| r.join("abi/include/ioq.h").exists() && r.join("core").is_dir())
}

fn link_lib_dir(dir: &Path) {
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
        link_static(dir);
    } else {
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=dylib=ioq");
    }
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
        match find_liburing(None) {
            Some(a) => link_liburing_archive(&a),
            None => println!("cargo:rustc-link-lib=dylib=uring"),
        }
    }
    println!("cargo:rustc-link-lib=dylib=pthread");
}

/// liburing.a (never liburing.so: programs must not need it), as the C compiler finds it,
/// else in the usual library directories; only when liburing.h is there too.
fn find_liburing(compiler: Option<&Path>) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(cc) = compiler {
        if let Some(p) = run(cc.to_str()?, &["-print-file-name=liburing.a"]) {
            let p = PathBuf::from(p.trim());
            if p.is_absolute() {
                candidates.push(p);
            }
        }
    }
    if let Some(d) = run("pkg-config", &["--variable=libdir", "liburing"]) {
        candidates.push(PathBuf::from(d.trim()).join("liburing.a"));
    }
    for d in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
    ] {
        candidates.push(Path::new(d).join("liburing.a"));
    }
    let header = ["/usr/include/liburing.h", "/usr/local/include/liburing.h"]
        .iter()
        .any(|h| Path::new(h).exists());
    if !header {
        return None;
    }
    candidates.into_iter().find(|p| p.exists())
}

fn link_liburing_archive(archive: &Path) {
    let dir = archive.parent().unwrap();
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static=uring");
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

/// Platform names of core/backend/sources.txt.
fn backend_platform(os: &str) -> &str {
    match os {
        "linux" | "android" => "linux",
        "macos" | "ios" => "darwin",
        "freebsd" | "openbsd" | "netbsd" | "dragonfly" => "bsd",
        other => other,
    }
}

/// The backend files of core/backend/sources.txt for this platform and these options.
fn backend_sources(root: &Path, platform: &str, options: &[&str]) -> Vec<PathBuf> {
    let list = root.join("core/backend/sources.txt");
    let text = fs::read_to_string(&list)
        .unwrap_or_else(|e| panic!("cannot read {}: {}", list.display(), e));
    let mut files = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let file = match fields.next() {
            Some(f) => f,
            None => continue,
        };
        let (mut on, mut wanted) = (false, true);
        for f in fields {
            match f.strip_prefix('+') {
                Some(opt) => wanted &= options.contains(&opt),
                None => on |= f == platform,
            }
        }
        let path = root.join("core/backend").join(file);
        if on && wanted && path.exists() {
            files.push(path);
        }
    }
    files
}

fn build_bundled(root: &Path) {
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let platform = backend_platform(&os);
    let mut build = cc::Build::new();
    let compiler = build.get_compiler();
    let msvc = compiler.is_like_msvc();

    let uring = if platform == "linux"
        && env::var("IOQ_WITH_URING").as_deref() != Ok("0")
        && root.join("core/backend/uring.c").exists()
    {
        find_liburing(Some(compiler.path()))
    } else {
        None
    };
    let options: &[&str] = if uring.is_some() { &["uring"] } else { &[] };

    let mut sources: Vec<PathBuf> = fs::read_dir(root.join("core"))
        .expect("core/ of the bundled sources")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().map_or(false, |x| x == "c"))
        .collect();
    sources.sort();
    sources.extend(backend_sources(root, platform, options));

    build
        .files(&sources)
        .include(root.join("abi/include"))
        .include(root.join("core"))
        .define("IOQ_BUILDING", None)
        .define("IOQ_STATIC", None)
        .warnings(false);
    if !msvc {
        build.flag("-std=c11").flag("-fvisibility=hidden").flag("-pthread");
    }
    if platform == "linux" {
        build.define("_GNU_SOURCE", None);
    }
    if uring.is_some() {
        build.define("IOQ_HAVE_URING", "1");
    }
    build.compile("ioq");

    if let Some(archive) = &uring {
        link_liburing_archive(archive);
    }
    match platform {
        "windows" => {
            println!("cargo:rustc-link-lib=dylib=ws2_32");
            println!("cargo:rustc-link-lib=dylib=mswsock");
        }
        _ => println!("cargo:rustc-link-lib=dylib=pthread"),
    }
    println!("cargo:rerun-if-changed={}", root.join("core").display());
    println!("cargo:rerun-if-changed={}", root.join("abi/include").display());
}
