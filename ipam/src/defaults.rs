//! Docker's default address pools and this host's IPv6 ULA pools (pure logic).
//!
//! IPv4: 172.17.0.0/16, then 172.18.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 split into /20s.
//! IPv6: a random ULA /48 (fdXX:XXXX:XXXX::/48, RFC 4193), made once per host and stored, split
//! into /64s.
