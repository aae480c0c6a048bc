//! host-gw backend: a route to each peer host's subnet via that peer's public address.
