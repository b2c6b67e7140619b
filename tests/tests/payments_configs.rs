//! The example payment configs in `configs/payments/` are valid as shipped:
//! `meshpay config check` accepts each, and a node started on each (its UDP
//! port moved so it cannot clash with anything) runs the quorum plugin in
//! that role with the example committee. Fast: no namespaces.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

use meshpay_tests::*;
use serde_json::Value;

const ROLES: [&str; 4] = ["authority", "client", "relay", "gateway"];

fn dir() -> PathBuf {
    repo_root().join("configs/payments")
}

/// The first authority key of the example committee, as the file has it.
fn first_authority_key() -> String {
    let text = std::fs::read_to_string(dir().join("committee.toml")).unwrap();
    let line = text.lines().find(|l| l.starts_with("key = ")).expect("an authority key");
    line.trim_start_matches("key = ").trim_matches('"').to_owned()
}

#[test]
fn every_example_payment_config_passes_config_check() {
    let key = first_authority_key();
    let state = tempfile::tempdir().unwrap();
    for role in ROLES {
        let file = dir().join(format!("{role}.toml"));
        let out = meshpay(&[
            "--state-dir",
            state.path().to_str().unwrap(),
            "config",
            "check",
            file.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: config check failed:\n{stdout}\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // The committee file was found next to the config and read.
        assert!(stdout.contains("org.meshpay.consensus.quorum") && stdout.contains(&key), "{role}: {stdout}");
        assert!(stdout.contains(&format!("\"role\":\"{role}\"")), "{role}: {stdout}");
    }
}

/// A UDP port nobody uses right now.
fn free_udp_port() -> u16 {
    UdpSocket::bind("[::]:0").or_else(|_| UdpSocket::bind("0.0.0.0:0")).unwrap().local_addr().unwrap().port()
}

#[test]
fn a_node_runs_each_example_role_with_the_example_committee() {
    let tmp = tempfile::tempdir().unwrap();
    let mut hashes = Vec::new();
    for role in ROLES {
        let dir_r = tmp.path().join(role);
        std::fs::create_dir_all(&dir_r).unwrap();
        // The committee next to the config, as in configs/payments/.
        std::fs::copy(dir().join("committee.toml"), dir_r.join("committee.toml")).unwrap();
        let text = std::fs::read_to_string(dir().join(format!("{role}.toml"))).unwrap();
        let from = "config = { interfaces = [\"mesh0\"] }";
        assert!(text.contains(from), "{role}.toml: the UDP transport line changed; update this test");
        let config = text
            .replace(from, &format!("config = {{ interfaces = [\"mesh0\"], port = {} }}", free_udp_port()));
        let node = NodeProc::start(&dir_r, &config);
        let status = node.status().unwrap();
        let consensus = &status["consensus"];
        if role == "authority" {
            // This node's fresh key is not one of the example authorities:
            // the plugin refuses to start (after parsing the committee) and
            // logs why; the node runs on without payments.
            assert_eq!(consensus["state"], "disabled", "{status:#}");
            assert!(consensus["reason"].as_str().unwrap().contains("create failed"), "{status:#}");
            let log = node.log();
            assert!(
                log.contains("config.role") && log.contains("is not in the committee"),
                "the authority's refusal is not in the log:\n{log}"
            );
        } else {
            let c = &consensus["status"];
            assert_eq!(c["role"], role, "{status:#}");
            assert_eq!(c["authorities"], 4);
            assert_eq!(c["quorum_weight"], 3);
            hashes.push(c["committee_hash"].as_str().unwrap().to_owned());
            if role != "relay" {
                let out = node.cli(&["consensus", "audit"]);
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                let audit: Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(audit["genesis_total"], 2_000_000, "{audit:#}");
                assert_eq!(audit["conserved"], true);
            }
        }
        let mut node = node;
        node.signal(libc::SIGTERM);
        assert_eq!(node.wait_exit(Duration::from_secs(20)).and_then(|s| s.code()), Some(0), "{role}");
    }
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "one committee, one hash: {hashes:?}");
}
