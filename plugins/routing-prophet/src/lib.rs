//! PRoPHET routing plugin (RFC 6693).
