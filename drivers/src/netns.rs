//! Network namespace handles: open by path, run code inside one, create new ones.
