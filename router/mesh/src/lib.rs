//! IEEE 802.11s mesh control over nl80211 (generic netlink, neli).
