//! rtnetlink (placeholder)
