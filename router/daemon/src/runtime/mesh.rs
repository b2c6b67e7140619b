//! The 802.11s interface: set up (managed) or adopted (attach), watched
//! (stations, mesh paths, mlme events), tuned (mesh parameters, blocked
//! peers), and in managed mode left and deleted on shutdown.
//!
//! meshpay does not route over the mesh itself: 802.11s (HWMP) makes the
//! mesh one layer-2 segment, and the UDP transport runs over its interface.
//! What the mesh adds is link quality: a neighbour reached over the mesh
//! gets the airtime metric and signal of its station (or, several hops
//! away, the metric of its mesh path), which routing plugins see.

use std::cell::Cell;
use std::collections::HashSet;
use std::net::Ipv6Addr;

use anyhow::{Context, bail};
use meshpay_mesh::{ErrorKind, EventSocket, JoinParams, MacAddr, MeshPath, Nl80211, Station};
use serde_json::{Value, json};

use crate::config::{MeshMode, MeshSection};

/// The node's mesh interface.
pub struct Mesh {
    nl: Nl80211,
    cfg: MeshSection,
    ifindex: u32,
    /// Managed mode created (or re-joined) the interface: leave it on exit.
    owned: bool,
    blocked: Vec<MacAddr>,
    blocked_done: HashSet<MacAddr>,
    stations: Vec<Station>,
    paths: Vec<MeshPath>,
    last_error: Option<String>,
    /// The `mlme` subscription, opened before joining so that no
    /// NEW_STATION between the join and the event loop is missed (each one
    /// is the first moment a blocked peer can be blocked); taken by
    /// [`Mesh::events`].
    early_events: Cell<Option<EventSocket>>,
}

fn explain(e: meshpay_mesh::Error, what: &str) -> anyhow::Error {
    let hint = match e.kind() {
        ErrorKind::PermissionDenied => " (needs CAP_NET_ADMIN: run as root or grant the capability)",
        ErrorKind::NotSupported => " (the driver cannot do this)",
        ErrorKind::NoNl80211 => " (is cfg80211 loaded and is there a wireless device?)",
        _ => "",
    };
    anyhow::anyhow!("mesh: {what}: {e}{hint}")
}

/// Managed mode, after the interface exists: brings it up and joins the
/// configured mesh (or, if an earlier run left it joined, keeps the join and
/// applies the mesh parameters).
fn up_and_join(
    nl: &mut Nl80211,
    ifindex: u32,
    cfg: &MeshSection,
    params: meshpay_mesh::MeshParams,
) -> anyhow::Result<()> {
    nl.set_up(ifindex, true).map_err(|e| explain(e, &format!("cannot bring {} up", cfg.interface)))?;
    let mut join = JoinParams::new(cfg.mesh_id.as_deref().unwrap_or_default(), cfg.frequency);
    join.width =
        cfg.channel_width.parse().map_err(|e: meshpay_mesh::msg::RequestError| anyhow::anyhow!(e.0))?;
    join.beacon_interval_tu = cfg.beacon_interval;
    join.params = params;
    match nl.join(ifindex, &join) {
        Ok(()) => tracing::info!(
            "mesh: {} joined mesh \"{}\" on {} MHz ({})",
            cfg.interface,
            join.mesh_id,
            cfg.frequency,
            cfg.channel_width
        ),
        Err(e) if e.kind() == ErrorKind::AlreadyJoined => {
            tracing::info!("mesh: {} is already joined; keeping it", cfg.interface);
            if !join.params.is_empty() {
                nl.set_mesh_params(ifindex, &join.params)
                    .map_err(|e| explain(e, "cannot set mesh parameters"))?;
            }
        }
        Err(e) if e.kind() == ErrorKind::InvalidArgument => {
            // What the kernel most often means here, and says no more about.
            return Err(anyhow::anyhow!(
                "mesh: cannot join mesh \"{}\": {e} (is mesh.frequency {} MHz with mesh.channel_width {} \
                 a channel this radio has and may start transmitting on in the regulatory domain? \
                 `iw phy` lists them; \"no IR\" channels cannot be used)",
                join.mesh_id,
                cfg.frequency,
                cfg.channel_width
            ));
        }
        Err(e) => return Err(explain(e, &format!("cannot join mesh \"{}\"", join.mesh_id))),
    }
    Ok(())
}

