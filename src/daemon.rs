//! `weft daemon`: serves Docker's remote plugin protocol and reconciles state at start.
