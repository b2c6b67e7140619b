//! Golden-byte tests: our builders against what iw 5.19 sent, and our
//! parsers against what the Debian 6.1 kernel answered, on the same run.
//!
//! Provenance: every file in `tests/golden/` was recorded by
//! `tests/vm/capture-iw.sh` (iw under strace in a QEMU guest with
//! mac80211_hwsim, see its header) and converted by
//! `tests/vm/extract-goldens.sh`. Each file holds the messages iw sent and
//! received (first the generic netlink family lookup, then the command) and
//! iw's printed output as `# iw:` lines, which the parser tests use as the
//! expected values, so nothing here is typed in by hand.

use std::path::Path;

use meshpay_mesh::client::{parse_events, parse_family};
use meshpay_mesh::meshconf::MeshParams;
use meshpay_mesh::msg::{self, ChannelWidth, JoinParams};
use meshpay_mesh::wire::{GenlMsg, GenlRequest, Hex, NLM_F_DUMP, NlMsgs};
use meshpay_mesh::{Event, MacAddr, MeshPath, PlinkState, Station};

struct Golden {
    sends: Vec<Vec<u8>>,
    recvs: Vec<Vec<u8>>,
    iw_out: Vec<String>,
}

fn load(name: &str) -> Golden {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut g = Golden { sends: vec![], recvs: vec![], iw_out: vec![] };
    let mut cur: Option<&mut Vec<u8>> = None;
    for line in text.lines() {
        if let Some(out) = line.strip_prefix("# iw: ") {
            g.iw_out.push(out.to_owned());
        } else if line.starts_with('#') {
            continue;
        } else if line == "send" {
            g.sends.push(vec![]);
            cur = g.sends.last_mut();
        } else if line == "recv" {
            g.recvs.push(vec![]);
            cur = g.recvs.last_mut();
        } else {
            let bytes = line.split_whitespace().map(|h| u8::from_str_radix(h, 16).unwrap());
            cur.as_mut().expect("hex before send/recv").extend(bytes);
        }
    }
    g
}

/// Header fields iw chose (family id, seq, port id) from a captured message.
fn header(b: &[u8]) -> (u16, u32, u32) {
    let m = NlMsgs::new(b).next().unwrap().unwrap();
    (m.ty, m.seq, m.pid)
}

/// Our request, given iw's family id, sequence number and port id, must be
/// byte for byte what iw sent.
fn assert_same(name: &str, ours: GenlRequest) {
    let g = load(name);
    // sends[0] is the family lookup, sends[1] the command.
    let theirs = &g.sends[1];
    let (fam, seq, pid) = header(theirs);
    let mine = ours.encode(fam, seq, pid);
    assert_eq!(mine, *theirs, "{name}: ours\n{}\niw's\n{}", Hex(&mine), Hex(theirs));
}

/// The generic netlink payloads of the replies to the command (`recvs[0]` is
/// the family lookup reply, `recvs[1]` its ack).
fn replies(g: &Golden, family: u16) -> Vec<Vec<u8>> {
    let mut out = vec![];
    for r in &g.recvs[2..] {
        for m in NlMsgs::new(r) {
            let m = m.unwrap();
            if m.ty == family {
                out.push(m.payload.to_vec());
            }
        }
    }
    out
}

fn family_of(g: &Golden) -> u16 {
    header(&g.sends[1]).0
}

#[test]
fn family_lookup_matches_iw_and_parses_the_kernel_reply() {
    let g = load("join_default");
    let (_, seq, pid) = header(&g.sends[0]);
    assert_eq!(msg::get_family("nl80211").encode(0x10, seq, pid), g.sends[0]);
    let reply = NlMsgs::new(&g.recvs[0]).next().unwrap().unwrap();
    let (id, groups) = parse_family(GenlMsg::parse(reply.payload).unwrap().attrs()).unwrap();
    // The id the kernel gave is the one iw then used.
    assert_eq!(id, family_of(&g));
    let names: Vec<_> = groups.iter().map(|(n, _)| n.as_str()).collect();
    for want in ["config", "scan", "regulatory", "mlme"] {
        assert!(names.contains(&want), "{names:?}");
    }
}

#[test]
fn new_interface_matches_iw() {
    assert_same("new_interface", msg::new_mesh_interface(0, "mesh0", None).unwrap());
    let mac: MacAddr = "42:00:00:00:09:00".parse().unwrap();
    assert_same("new_interface_addr", msg::new_mesh_interface(0, "mesh9", Some(mac)).unwrap());
}

