//! Loading plugins and validating their descriptors and interfaces.

use core::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use meshpay_abi::sdk::TransportMode;
use meshpay_abi::*;

use crate::context::{HostServices, InstanceCtx, InstanceLabel, KvStore, TransportEvents};
use crate::instance::{
    CallError, Consensus, Core, FfiConsensus, FfiRouting, FfiTransport, Routing, Transport,
};

/// What a plugin says about itself, copied out of its descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub id: String,
    pub name: String,
    pub version: String,
    pub vendor: String,
    pub description: String,
    /// The ABI the plugin was built against.
    pub abi: MpVersion,
    /// `MP_KIND_*` bits the router understands (unknown bits are dropped).
    pub kinds: u32,
    /// For transports: how they do I/O.
    pub transport_mode: Option<TransportMode>,
}

/// Where a plugin's code lives.
#[derive(Debug)]
pub enum PluginSource {
    /// Linked into the router binary.
    Builtin,
    /// A shared library, kept loaded for as long as the plugin is referenced
    /// (instances hold an `Arc<Plugin>`).
    Library { path: PathBuf, library: libloading::Library },
}

/// A loaded, validated plugin. Create instances from it.
#[derive(Debug)]
pub struct Plugin {
    descriptor: Descriptor,
    source: PluginSource,
    transport: Option<MpTransportV1>,
    routing: Option<MpRoutingV1>,
    consensus: Option<MpConsensusV1>,
}

/// Why a plugin was refused. Every message names the plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot load plugin {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    #[error("{} is not a meshpay plugin: it does not export `{ENTRY_SYMBOL}` ({reason})", path.display())]
    NoEntry { path: PathBuf, reason: String },
    #[error(
        "plugin {origin} is built for meshpay plugin ABI {plugin}, but this router implements ABI {host}: \
         the major versions must match (rebuild the plugin against meshpay_plugin.h {host_major}.x)",
        host_major = host.major
    )]
    AbiMajor { origin: String, plugin: MpVersion, host: MpVersion },
    #[error("plugin {origin}: invalid descriptor: {reason}")]
    Descriptor { origin: String, reason: String },
    #[error("plugin {origin}: interface {interface}: {reason}")]
    Interface { origin: String, interface: &'static str, reason: String },
}

/// Names of the kinds in a bit set, for display.
pub fn kind_names(kinds: u32) -> Vec<&'static str> {
    [(MP_KIND_TRANSPORT, "transport"), (MP_KIND_ROUTING, "routing"), (MP_KIND_CONSENSUS, "consensus")]
        .into_iter()
        .filter(|(bit, _)| kinds & bit != 0)
        .map(|(_, name)| name)
        .collect()
}

fn is_reverse_dns(id: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    id.len() <= 128 && id.contains('.') && id.split('.').all(label_ok)
}

impl Plugin {
    /// Opens a plugin library, resolving all its symbols now (so a missing
    /// dependency is a load error, not a crash later), and validates it.
    pub fn load(path: &Path) -> Result<Arc<Plugin>, LoadError> {
        #[cfg(unix)]
        let library = unsafe {
            libloading::os::unix::Library::open(
                Some(path),
                libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
            )
        }
        .map(libloading::Library::from);
        #[cfg(not(unix))]
        let library = unsafe { libloading::Library::new(path) };
        let library =
            library.map_err(|e| LoadError::Open { path: path.to_owned(), reason: e.to_string() })?;
        // SAFETY: the symbol's type is fixed by the ABI.
        let entry: MpPluginEntryFn = unsafe {
            *library
                .get::<MpPluginEntryFn>(ENTRY_SYMBOL.as_bytes())
                .map_err(|e| LoadError::NoEntry { path: path.to_owned(), reason: e.to_string() })?
        };
        // SAFETY: the ABI requires the entry function to only return a
        // pointer to static data.
        let raw = unsafe { entry() };
        let origin = path.display().to_string();
        let plugin = Self::validate(raw, &origin, PluginSource::Library { path: path.to_owned(), library })?;
        Ok(Arc::new(plugin))
    }

    /// A plugin linked into the router, checked exactly like a library.
    pub fn builtin(entry: fn() -> &'static MpPluginEntry) -> Result<Arc<Plugin>, LoadError> {
        let raw = entry() as *const MpPluginEntry;
        let id = unsafe { (*raw).id.to_str() }.unwrap_or("?").to_owned();
        Ok(Arc::new(Self::validate(raw, &format!("built-in {id}"), PluginSource::Builtin)?))
    }

    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    pub fn source(&self) -> &PluginSource {
        &self.source
    }

