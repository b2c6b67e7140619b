//! Why the plugin refuses something, and the error type of its core.

use meshpay_abi::sdk::{Level, PluginError};

/// Reasons for refusing an input. The `as_str` codes are stable: they appear
/// in `status` (refusal counters), in control replies and in logs. The
/// numeric codes travel in signed [`crate::wire::Refusal`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Reason {
    /// The payload or request does not parse.
    Malformed = 1,
    /// The message names another committee (other authorities or genesis).
    OtherCommittee = 2,
    /// A signature does not verify.
    BadSignature = 3,
    /// A key is not a valid point or is of small order.
    WeakKey = 4,
    /// Amount 0.
    ZeroAmount = 5,
    /// The sender has no account (never funded).
    UnknownAccount = 6,
    /// The sender's balance does not cover the amount.
    InsufficientBalance = 7,
    /// The order's sequence number is ahead of the account's next one.
    SequenceAhead = 8,
    /// The order's sequence number was already used by another certified order.
    SequenceUsed = 9,
    /// Another order holds this (account, sequence number) slot.
    DoubleSpend = 10,
    /// An amount or balance would overflow.
    Overflow = 11,
    /// Withdrawals need a reachable quorum (heartbeats), and there is none.
    NoQuorum = 12,
    /// A certificate without a quorum, with unknown or duplicate signers.
    BadCertificate = 13,
    /// A vote or acknowledgement for an order this node does not track.
    UnknownOrder = 14,
    /// The message or request is not for this node's role.
    WrongRole = 15,
    /// A signer is not in the committee.
    UnknownAuthority = 16,
    /// A withdrawal's expiry is outside the configured bounds.
    ExpiryOutOfRange = 17,
    /// A settlement claim by a node that is not the withdrawal's gateway.
    WrongGateway = 18,
    /// The withdrawal lock already expired: the funds went back.
    LockExpired = 19,
    /// Nothing with that name (control requests).
    NotFound = 20,
    /// A stale heartbeat (replayed or reordered).
    Stale = 21,
}

impl Reason {
    pub const ALL: [Reason; 21] = [
        Reason::Malformed,
        Reason::OtherCommittee,
        Reason::BadSignature,
        Reason::WeakKey,
        Reason::ZeroAmount,
        Reason::UnknownAccount,
        Reason::InsufficientBalance,
        Reason::SequenceAhead,
        Reason::SequenceUsed,
        Reason::DoubleSpend,
        Reason::Overflow,
        Reason::NoQuorum,
        Reason::BadCertificate,
        Reason::UnknownOrder,
        Reason::WrongRole,
        Reason::UnknownAuthority,
        Reason::ExpiryOutOfRange,
        Reason::WrongGateway,
        Reason::LockExpired,
        Reason::NotFound,
        Reason::Stale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::OtherCommittee => "other_committee",
            Reason::BadSignature => "bad_signature",
            Reason::WeakKey => "weak_key",
            Reason::ZeroAmount => "zero_amount",
            Reason::UnknownAccount => "unknown_account",
            Reason::InsufficientBalance => "insufficient_balance",
            Reason::SequenceAhead => "sequence_ahead",
            Reason::SequenceUsed => "sequence_used",
            Reason::DoubleSpend => "double_spend",
            Reason::Overflow => "overflow",
            Reason::NoQuorum => "no_quorum",
            Reason::BadCertificate => "bad_certificate",
            Reason::UnknownOrder => "unknown_order",
            Reason::WrongRole => "wrong_role",
            Reason::UnknownAuthority => "unknown_authority",
            Reason::ExpiryOutOfRange => "expiry_out_of_range",
            Reason::WrongGateway => "wrong_gateway",
            Reason::LockExpired => "lock_expired",
            Reason::NotFound => "not_found",
            Reason::Stale => "stale",
        }
    }

    pub fn from_code(code: u8) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| *r as u8 == code)
    }
}

impl core::fmt::Display for Reason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused input: the reason code and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub detail: String,
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// What the core's handlers return on failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The input is refused; the call's table writes must be rolled back.
    Refused(Refusal),
    /// The host failed us (store full, I/O): also rolled back.
    Host(PluginError),
}

impl Error {
    pub fn refused(reason: Reason, detail: impl Into<String>) -> Error {
        Error::Refused(Refusal { reason, detail: detail.into() })
    }

    /// The reason, for refusals.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Error::Refused(r) => Some(r.reason),
            Error::Host(_) => None,
        }
    }

    /// As the SDK wants it: refusals are `MP_ERR_INVALID` logged at warn
    /// level (a hostile or confused peer is not the router's error).
    pub fn into_plugin_error(self) -> PluginError {
        match self {
            Error::Refused(r) => PluginError::invalid(format!("refused: {r}")).at(Level::Warn),
            Error::Host(e) => e,
        }
    }
}

impl From<PluginError> for Error {
    fn from(e: PluginError) -> Self {
        Error::Host(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Refused(r) => r.fmt(f),
            Error::Host(e) => e.fmt(f),
        }
    }
}

/// Shorthand for a refusal result.
pub fn refuse<T>(reason: Reason, detail: impl Into<String>) -> Result<T, Error> {
    Err(Error::refused(reason, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r as u8), "{r}");
            assert_eq!(Reason::from_code(r as u8), Some(r));
        }
        assert_eq!(Reason::from_code(0), None);
    }
}
