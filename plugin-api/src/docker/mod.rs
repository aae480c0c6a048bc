//! Docker's legacy remote plugin protocol: NetworkDriver and IpamDriver over HTTP on a unix socket.
