//! The extension settings.
