//! UDP transport plugin: neighbour discovery by beacons, fragmentation, timeouts.