#[test]
fn new_interface_reply_parses() {
    let g = load("new_interface_addr");
    let r = replies(&g, family_of(&g));
    let i = meshpay_mesh::Interface::parse(GenlMsg::parse(&r[0]).unwrap().attrs()).unwrap();
    assert_eq!(i.name, "mesh9");
    assert!(i.is_mesh());
    assert_eq!(i.wiphy, 0);
    assert_eq!(i.mac, Some("42:00:00:00:09:00".parse().unwrap()));
    assert!(i.ifindex > 0);
}

#[test]
fn join_default_matches_iw() {
    // `iw dev mesh0 mesh join meshnet freq 2412`; mesh0 had ifindex 2.
    assert_same("join_default", msg::join_mesh(2, &JoinParams::new("meshnet", 2412)).unwrap());
}

#[test]
fn join_with_everything_matches_iw() {
    // `... mesh join meshnet freq 2412 HT40+ mcast-rate 6 beacon-interval 200
    //  dtim-period 2 mesh_ttl=7 mesh_hwmp_rootmode=4 mesh_rssi_threshold=-80
    //  mesh_path_refresh_time=1000`
    let mut p = JoinParams::new("meshnet", 2412);
    p.width = "HT40+".parse::<ChannelWidth>().unwrap();
    p.mcast_rate_100kbps = Some(60);
    p.beacon_interval_tu = Some(200);
    p.dtim_period = Some(2);
    for kv in ["mesh_ttl=7", "mesh_hwmp_rootmode=4", "mesh_rssi_threshold=-80", "mesh_path_refresh_time=1000"]
    {
        p.params.set_str(kv).unwrap();
    }
    assert_same("join_full", msg::join_mesh(2, &p).unwrap());
}

#[test]
fn leave_delete_and_dumps_match_iw() {
    assert_same("leave", msg::leave_mesh(2));
    assert_same("del_interface", msg::del_interface(2));
    assert_same("station_dump", msg::get_station_dump(2));
    assert_same("mpath_dump", msg::get_mpath_dump(2));
    assert_same("get_mesh_param_mesh_ttl", msg::get_mesh_config(2));
    let g = load("station_dump");
    assert_eq!(NlMsgs::new(&g.sends[1]).next().unwrap().unwrap().flags & NLM_F_DUMP, NLM_F_DUMP);
}

#[test]
fn set_mesh_param_matches_iw() {
    // `iw dev mesh0 set mesh_param mesh_fwding=0 mesh_max_peer_links=16`
    let mut p = MeshParams::new();
    p.set_str("mesh_fwding=0").unwrap().set_str("mesh_max_peer_links=16").unwrap();
    assert_same("set_mesh_param", msg::set_mesh_config(2, &p).unwrap());
}

#[test]
fn plink_actions_match_iw() {
    let mac: MacAddr = "02:00:00:00:01:00".parse().unwrap();
    assert_same("plink_block", msg::set_plink_action(2, mac, true));
    assert_same("plink_open", msg::set_plink_action(2, mac, false));
}

/// `key:\tvalue` from iw's station output.
fn iw_field<'a>(out: &'a [String], key: &str) -> &'a str {
    out.iter()
        .find_map(|l| l.trim_start().strip_prefix(key))
        .map(|v| v.trim_start_matches([':', '\t', ' ']).trim())
        .unwrap_or_else(|| panic!("iw printed no {key:?}"))
}

fn first_number<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    let n: String = s
        .chars()
        .skip_while(|c| !c.is_ascii_digit() && *c != '-')
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    n.parse().unwrap()
}

