//! Placeholder: filled in by the claims work.
