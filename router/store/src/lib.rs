//! The node's LMDB environment: the bundle store and the plugins' tables.
