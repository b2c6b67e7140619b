//! Binary spray-and-wait routing plugin.
