//! C and Rust agree on the size, alignment and every field offset of every
//! ABI struct: a C program built from the committed header prints its view,
//! and this test compares it with `size_of`/`offset_of!` on the Rust types.
//!
//! The list of structs and fields is read from the header, so a field the
//! Rust list below lacks fails the test instead of going unchecked.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use meshpay_abi::ffi::*;

macro_rules! rust_layouts {
    ($($t:ident { $($f:ident),* $(,)? })*) => {{
        let mut lines = Vec::new();
        $(
            lines.push(format!(
                "{} size {} align {}",
                stringify!($t),
                core::mem::size_of::<$t>(),
                core::mem::align_of::<$t>()
            ));
            $(lines.push(format!(
                "{}.{} offset {}",
                stringify!($t),
                stringify!($f),
                core::mem::offset_of!($t, $f)
            ));)*
        )*
        lines
    }};
}

fn rust_side() -> Vec<String> {
    rust_layouts! {
        MpVersion { major, minor }
        MpStr { ptr, len }
        MpBytes { ptr, len }
        MpPluginEntry { struct_size, abi, kinds, id, name, version, vendor, description, get_interface }
        MpSignedMessage { public_key, message, signature }
        MpOutBundle { struct_size, priority, destination, source_service, payload, lifetime_ms }
        MpBundleInfo {
            struct_size, priority, id, source, destination, created_ms, lifetime_ms, age_ms,
            payload_len, hop_count, copies, payload
        }
        MpPeerInfo { struct_size, link_metric, node, signal_dbm, reserved }
        MpLinkEvent { struct_size, kind, peer, metric, signal_dbm, mtu, reserved }
        MpBytesSink { struct_size, ctx, write }
        MpForwardSink { struct_size, ctx, forward }
        MpKvVisitor { struct_size, ctx, visit }
        MpHost {
            struct_size, abi, ctx, log, now_ms, set_timer, cancel_timer, node_key, node_endpoint,
            sign, verify, verify_batch, emit_bundle, watch_fd, unwatch_fd, get_extension
        }
        MpTransportHost { struct_size, ctx, deliver, link_event }
        MpTransportV1 { struct_size, flags, create, destroy, start, stop, send, on_fd, on_timer }
        MpRoutingHost { struct_size, ctx, send_control }
        MpRoutingV1 {
            struct_size, flags, create, destroy, on_contact, on_control, initial_copies, decide,
            on_timer, on_fd
        }
        MpConsensusHost { struct_size, ctx, subscribe, kv_open, kv_get, kv_put, kv_delete, kv_scan }
        MpConsensusV1 {
            struct_size, flags, create, destroy, on_bundle, on_control, on_timer, on_fd, on_bundles,
            prepare_bundles
        }
    }
}