    /// The library path, or `None` for a built-in.
    pub fn path(&self) -> Option<&Path> {
        match &self.source {
            PluginSource::Builtin => None,
            PluginSource::Library { path, .. } => Some(path),
        }
    }

    fn validate(raw: *const MpPluginEntry, origin: &str, source: PluginSource) -> Result<Plugin, LoadError> {
        let bad = |reason: String| LoadError::Descriptor { origin: origin.to_owned(), reason };
        if raw.is_null() {
            return Err(bad(format!("{ENTRY_SYMBOL}() returned NULL")));
        }
        // `struct_size` and `abi` are the first 8 bytes in every major
        // version: check the major before trusting anything else.
        let abi = unsafe { (raw as *const u8).add(4).cast::<MpVersion>().read_unaligned() };
        if abi.major != MP_ABI_MAJOR {
            return Err(LoadError::AbiMajor { origin: origin.to_owned(), plugin: abi, host: ABI_VERSION });
        }
        let entry = unsafe { read_sized(raw) }.map_err(|e| bad(e.to_string()))?;
        let text = |s: MpStr, field: &str| -> Result<String, LoadError> {
            if s.ptr.is_null() && s.len != 0 {
                return Err(bad(format!("`{field}` is NULL with length {}", s.len)));
            }
            unsafe { s.to_str() }.map(str::to_owned).map_err(|_| bad(format!("`{field}` is not UTF-8")))
        };
        let id = text(entry.id, "id")?;
        if !is_reverse_dns(&id) {
            return Err(bad(format!(
                "id `{id}` is not a reverse-DNS name such as org.example.transport.lora"
            )));
        }
        let name = text(entry.name, "name")?;
        let version = text(entry.version, "version")?;
        let vendor = text(entry.vendor, "vendor")?;
        let description = text(entry.description, "description")?;
        let known = MP_KIND_TRANSPORT | MP_KIND_ROUTING | MP_KIND_CONSENSUS;
        // Kinds from a newer minor are ignored, not refused.
        let kinds = entry.kinds & known;
        if kinds == 0 {
            return Err(bad(format!("kinds {:#x} names no kind this router knows", entry.kinds)));
        }
        let get_interface = entry.get_interface.ok_or_else(|| bad("get_interface is NULL".into()))?;

        let iface = |interface: &'static str, reason: &str| LoadError::Interface {
            origin: origin.to_owned(),
            interface,
            reason: reason.to_owned(),
        };
        let table = |interface: &'static str| -> Result<*const c_void, LoadError> {
            let p = unsafe { get_interface(MpStr::new(interface)) };
            if p.is_null() {
                Err(iface(interface, "declared in kinds but get_interface returned NULL"))
            } else {
                Ok(p)
            }
        };
        fn require<F>(
            f: Option<F>,
            interface: &'static str,
            name: &str,
            err: impl Fn(&'static str, &str) -> LoadError,
        ) -> Result<(), LoadError> {
            f.map(|_| ()).ok_or_else(|| err(interface, &format!("required function `{name}` is NULL")))
        }

        let mut transport_mode = None;
        let transport = if kinds & MP_KIND_TRANSPORT != 0 {
            let i = INTERFACE_TRANSPORT_V1;
            let t = unsafe { read_sized(table(i)? as *const MpTransportV1) }
                .map_err(|e| iface(i, &e.to_string()))?;
            require(t.create, i, "create", iface)?;
            require(t.destroy, i, "destroy", iface)?;
            require(t.start, i, "start", iface)?;
            require(t.stop, i, "stop", iface)?;
            require(t.send, i, "send", iface)?;
            transport_mode = Some(match t.flags & (MP_TRANSPORT_POLL_FD | MP_TRANSPORT_OWN_THREAD) {
                MP_TRANSPORT_POLL_FD => {
                    require(t.on_fd, i, "on_fd (required in POLL_FD mode)", iface)?;
                    TransportMode::PollFd
                }
                MP_TRANSPORT_OWN_THREAD => TransportMode::OwnThread,
                _ => {
                    return Err(iface(
                        i,
                        "flags must set exactly one of MP_TRANSPORT_POLL_FD and MP_TRANSPORT_OWN_THREAD",
                    ));
                }
            });
            Some(t)
        } else {
            None
        };
        let routing = if kinds & MP_KIND_ROUTING != 0 {
            let i = INTERFACE_ROUTING_V1;
            let t = unsafe { read_sized(table(i)? as *const MpRoutingV1) }
                .map_err(|e| iface(i, &e.to_string()))?;
            require(t.create, i, "create", iface)?;
            require(t.destroy, i, "destroy", iface)?;
            require(t.on_contact, i, "on_contact", iface)?;
            require(t.decide, i, "decide", iface)?;
            Some(t)
        } else {
            None
        };
        let consensus = if kinds & MP_KIND_CONSENSUS != 0 {
            let i = INTERFACE_CONSENSUS_V1;
            let t = unsafe { read_sized(table(i)? as *const MpConsensusV1) }
                .map_err(|e| iface(i, &e.to_string()))?;
            require(t.create, i, "create", iface)?;
            require(t.destroy, i, "destroy", iface)?;
            require(t.on_bundle, i, "on_bundle", iface)?;
            Some(t)
        } else {
            None
        };

        Ok(Plugin {
            descriptor: Descriptor {
                id,
                name,
                version,
                vendor,
                description,
                abi: entry.abi,
                kinds,
                transport_mode,
            },
            source,
            transport,
            routing,
            consensus,
        })
    }

    fn label(&self, kind: &'static str, name: &str) -> InstanceLabel {
        InstanceLabel { kind, name: name.to_owned(), plugin_id: self.descriptor.id.clone() }
    }

    /// Creates a transport instance named `name` from its JSON config.
    pub fn create_transport(
        self: &Arc<Self>,
        name: &str,
        config_json: &[u8],
        services: Arc<dyn HostServices>,
        events: Arc<dyn TransportEvents>,
    ) -> Result<Box<dyn Transport>, CallError> {
        let vtable = self.transport.ok_or(CallError::Unsupported { what: "transport interface" })?;
        let mode = self.descriptor.transport_mode.unwrap_or(TransportMode::PollFd);
        let ctx = InstanceCtx::create(self.label("transport", name), services, Some(events));
        let create = vtable.create.ok_or(CallError::Unsupported { what: "create" })?;
        let core = Core::create(self.clone(), ctx, vtable.destroy, |out| unsafe {
            create(&(*ctx).host, &(*ctx).transport_host, MpBytes::new(config_json), out)
        })?;
        Ok(Box::new(FfiTransport { core, vtable, mode }))
    }

    /// Creates a routing instance.
    pub fn create_routing(
        self: &Arc<Self>,
        name: &str,
        config_json: &[u8],
        services: Arc<dyn HostServices>,
    ) -> Result<Box<dyn Routing>, CallError> {
        let vtable = self.routing.ok_or(CallError::Unsupported { what: "routing interface" })?;
        let ctx = InstanceCtx::create(self.label("routing", name), services, None);
        let create = vtable.create.ok_or(CallError::Unsupported { what: "create" })?;
        let core = Core::create(self.clone(), ctx, vtable.destroy, |out| unsafe {
            create(&(*ctx).host, &(*ctx).routing_host, MpBytes::new(config_json), out)
        })?;
        Ok(Box::new(FfiRouting::new(core, vtable)))
    }

    /// Creates a consensus instance; `kv` is lent for `kv_open` during create.
    pub fn create_consensus(
        self: &Arc<Self>,
        name: &str,
        config_json: &[u8],
        services: Arc<dyn HostServices>,
        kv: &mut dyn KvStore,
    ) -> Result<Box<dyn Consensus>, CallError> {
        let vtable = self.consensus.ok_or(CallError::Unsupported { what: "consensus interface" })?;
        let ctx = InstanceCtx::create(self.label("consensus", name), services, None);
        let create = vtable.create.ok_or(CallError::Unsupported { what: "create" })?;
        let core = {
            let _loan = unsafe { &*ctx }.lend_kv(kv);
            Core::create(self.clone(), ctx, vtable.destroy, |out| unsafe {
                create(&(*ctx).host, &(*ctx).consensus_host, MpBytes::new(config_json), out)
            })?
        };
        Ok(Box::new(FfiConsensus { core, vtable }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_dns_ids() {
        assert!(is_reverse_dns("org.meshpay.transport.udp"));
        assert!(is_reverse_dns("com.vendor_x.lora-2"));
        for bad in ["udp", "", "org..x", ".org.x", "org.x.", "org.-x", "Org Meshpay.x"] {
            assert!(!is_reverse_dns(bad), "{bad}");
        }
    }
}