#[test]
fn station_dump_reply_parses_like_iw_prints_it() {
    let g = load("station_dump");
    let r = replies(&g, family_of(&g));
    assert_eq!(r.len(), 1, "one peer in the capture");
    let s = Station::parse(GenlMsg::parse(&r[0]).unwrap().attrs()).unwrap();
    let out = &g.iw_out;
    let iw_mac = out[0].strip_prefix("Station ").unwrap().split(' ').next().unwrap();
    assert_eq!(s.mac.to_string(), iw_mac);
    assert_eq!(s.plink_state.unwrap().name(), iw_field(out, "mesh plink"));
    assert_eq!(s.plink_state, Some(PlinkState::Estab));
    assert_eq!(s.llid, Some(first_number(iw_field(out, "mesh llid"))));
    assert_eq!(s.plid, Some(first_number(iw_field(out, "mesh plid"))));
    // Signed dBm from a u8 on the wire.
    assert_eq!(s.signal_dbm, Some(first_number(iw_field(out, "signal"))));
    assert!(s.signal_dbm.unwrap() < 0);
    assert_eq!(s.signal_avg_dbm, Some(first_number(iw_field(out, "signal avg"))));
    // The u32 airtime metric that wl-nl80211 fails on.
    assert_eq!(s.airtime_metric, Some(first_number(iw_field(out, "mesh airtime link metric"))));
    assert_eq!(s.inactive_ms, Some(first_number(iw_field(out, "inactive time"))));
    assert_eq!(s.rx_packets, Some(first_number(iw_field(out, "rx packets"))));
    assert_eq!(s.rx_bytes, Some(first_number(iw_field(out, "rx bytes"))));
    // iw prints kbit/s * 1000 / 1024 as "24.902Mbps".
    let thr = iw_field(out, "expected throughput").trim_end_matches("Mbps").replace('.', "");
    assert_eq!(s.expected_throughput_kbps.map(|k| k * 1000 / 1024), Some(thr.parse().unwrap()));
    // "52.0 MBit/s MCS 11" -> 520 (100 kbit/s units).
    let rate = iw_field(out, "tx bitrate").split(' ').next().unwrap().replace('.', "");
    assert_eq!(s.tx_bitrate_100kbps, Some(rate.parse().unwrap()));
    assert_eq!(s.connected_secs, Some(first_number(iw_field(out, "connected time"))));
}

#[test]
fn mpath_dump_reply_parses_like_iw_prints_it() {
    let g = load("mpath_dump");
    let r = replies(&g, family_of(&g));
    let paths: Vec<MeshPath> =
        r.iter().map(|p| MeshPath::parse(GenlMsg::parse(p).unwrap().attrs()).unwrap()).collect();
    // iw: DEST NEXT_HOP IFACE SN METRIC QLEN EXPTIME DTIM DRET FLAGS HOP_COUNT PATH_CHANGE
    let rows: Vec<Vec<&str>> = g.iw_out[1..].iter().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(paths.len(), rows.len());
    for (p, row) in paths.iter().zip(&rows) {
        assert_eq!(p.dst.to_string(), row[0]);
        assert_eq!(p.next_hop.to_string(), row[1]);
        assert_eq!(p.sn, Some(row[3].parse().unwrap()));
        assert_eq!(p.metric, Some(row[4].parse().unwrap()));
        assert_eq!(p.frame_qlen, Some(row[5].parse().unwrap()));
        assert_eq!(p.exptime_ms, Some(row[6].parse().unwrap()));
        assert_eq!(p.discovery_timeout_ms, Some(row[7].parse().unwrap()));
        assert_eq!(p.discovery_retries, Some(row[8].parse().unwrap()));
        assert_eq!(p.flags, u8::from_str_radix(row[9].trim_start_matches("0x"), 16).unwrap());
        assert_eq!(p.hop_count, Some(row[10].parse().unwrap()));
        assert_eq!(p.path_changes, Some(row[11].parse().unwrap()));
        assert!(p.is_active());
    }
}

#[test]
fn mesh_config_reply_parses_with_every_width() {
    // Each capture asked for all parameters and iw printed one of them.
    for name in ["mesh_ttl", "mesh_max_peer_links", "mesh_path_refresh_time", "mesh_rssi_threshold"] {
        let g = load(&format!("get_mesh_param_{name}"));
        let r = replies(&g, family_of(&g));
        let cfg = GenlMsg::parse(&r[0]).unwrap();
        let nest = cfg.attrs().map(Result::unwrap).find(|a| a.kind == 35).expect("MESH_CONFIG");
        let p = MeshParams::parse(nest.nested()).unwrap();
        assert_eq!(p.get(name), Some(first_number(&g.iw_out[0])), "{name}");
        // The kernel reports (at least) every parameter iw knows.
        assert!(p.iter().count() >= 29, "{p}");
    }
}

#[test]
fn captured_new_station_parses_as_an_event() {
    // A NEW_STATION event has the dump reply's layout (nl80211_send_station).
    let g = load("station_dump");
    let fam = family_of(&g);
    let evs = parse_events(&g.recvs[2], fam);
    assert_eq!(evs.len(), 1);
    match &evs[0] {
        Ok(Event::NewStation { ifindex, station }) => {
            assert_eq!(*ifindex, 2);
            assert_eq!(station.plink_state, Some(PlinkState::Estab));
        }
        other => panic!("{other:?}"),
    }
    // Messages of other families on the socket are ignored.
    assert!(parse_events(&g.recvs[2], fam + 1).is_empty());
}
