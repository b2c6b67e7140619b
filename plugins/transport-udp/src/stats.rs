//! Counters of what an instance did and dropped, and two gauges. Logged (at
//! debug level) as one `stats: name=value ...` line on a beacon tick when
//! more than the beacon counters changed, and at info level when the
//! instance stops.

use crate::reassembly;
use crate::wire;

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Counters since the instance was created.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Stats {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl Stats {
            /// `name=value` for every counter, in declaration order.
            pub fn line(&self) -> String {
                let mut s = String::from("stats:");
                $( s.push_str(&format!(" {}={}", stringify!($name), self.$name)); )*
                s
            }
        }
    };
}

counters! {
    /// Datagrams received (after GRO splitting), valid or not.
    rx_datagrams,
    rx_beacons,
    /// Frames delivered to the router.
    rx_frames,
    tx_frames,
    tx_datagrams,
    /// GSO sends carrying more than one datagram.
    tx_trains,
    /// GRO receives carrying more than one datagram.
    rx_trains,
    tx_beacons,
    /// `send` refused with `MP_ERR_AGAIN` (queue full).
    tx_again,
    /// Sends that failed for good (the datagrams were dropped).
    tx_errors,
    /// Our own beacons, looped back (not a fault).
    own_beacons,
    /// Beacons of an up peer's instance from a second address (ignored).
    alias_beacons,
    // Drops, one counter per reason:
    drop_truncated,
    drop_bad_magic,
    drop_bad_version,
    drop_unknown_type,
    drop_bad_fragment,
    drop_bad_beacon,
    drop_too_large,
    drop_duplicate,
    drop_inconsistent,
    drop_no_room,
    /// Partial frames dropped for a newer one (budget).
    drop_evicted,
    /// Partial frames dropped after the timeout.
    drop_expired,
    /// From an interface not in `interfaces`, and not a static peer.
    drop_foreign,
    /// A new peer while the table was full.
    drop_peers_full,
    /// The router's queue was full.
    drop_deliver,
    /// Gauge: partial frames held for reassembly, at the last tick.
    partial_frames,
    /// Gauge: bytes reserved by them (bounded, see `reassembly::Limits`).
    partial_bytes,
}

impl Stats {
    pub fn wire_error(&mut self, e: wire::Error) {
        *match e {
            wire::Error::Truncated => &mut self.drop_truncated,
            wire::Error::BadMagic => &mut self.drop_bad_magic,
            wire::Error::BadVersion => &mut self.drop_bad_version,
            wire::Error::UnknownType => &mut self.drop_unknown_type,
            wire::Error::BadFragment => &mut self.drop_bad_fragment,
            wire::Error::BadBeacon => &mut self.drop_bad_beacon,
        } += 1;
    }

    pub fn reassembly_drop(&mut self, d: reassembly::Drop) {
        *match d {
            reassembly::Drop::TooLarge => &mut self.drop_too_large,
            reassembly::Drop::Duplicate => &mut self.drop_duplicate,
            reassembly::Drop::Inconsistent => &mut self.drop_inconsistent,
            reassembly::Drop::NoRoom => &mut self.drop_no_room,
        } += 1;
    }

    /// The counters without those that move on every beacon, to decide
    /// whether a stats line is worth logging (an idle link is quiet).
    pub fn without_beacons(&self) -> Stats {
        Stats { rx_datagrams: 0, rx_beacons: 0, tx_beacons: 0, own_beacons: 0, alias_beacons: 0, ..*self }
    }

    /// Every dropped datagram or frame, whatever the reason.
    pub fn drops(&self) -> u64 {
        self.drop_truncated
            + self.drop_bad_magic
            + self.drop_bad_version
            + self.drop_unknown_type
            + self.drop_bad_fragment
            + self.drop_bad_beacon
            + self.drop_too_large
            + self.drop_duplicate
            + self.drop_inconsistent
            + self.drop_no_room
            + self.drop_evicted
            + self.drop_expired
            + self.drop_foreign
            + self.drop_peers_full
            + self.drop_deliver
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_names_every_counter() {
        let mut s = Stats::default();
        s.wire_error(wire::Error::BadMagic);
        s.reassembly_drop(reassembly::Drop::Duplicate);
        s.drop_expired = 2;
        let line = s.line();
        assert!(line.starts_with("stats: rx_datagrams=0 "), "{line}");
        assert!(line.contains(" drop_bad_magic=1 ") && line.contains(" drop_duplicate=1 "), "{line}");
        assert_eq!(s.drops(), 4);
    }
}
