//! Bundle and block processing control flags (RFC 9171 §4.2.3, §4.2.4).
//!
//! Both are carried as plain `u64` bit sets: unrecognised bits MUST be ignored (and so are kept
//! as they are, never refused or cleared).

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};

macro_rules! flag_set {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub u64);

        impl $name {
            pub const fn empty() -> Self {
                $name(0)
            }
            pub const fn bits(self) -> u64 {
                self.0
            }
            /// Whether every flag of `other` is set.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
            /// Whether any flag of `other` is set.
            pub const fn intersects(self, other: Self) -> bool {
                self.0 & other.0 != 0
            }
            #[must_use]
            pub const fn without(self, other: Self) -> Self {
                $name(self.0 & !other.0)
            }
        }

        impl BitOr for $name {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                $name(self.0 | rhs.0)
            }
        }

        impl BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: Self) {
                self.0 |= rhs.0;
            }
        }

        impl BitAnd for $name {
            type Output = Self;
            fn bitand(self, rhs: Self) -> Self {
                $name(self.0 & rhs.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:#x})", stringify!($name), self.0)
            }
        }
    };
}

flag_set!(
    /// Bundle processing control flags, in the primary block.
    BundleFlags
);

impl BundleFlags {
    /// Bit 0: the bundle is a fragment. meshpay refuses fragments.
    pub const IS_FRAGMENT: Self = BundleFlags(0x01);
    /// Bit 1: the payload is an administrative record.
    pub const ADMIN_RECORD: Self = BundleFlags(0x02);
    /// Bit 2: the bundle must not be fragmented.
    pub const MUST_NOT_FRAGMENT: Self = BundleFlags(0x04);
    /// Bit 5: acknowledgement by the application is requested.
    pub const ACK_REQUESTED: Self = BundleFlags(0x20);
    /// Bit 6: status time requested in reports.
    pub const STATUS_TIME_REQUESTED: Self = BundleFlags(0x40);
    /// Bit 14: request reporting of reception.
    pub const REPORT_RECEPTION: Self = BundleFlags(0x4000);
    /// Bit 16: request reporting of forwarding.
    pub const REPORT_FORWARDING: Self = BundleFlags(0x1_0000);
    /// Bit 17: request reporting of delivery.
    pub const REPORT_DELIVERY: Self = BundleFlags(0x2_0000);
    /// Bit 18: request reporting of deletion.
    pub const REPORT_DELETION: Self = BundleFlags(0x4_0000);
    /// All four status report requests.
    pub const ANY_REPORT: Self = BundleFlags(0x4000 | 0x1_0000 | 0x2_0000 | 0x4_0000);
}

flag_set!(
    /// Block processing control flags, in each canonical block.
    BlockFlags
);

impl BlockFlags {
    /// Bit 0: replicate the block in every fragment.
    pub const REPLICATE: Self = BlockFlags(0x01);
    /// Bit 1: transmit a status report if the block can't be processed.
    pub const REPORT_IF_UNPROCESSABLE: Self = BlockFlags(0x02);
    /// Bit 2: delete the bundle if the block can't be processed.
    pub const DELETE_BUNDLE_IF_UNPROCESSABLE: Self = BlockFlags(0x04);
    /// Bit 4: discard the block if it can't be processed.
    pub const DISCARD_IF_UNPROCESSABLE: Self = BlockFlags(0x10);
}