/// `(struct, [fields])` for every `typedef struct X { ... } X;` in the header.
fn header_structs(header: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = header;
    while let Some(start) = rest.find("typedef struct ") {
        rest = &rest[start + "typedef struct ".len()..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let open = rest.find('{').expect("struct body");
        let close = rest.find("\n}").expect("struct end");
        let body: String = rest[open + 1..close]
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join(" ");
        let fields = body
            .split(';')
            .map(str::trim)
            .filter(|decl| !decl.is_empty())
            .map(|decl| match decl.find("(*") {
                // function pointer: `ret (*name)(args)`
                Some(i) => decl[i + 2..decl[i..].find(')').unwrap() + i].to_string(),
                None => decl.rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap().to_string(),
            })
            .collect();
        out.push((name, fields));
        rest = &rest[close..];
    }
    out
}

/// What a C program built from header `name` (in `include/`) says about
/// the size, alignment and field offsets of every struct in it.
fn c_side(name: &str) -> BTreeSet<String> {
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let header = std::fs::read_to_string(include.join(name)).unwrap();
    let structs = header_structs(&header);
    assert!(structs.len() >= 19, "parsed only {} structs from {name}", structs.len());

    let mut program = format!(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdalign.h>\n#include \"{name}\"\nint main(void) {{\n",
    );
    for (name, fields) in &structs {
        program += &format!("  printf(\"{name} size %zu align %zu\\n\", sizeof({name}), alignof({name}));\n");
        for f in fields {
            program += &format!("  printf(\"{name}.{f} offset %zu\\n\", offsetof({name}, {f}));\n");
        }
    }
    program += "  return 0;\n}\n";

    let dir = tempfile_dir();
    let stem = name.trim_end_matches(".h");
    let src = dir.join(format!("{stem}.c"));
    let exe = dir.join(stem);
    std::fs::write(&src, program).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-I"])
        .arg(&include)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(status.success(), "the layout program for {name} did not compile");
    let c_out = Command::new(&exe).output().unwrap();
    String::from_utf8(c_out.stdout).unwrap().lines().map(str::to_owned).collect()
}

#[test]
fn c_and_rust_layouts_agree() {
    let c_lines = c_side("meshpay_plugin.h");
    let rust_lines: BTreeSet<String> = rust_side().into_iter().collect();

    let only_c: Vec<_> = c_lines.difference(&rust_lines).collect();
    let only_rust: Vec<_> = rust_lines.difference(&c_lines).collect();
    assert!(
        only_c.is_empty() && only_rust.is_empty(),
        "layouts differ\n  C says (Rust disagrees or lacks): {only_c:#?}\n  Rust says (C disagrees or lacks): {only_rust:#?}"
    );
}

/// Every released minor's golden header describes a prefix of today's
/// layout: each field it has sits at the same offset now, no struct
/// shrank, and none changed its alignment. This is the "tables only grow
/// at the end" rule, checked with the C compiler.
#[test]
fn every_golden_header_is_a_prefix_of_the_current_layout() {
    let rust_lines: BTreeSet<String> = rust_side().into_iter().collect();
    let size_of = |lines: &BTreeSet<String>, name: &str| -> (usize, usize) {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} size ")))
            .unwrap_or_else(|| panic!("no size line for {name}"));
        let w: Vec<&str> = line.split(' ').collect();
        (w[2].parse().unwrap(), w[4].parse().unwrap())
    };
    for minor in 0..=MP_ABI_MINOR {
        let golden = format!("meshpay_plugin_v{MP_ABI_MAJOR}_{minor}.h");
        let old = c_side(&golden);
        let moved: Vec<_> =
            old.iter().filter(|l| l.contains(" offset ") && !rust_lines.contains(*l)).collect();
        assert!(moved.is_empty(), "{golden}: fields moved or vanished: {moved:#?}");
        for line in old.iter().filter(|l| l.contains(" size ")) {
            let name = line.split(' ').next().unwrap();
            let (old_size, old_align) = size_of(&old, name);
            let (size, align) = size_of(&rust_lines, name);
            assert!(
                old_size <= size && old_align == align,
                "{golden}: {name} was {line}, now size {size} align {align}"
            );
        }
    }
    // And 1.0 really is smaller where 1.1 appended: the consensus table.
    let v1_0 = c_side("meshpay_plugin_v1_0.h");
    assert!(size_of(&v1_0, "MpConsensusV1").0 < core::mem::size_of::<MpConsensusV1>());
    assert!(!v1_0.iter().any(|l| l.starts_with("MpConsensusV1.on_bundles ")));
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("meshpay-abi-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_header_parser_sees_function_pointers_and_plain_fields() {
    let h = "typedef struct A {\n  // doc\n  uint32_t struct_size;\n  const char *ptr;\n  MpStatus (*create)(const MpHost *host,\n                     void **out);\n} A;\n";
    assert_eq!(
        header_structs(h),
        vec![("A".to_string(), vec!["struct_size".into(), "ptr".into(), "create".into()])]
    );
}
