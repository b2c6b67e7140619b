//! The committed C header is what cbindgen generates from `src/ffi.rs`, and
//! every released minor keeps a golden copy.
//!
//! After changing `src/ffi.rs` or `cbindgen.toml`, regenerate with
//! `MESHPAY_BLESS=1 cargo test -p meshpay-abi --test header` and review the
//! diff: fields may only be appended, and a new minor needs a new golden file.

use std::path::{Path, PathBuf};

fn generate() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/ffi.rs"))
        .generate()
        .expect("cbindgen failed on src/ffi.rs");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}

fn include(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include").join(name)
}

fn golden_name(minor: u16) -> String {
    format!("meshpay_plugin_v{}_{}.h", meshpay_abi::MP_ABI_MAJOR, minor)
}

#[test]
fn committed_header_is_the_generated_one() {
    let generated = generate();
    let path = include("meshpay_plugin.h");
    if std::env::var_os("MESHPAY_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        let golden = include(&golden_name(meshpay_abi::MP_ABI_MINOR));
        if !golden.exists() {
            std::fs::write(&golden, &generated).unwrap();
        }
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let fresh = std::env::temp_dir().join("meshpay_plugin.generated.h");
        std::fs::write(&fresh, &generated).unwrap();
        panic!(
            "{} is out of date with src/ffi.rs (fresh copy: {}).\n\
             Regenerate: MESHPAY_BLESS=1 cargo test -p meshpay-abi --test header",
            path.display(),
            fresh.display()
        );
    }
}

#[test]
fn every_released_minor_has_a_golden_header_and_the_current_one_matches() {
    if std::env::var_os("MESHPAY_BLESS").is_some() {
        return; // the other test writes the files
    }
    for minor in 0..=meshpay_abi::MP_ABI_MINOR {
        let golden = include(&golden_name(minor));
        assert!(golden.exists(), "missing golden header {}", golden.display());
    }
    // The golden copy of the current minor is frozen at release: the header
    // may only change together with a minor bump.
    let current = std::fs::read_to_string(include(&golden_name(meshpay_abi::MP_ABI_MINOR))).unwrap();
    assert_eq!(
        current,
        generate(),
        "the ABI changed without a minor bump: raise MP_ABI_MINOR and bless a new golden header"
    );
}