impl Mesh {
    /// Sets up (managed) or adopts (attach) the mesh interface.
    pub fn start(cfg: &MeshSection) -> anyhow::Result<Mesh> {
        let mut nl = Nl80211::connect().map_err(|e| explain(e, "cannot talk to nl80211"))?;
        let blocked = cfg.blocked().map_err(|e| anyhow::anyhow!(e))?;
        let params = cfg.mesh_params().map_err(|e| anyhow::anyhow!(e))?;
        // Failing here is reported by `events()`, which tries again.
        let early_events = nl.events().ok();
        let existing = match nl.interface(&cfg.interface) {
            Ok(i) => Some(i),
            Err(e)
                if e.kind() == ErrorKind::NoDevice
                    || matches!(e, meshpay_mesh::Error::NoSuchInterface(_)) =>
            {
                None
            }
            Err(e) => return Err(explain(e, &format!("cannot read interface {}", cfg.interface))),
        };
        let (ifindex, owned) = match cfg.mode {
            MeshMode::Attach => {
                let i = existing.with_context(|| {
                    format!("mesh: attach mode: interface {} does not exist (set it up in the wireless config first)", cfg.interface)
                })?;
                if !i.is_mesh() {
                    bail!(
                        "mesh: attach mode: interface {} is not a mesh point (type {})",
                        cfg.interface,
                        i.iftype
                    );
                }
                if !params.is_empty() {
                    nl.set_mesh_params(i.ifindex, &params)
                        .map_err(|e| explain(e, "cannot set mesh parameters"))?;
                }
                tracing::info!("mesh: attached to {} (ifindex {})", cfg.interface, i.ifindex);
                (i.ifindex, false)
            }
            MeshMode::Managed => {
                let phy_name = cfg.phy.as_deref().unwrap_or_default();
                let (ifindex, created) = match existing {
                    Some(i) if i.is_mesh() => {
                        // Left behind by an earlier run that did not exit
                        // cleanly (kill -9): take it over.
                        tracing::warn!(
                            "mesh: interface {} already exists (an earlier run?); reusing it",
                            cfg.interface
                        );
                        (i.ifindex, false)
                    }
                    Some(i) => bail!(
                        "mesh: interface {} exists and is not a mesh point (type {}): choose another mesh.interface",
                        cfg.interface,
                        i.iftype
                    ),
                    None => {
                        let phy =
                            nl.phy(phy_name).map_err(|e| explain(e, &format!("no radio {phy_name}")))?;
                        if !phy.supports_mesh() {
                            bail!("mesh: radio {phy_name}: its driver cannot do mesh point (802.11s)");
                        }
                        let mac = cfg
                            .mac
                            .as_deref()
                            .map(str::parse)
                            .transpose()
                            .map_err(|_| anyhow::anyhow!("mesh.mac"))?;
                        let ifindex = nl
                            .create_mesh_interface(&phy, &cfg.interface, mac)
                            .map_err(|e| {
                                explain(e, &format!("cannot create {} on {phy_name}", cfg.interface))
                            })?
                            .ifindex;
                        (ifindex, true)
                    }
                };
                if let Err(e) = up_and_join(&mut nl, ifindex, cfg, params) {
                    // Do not leave a half set-up interface behind: the next
                    // start would take it over as if an earlier run had.
                    if created && let Err(d) = nl.delete_interface(ifindex) {
                        tracing::warn!("mesh: cannot delete {} after a failed start: {d}", cfg.interface);
                    }
                    return Err(e);
                }
                (ifindex, cfg.leave_on_exit)
            }
        };
        let mut mesh = Mesh {
            nl,
            cfg: cfg.clone(),
            ifindex,
            owned,
            blocked,
            blocked_done: HashSet::new(),
            stations: Vec::new(),
            paths: Vec::new(),
            last_error: None,
            early_events: Cell::new(early_events),
        };
        mesh.poll();
        Ok(mesh)
    }

    pub fn interface(&self) -> &str {
        &self.cfg.interface
    }

    pub fn poll_ms(&self) -> u64 {
        self.cfg.poll_ms
    }

