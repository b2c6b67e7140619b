//! Errors of the nl80211 client, with kernel errnos turned into what an
//! operator can act on ("driver cannot do mesh point", "needs
//! CAP_NET_ADMIN", ...).

use std::io;

use crate::msg::RequestError;
use crate::wire::WireError;

/// What kind of failure, for callers that branch on it (the daemon treats
/// `AlreadyJoined` on attach as success, for example).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// ENODEV / ENOENT / ENXIO: no such phy, interface or station.
    NoDevice,
    /// EOPNOTSUPP: the driver cannot do it (e.g. no mesh point support).
    NotSupported,
    /// EPERM / EACCES: needs CAP_NET_ADMIN.
    PermissionDenied,
    /// EALREADY: already joined (or already in that state).
    AlreadyJoined,
    /// ENOTCONN: not joined.
    NotJoined,
    /// EBUSY: device busy (in use in another mode, or on another channel).
    Busy,
    /// EINVAL / ERANGE: the kernel refused a parameter.
    InvalidArgument,
    /// ENETDOWN: the interface is down.
    InterfaceDown,
    /// ENFILE / EEXIST: name taken.
    Exists,
    /// nl80211 itself is missing (cfg80211 not loaded).
    NoNl80211,
    /// Anything else: I/O, malformed replies, other errnos.
    Other,
}

/// An nl80211 client error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused a request.
    #[error("{op}: {}{}", describe(*errno), message.as_ref().map(|m| format!(" (kernel: {m})")).unwrap_or_default())]
    Kernel {
        /// What we were doing ("join mesh").
        op: &'static str,
        /// Positive errno.
        errno: i32,
        /// The kernel's extended-ack message, if any.
        message: Option<String>,
    },
    /// The generic netlink family "nl80211" does not exist.
    #[error("nl80211 is not available: is the cfg80211 module loaded and is there a wireless device?")]
    NoNl80211,
    /// A phy name or index that matches no wiphy.
    #[error("no such phy {0:?}")]
    NoSuchPhy(String),
    /// An interface name unknown in this network namespace.
    #[error("no such interface {0:?}")]
    NoSuchInterface(String),
    /// A phy that cannot create mesh point interfaces.
    #[error("phy {0} cannot do mesh point (its driver does not list the mesh point interface type)")]
    MeshNotSupported(String),
    /// Socket trouble.
    #[error("{op}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The I/O error.
        source: io::Error,
    },
    /// The kernel sent something we cannot parse.
    #[error("{op}: malformed reply: {source}")]
    Wire {
        /// What we were doing.
        op: &'static str,
        /// Where it broke.
        source: WireError,
    },
    /// Parameters that cannot be encoded.
    #[error(transparent)]
    Request(#[from] RequestError),
}

/// Result of the client.
pub type Result<T> = std::result::Result<T, Error>;

/// A short explanation of an errno in nl80211 terms.
pub fn describe(errno: i32) -> String {
    match errno {
        libc::ENODEV => "no such phy/interface (ENODEV)".into(),
        libc::ENOENT => "no such station or object (ENOENT)".into(),
        libc::EOPNOTSUPP => "not supported by the driver: it cannot do mesh point (EOPNOTSUPP)".into(),
        libc::EPERM | libc::EACCES => "needs CAP_NET_ADMIN (run as root or grant the capability)".into(),
        libc::EALREADY => "already joined (EALREADY)".into(),
        libc::ENOTCONN => "not joined (ENOTCONN)".into(),
        libc::EBUSY => "device busy: in use in another mode or on another channel (EBUSY)".into(),
        libc::EINVAL => "invalid argument (EINVAL)".into(),
        libc::ERANGE => "value out of range (ERANGE)".into(),
        libc::ENETDOWN => "interface is down: bring it up first (ENETDOWN)".into(),
        libc::ENOLINK => "link not established (ENOLINK)".into(),
        libc::EEXIST | libc::ENFILE => "name already in use (EEXIST/ENFILE)".into(),
        e => format!("{} (errno {e})", io::Error::from_raw_os_error(e)),
    }
}

impl Error {
    /// The kind, for branching.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Kernel { errno, .. } => match *errno {
                libc::ENODEV | libc::ENOENT | libc::ENXIO => ErrorKind::NoDevice,
                libc::EOPNOTSUPP => ErrorKind::NotSupported,
                libc::EPERM | libc::EACCES => ErrorKind::PermissionDenied,
                libc::EALREADY => ErrorKind::AlreadyJoined,
                libc::ENOTCONN => ErrorKind::NotJoined,
                libc::EBUSY => ErrorKind::Busy,
                libc::EINVAL | libc::ERANGE => ErrorKind::InvalidArgument,
                libc::ENETDOWN => ErrorKind::InterfaceDown,
                libc::EEXIST | libc::ENFILE => ErrorKind::Exists,
                _ => ErrorKind::Other,
            },
            Error::NoNl80211 => ErrorKind::NoNl80211,
            Error::NoSuchPhy(_) | Error::NoSuchInterface(_) => ErrorKind::NoDevice,
            Error::MeshNotSupported(_) => ErrorKind::NotSupported,
            Error::Request(_) => ErrorKind::InvalidArgument,
            Error::Io { .. } | Error::Wire { .. } => ErrorKind::Other,
        }
    }

    /// The kernel errno, if the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let e = Error::Kernel { op: "create interface", errno: libc::EPERM, message: None };
        assert_eq!(
            e.to_string(),
            "create interface: needs CAP_NET_ADMIN (run as root or grant the capability)"
        );
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        let e = Error::Kernel { op: "join mesh", errno: libc::EALREADY, message: Some("x".into()) };
        assert_eq!(e.to_string(), "join mesh: already joined (EALREADY) (kernel: x)");
        assert_eq!(e.kind(), ErrorKind::AlreadyJoined);
        let e = Error::Kernel { op: "create interface", errno: libc::EOPNOTSUPP, message: None };
        assert!(e.to_string().contains("cannot do mesh point"));
        assert_eq!(Error::Kernel { op: "x", errno: libc::ENODEV, message: None }.kind(), ErrorKind::NoDevice);
        assert_eq!(Error::Kernel { op: "x", errno: libc::EBUSY, message: None }.kind(), ErrorKind::Busy);
    }
}
