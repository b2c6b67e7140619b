//! Epidemic routing plugin.
