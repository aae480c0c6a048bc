//! Docker's legacy remote plugin protocol: NetworkDriver and IpamDriver over HTTP on a unix socket.
//!
//! dockerd finds the plugin by its socket, `/run/docker/plugins/weft.sock`, so networks are
//! made with `docker network create -d weft [--ipam-driver weft]`. Requests come without a
//! Content-Type and are parsed here; every reply is JSON, with `{"Err": "..."}` and a non-200
//! status on failure (the text dockerd shows the user).
//!
//! - [`wire`]: the request and response bodies as Docker spells them.
//! - [`options`]: Docker's option maps and port bindings in weft's terms.
//! - [`DockerApi`]: path and body in, status and JSON out (network and IPAM handlers).
//! - [`serve`]: the HTTP server on the socket with graceful shutdown.
//! - `cluster`: Docker networks that are this host's part of a cluster network
//!   (`-o weft.cluster=NAME`).

mod api;
mod cluster;
mod error;
mod ipam;
mod leaving;
mod network;
pub mod options;
mod server;
pub mod wire;

pub use api::{decode_body, DockerApi, HostPrefixes, Method, Reply};
pub use error::DockerError;
pub use network::network_name;
pub use server::{serve, SOCKET_PATH};

#[cfg(test)]
mod tests;
