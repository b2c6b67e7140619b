//! Bundle wire format after BPv7 (RFC 9171): zero-copy views, Repr structs, endpoints, content ids.
