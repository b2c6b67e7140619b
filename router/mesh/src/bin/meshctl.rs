//! `meshctl`: 802.11s mesh control from the command line, through the same
//! `meshpay-mesh` code the router uses. Handy for operators, and the tool the
//! VM test drives (`tests/vm/mesh-basic.sh`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use meshpay_mesh::meshconf::PARAMS;
use meshpay_mesh::phy::iftype_name;
use meshpay_mesh::{ChannelWidth, JoinParams, MacAddr, MeshParams, Nl80211, PlinkState, ifindex};

#[derive(Parser)]
#[command(name = "meshctl", version, about = "802.11s mesh control over nl80211")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List wireless devices and whether they can do mesh point.
    Phys {
        #[arg(long)]
        json: bool,
    },
    /// List wireless interfaces in this network namespace.
    Interfaces {
        #[arg(long)]
        json: bool,
    },
    /// Create a mesh point interface on PHY (name or index) and bring it up.
    Create {
        phy: String,
        ifname: String,
        /// MAC address for the new interface.
        #[arg(long)]
        mac: Option<MacAddr>,
        /// Leave the interface down.
        #[arg(long)]
        no_up: bool,
    },
    /// Bring an interface up.
    Up { ifname: String },
    /// Bring an interface down.
    Down { ifname: String },
    /// Set an interface's MAC address (the interface must be down).
    Mac { ifname: String, mac: MacAddr },
    /// Join a mesh (the interface must be up).
    Join {
        ifname: String,
        mesh_id: String,
        /// Control frequency in MHz (2412 = channel 1).
        freq: u32,
        /// Channel width: 20-noht, 20, 40-, 40+, 80.
        #[arg(long, default_value = "20-noht")]
        width: ChannelWidth,
        /// Beacon interval in TU.
        #[arg(long)]
        beacon_interval: Option<u32>,
        /// DTIM period.
        #[arg(long)]
        dtim_period: Option<u32>,
        /// Multicast rate in Mbit/s (e.g. 6, 5.5).
        #[arg(long)]
        mcast_rate: Option<f64>,
        /// Mesh parameter NAME=VALUE, sent in the same JOIN (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Block the peer link to this MAC as soon as it appears (repeatable).
        #[arg(long = "block", value_name = "MAC")]
        block: Vec<MacAddr>,
        /// How long to wait for peers named with --block to appear, seconds.
        #[arg(long, default_value_t = 15.0)]
        block_timeout: f64,
    },
    /// Leave the mesh.
    Leave { ifname: String },
    /// Delete an interface.
    Delete { ifname: String },
    /// Dump the stations (mesh peers).
    Stations {
        ifname: String,
        #[arg(long)]
        json: bool,
    },
    /// Dump the HWMP mesh paths.
    Mpaths {
        ifname: String,
        #[arg(long)]
        json: bool,
    },
    /// Block the peer link to MAC.
    Block { ifname: String, mac: MacAddr },
    /// Re-open a blocked peer link.
    Unblock { ifname: String, mac: MacAddr },
    /// Show the mesh parameters of a joined interface.
    Config {
        ifname: String,
        #[arg(long)]
        json: bool,
    },
    /// Change mesh parameters on a joined interface: NAME=VALUE ...
    Set {
        ifname: String,
        #[arg(required = true, value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
    /// List the mesh parameter names, attribute numbers and widths.
    Params,
    /// Wait until at least N peer links of IFNAME are ESTAB.
    WaitEstab {
        ifname: String,
        n: usize,
        /// Seconds.
        #[arg(long, default_value_t = 20.0)]
        timeout: f64,
    },
    /// Print mlme events (NEW_STATION, DEL_STATION, NEW_PEER_CANDIDATE) as they come.
    Events {
        /// Only events of this interface.
        ifname: Option<String>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`meshctl stations | head`), like other
    // Unix tools, instead of panicking in println!.
    // SAFETY: resetting a signal disposition to its default at startup,
    // before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshctl: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn print_json<T: serde::Serialize>(v: &T) -> Res {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn run(cmd: Cmd) -> Res {
    let mut nl = Nl80211::connect()?;
    match cmd {
        Cmd::Phys { json } => {
            let phys = nl.phys()?;
            if json {
                return print_json(&phys);
            }
            for p in phys {
                let types: Vec<_> = p.iftypes.iter().map(|t| iftype_name(*t)).collect();
                let mesh = if p.supports_mesh() { "mesh point: yes" } else { "mesh point: NO" };
                println!("{} (index {}): {}; types: {}", p.name, p.index, mesh, types.join(", "));
            }
        }
        Cmd::Interfaces { json } => {
            let ifs = nl.interfaces()?;
            if json {
                return print_json(&ifs);
            }
            for i in ifs {
                let mac = i.mac.map(|m| m.to_string()).unwrap_or_default();
                println!(
                    "{} ifindex {} phy#{} type {} addr {}",
                    i.name,
                    i.ifindex,
                    i.wiphy,
                    iftype_name(i.iftype),
                    mac
                );
            }
        }
        Cmd::Create { phy, ifname, mac, no_up } => {
            let phy = nl.phy(&phy)?;
            let iface = nl.create_mesh_interface(&phy, &ifname, mac)?;
            if !no_up {
                nl.set_up(iface.ifindex, true)?;
            }
            println!("created {} (ifindex {}) on {}", iface.name, iface.ifindex, phy.name);
        }
        Cmd::Up { ifname } => nl.set_up(ifindex(&ifname)?, true)?,
        Cmd::Down { ifname } => nl.set_up(ifindex(&ifname)?, false)?,
        Cmd::Mac { ifname, mac } => nl.set_mac(ifindex(&ifname)?, mac)?,
        Cmd::Join {
            ifname,
            mesh_id,
            freq,
            width,
            beacon_interval,
            dtim_period,
            mcast_rate,
            params,
            block,
            block_timeout,
        } => {
            let idx = ifindex(&ifname)?;
            let mut p = JoinParams::new(&mesh_id, freq);
            p.width = width;
            p.beacon_interval_tu = beacon_interval;
            p.dtim_period = dtim_period;
            p.mcast_rate_100kbps = mcast_rate.map(|r| (r * 10.0).round() as u32);
            for kv in &params {
                p.params.set_str(kv)?;
            }
            nl.join(idx, &p)?;
            println!("{ifname} joined {mesh_id:?} on {freq} MHz ({width})");
            block_when_seen(&mut nl, idx, &block, Duration::from_secs_f64(block_timeout))?;
        }
        Cmd::Leave { ifname } => nl.leave(ifindex(&ifname)?)?,
        Cmd::Delete { ifname } => nl.delete_interface(ifindex(&ifname)?)?,
        Cmd::Stations { ifname, json } => {
            let st = nl.stations(ifindex(&ifname)?)?;
            if json {
                return print_json(&st);
            }
            for s in st {
                let plink = s.plink_state.map(|p| p.name()).unwrap_or_else(|| "-".into());
                println!(
                    "{} plink {} llid {} plid {} signal {} dBm avg {} dBm metric {} inactive {} ms",
                    s.mac,
                    plink,
                    opt(s.llid),
                    opt(s.plid),
                    opt(s.signal_dbm),
                    opt(s.signal_avg_dbm),
                    opt(s.airtime_metric),
                    opt(s.inactive_ms)
                );
            }
        }
        Cmd::Mpaths { ifname, json } => {
            let paths = nl.mesh_paths(ifindex(&ifname)?)?;
            if json {
                return print_json(&paths);
            }
            for p in paths {
                println!(
                    "{} via {} metric {} hops {} sn {} exptime {} ms flags {}",
                    p.dst,
                    p.next_hop,
                    opt(p.metric),
                    opt(p.hop_count),
                    opt(p.sn),
                    opt(p.exptime_ms),
                    p.flag_names().join("|")
                );
            }
        }
        Cmd::Block { ifname, mac } => nl.set_peer_blocked(ifindex(&ifname)?, mac, true)?,
        Cmd::Unblock { ifname, mac } => nl.set_peer_blocked(ifindex(&ifname)?, mac, false)?,
        Cmd::Config { ifname, json } => {
            let p = nl.mesh_params(ifindex(&ifname)?)?;
            if json {
                return print_json(&p);
            }
            print!("{p}");
        }
        Cmd::Set { ifname, params } => {
            let mut p = MeshParams::new();
            for kv in &params {
                p.set_str(kv)?;
            }
            nl.set_mesh_params(ifindex(&ifname)?, &p)?;
        }
        Cmd::Params => {
            for d in PARAMS {
                println!("{:<40} attr {:>2} {:?} {}", d.name, d.attr, d.width, d.unit);
            }
        }
        Cmd::WaitEstab { ifname, n, timeout } => {
            let idx = ifindex(&ifname)?;
            let end = Instant::now() + Duration::from_secs_f64(timeout);
            loop {
                let estab =
                    nl.stations(idx)?.iter().filter(|s| s.plink_state == Some(PlinkState::Estab)).count();
                if estab >= n {
                    println!("{ifname}: {estab} peer links ESTAB");
                    break;
                }
                if Instant::now() >= end {
                    return Err(
                        format!("{ifname}: only {estab} of {n} peer links ESTAB after {timeout} s").into()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Cmd::Events { ifname, count, timeout, json } => {
            let only = ifname.as_deref().map(ifindex).transpose()?;
            let sock = nl.events()?;
            // The tokio path the router uses (AsyncEventSocket), so the VM
            // test exercises it.
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let mut ev = meshpay_mesh::AsyncEventSocket::new(sock)?;
                let wait = timeout.map(Duration::from_secs_f64).unwrap_or(Duration::MAX);
                let end = tokio::time::Instant::now().checked_add(wait);
                let mut seen = 0;
                loop {
                    let batch = match end {
                        Some(end) => match tokio::time::timeout_at(end, ev.recv()).await {
                            Ok(b) => b?,
                            Err(_) => break,
                        },
                        None => ev.recv().await?,
                    };
                    for r in batch {
                        match r {
                            Ok(e) if only.is_some() && e.ifindex() != only => {}
                            Ok(e) => {
                                if json {
                                    println!("{}", serde_json::to_string(&e)?);
                                } else {
                                    println!("{e:?}");
                                }
                                seen += 1;
                            }
                            Err((cmd, err)) => eprintln!("meshctl: malformed event (cmd {cmd}): {err}"),
                        }
                    }
                    if count.is_some_and(|c| seen >= c) {
                        break;
                    }
                }
                Ok::<(), Box<dyn std::error::Error>>(())
            })?;
        }
    }
    Ok(())
}

/// Blocks each MAC in `macs` once it is a station of `idx` (the kernel
/// refuses to block a peer it has not heard yet).
fn block_when_seen(nl: &mut Nl80211, idx: u32, macs: &[MacAddr], timeout: Duration) -> Res {
    let mut left: Vec<MacAddr> = macs.to_vec();
    let end = Instant::now() + timeout;
    while !left.is_empty() {
        let stations = nl.stations(idx)?;
        let mut still = Vec::new();
        for mac in left {
            if stations.iter().any(|s| s.mac == mac) {
                nl.set_peer_blocked(idx, mac, true)?;
                println!("blocked peer link to {mac}");
            } else {
                still.push(mac);
            }
        }
        left = still;
        if left.is_empty() {
            break;
        }
        if Instant::now() >= end {
            let l: Vec<_> = left.iter().map(|m| m.to_string()).collect();
            return Err(format!("peers to block never appeared within {timeout:?}: {}", l.join(", ")).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}
