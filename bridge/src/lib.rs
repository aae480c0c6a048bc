//! The bridge driver: docker0-style bridge networks (veth pairs, gateway, masquerade, DNAT port publishing, ICC, isolation, internal networks, IPv6).