    /// The mlme event socket, for the event loop (the one opened before
    /// joining, with what it queued since, the first time).
    pub fn events(&self) -> Option<meshpay_mesh::AsyncEventSocket> {
        let sock = match self.early_events.take() {
            Some(s) => Ok(s),
            None => self.nl.events(),
        };
        match sock.and_then(meshpay_mesh::AsyncEventSocket::new) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("mesh: no peer events ({e}); polling every {} ms only", self.cfg.poll_ms);
                None
            }
        }
    }

    /// Re-reads stations and paths, and blocks configured peers that appeared.
    pub fn poll(&mut self) {
        let stations = self.nl.stations(self.ifindex);
        let paths = self.nl.mesh_paths(self.ifindex);
        match (stations, paths) {
            (Ok(s), Ok(p)) => {
                self.stations = s;
                self.paths = p;
                self.last_error = None;
            }
            (Err(e), _) | (_, Err(e)) => {
                if self.last_error.as_deref() != Some(&e.to_string()) {
                    tracing::warn!("mesh: cannot read peers of {}: {e}", self.cfg.interface);
                }
                self.last_error = Some(e.to_string());
                return;
            }
        }
        // The kernel refuses to block a station it has not seen yet, so
        // blocks are applied as peers appear (and again if they come back).
        let present: HashSet<MacAddr> = self.stations.iter().map(|s| s.mac).collect();
        self.blocked_done.retain(|m| present.contains(m));
        for mac in self.blocked.clone() {
            let needs = self
                .stations
                .iter()
                .any(|s| s.mac == mac && s.plink_state != Some(meshpay_mesh::PlinkState::Blocked));
            if needs && !self.blocked_done.contains(&mac) {
                match self.nl.set_peer_blocked(self.ifindex, mac, true) {
                    Ok(()) => {
                        tracing::info!("mesh: peer link to {mac} blocked (config)");
                        self.blocked_done.insert(mac);
                    }
                    Err(e) => tracing::warn!("mesh: cannot block {mac}: {e}"),
                }
            }
        }
    }

    /// Link quality towards the node behind an IPv6 link-local address on
    /// the mesh interface: (metric, signal) of its station if it is a direct
    /// peer with an established link, else the metric of the mesh path.
    pub fn quality(&self, peer: &str) -> Option<(u32, Option<i32>)> {
        let mac = peer_mac(peer, &self.cfg.interface)?;
        if let Some(s) = self
            .stations
            .iter()
            .find(|s| s.mac == mac && s.plink_state == Some(meshpay_mesh::PlinkState::Estab))
        {
            return s.airtime_metric.map(|m| (m, s.signal_avg_dbm.or(s.signal_dbm).map(i32::from)));
        }
        self.paths.iter().find(|p| p.dst == mac && p.is_active()).and_then(|p| p.metric.map(|m| (m, None)))
    }

    /// For `meshpay mesh status`.
    pub fn status(&self) -> Value {
        json!({
            "mode": match self.cfg.mode { MeshMode::Managed => "managed", MeshMode::Attach => "attach" },
            "interface": self.cfg.interface,
            "ifindex": self.ifindex,
            "mesh_id": self.cfg.mesh_id,
            "frequency": (self.cfg.mode == MeshMode::Managed).then_some(self.cfg.frequency),
            "blocked_peers": self.cfg.blocked_peers,
            "stations": self.stations,
            "paths": self.paths,
            "error": self.last_error,
        })
    }

    /// Managed mode: leaves the mesh and deletes the interface.
    pub fn shutdown(&mut self) {
        if !self.owned {
            return;
        }
        if let Err(e) = self.nl.leave(self.ifindex) {
            tracing::warn!("mesh: leave {}: {e}", self.cfg.interface);
        }
        match self.nl.delete_interface(self.ifindex) {
            Ok(()) => tracing::info!("mesh: left the mesh and deleted {}", self.cfg.interface),
            Err(e) => tracing::warn!("mesh: delete {}: {e}", self.cfg.interface),
        }
        self.owned = false;
    }
}

/// Leaving on drop as well covers the daemon's error paths after the mesh
/// was set up (a control socket that cannot be bound, a panic): a managed
/// interface is not left joined behind. `shutdown` is idempotent.
impl Drop for Mesh {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The MAC behind an EUI-64 IPv6 link-local peer address
/// (`[fe80::...%ifname]:port`) on `ifname`; `None` for anything else
/// (another interface, IPv4, stable-privacy addresses).
fn peer_mac(peer: &str, ifname: &str) -> Option<MacAddr> {
    let inner = peer.strip_prefix('[')?.split(']').next()?;
    let (addr, scope) = inner.split_once('%')?;
    if scope != ifname {
        return None;
    }
    let ip: Ipv6Addr = addr.parse().ok()?;
    let o = ip.octets();
    if o[0] != 0xfe || o[1] & 0xc0 != 0x80 || o[11] != 0xff || o[12] != 0xfe {
        return None;
    }
    Some(MacAddr([o[8] ^ 0x02, o[9], o[10], o[13], o[14], o[15]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eui64_link_local_addresses_map_back_to_macs() {
        assert_eq!(
            peer_mac("[fe80::4000:ff:fe00:200%mesh0]:4556", "mesh0"),
            Some(MacAddr([0x42, 0x00, 0x00, 0x00, 0x02, 0x00]))
        );
        assert_eq!(peer_mac("[fe80::4000:ff:fe00:200%eth0]:4556", "mesh0"), None);
        assert_eq!(peer_mac("[fe80::1234:5678:9abc:def0%mesh0]:4556", "mesh0"), None);
        assert_eq!(peer_mac("10.0.0.1:4556", "mesh0"), None);
    }
}
