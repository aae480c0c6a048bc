//! Docker's remote plugin protocol as it travels: the request and response bodies of
//! `Plugin.Activate`, `NetworkDriver.*` and `IpamDriver.*` (libnetwork's `drivers/remote/api` and
//! `ipams/remote/api`). Field names are Docker's, spelled as dockerd sends them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Free-form options (`map[string]interface{}` in Go); `null` reads as empty.
pub type Options = Option<Map<String, Value>>;

/// One subnet of `CreateNetwork`, as Docker's IPAM chose it (CIDR strings).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpamData {
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    #[serde(rename = "Pool")]
    pub pool: String,
    #[serde(rename = "Gateway", default)]
    pub gateway: Option<String>,
    #[serde(rename = "AuxAddresses", default)]
    pub aux_addresses: Option<Map<String, Value>>,
}

/// `NetworkDriver.CreateNetwork`: Docker's network id, options and the subnets its IPAM chose.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateNetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "Options", default)]
    pub options: Options,
    #[serde(rename = "IPv4Data", default)]
    pub ipv4_data: Option<Vec<IpamData>>,
    #[serde(rename = "IPv6Data", default)]
    pub ipv6_data: Option<Vec<IpamData>>,
}

/// `DeleteNetwork`, `FreeNetwork`.
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// `AllocateNetwork` (swarm scope only; weft is local scope and answers it for completeness).
#[derive(Debug, Clone, Deserialize)]
pub struct AllocateNetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// `EndpointOperInfo`, `DeleteEndpoint`, `Leave`, `RevokeExternalConnectivity`.
#[derive(Debug, Clone, Deserialize)]
pub struct EndpointRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// The addresses and MAC Docker's IPAM gave an endpoint (CIDR strings; empty when none).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndpointInterface {
    #[serde(rename = "Address", default)]
    pub address: String,
    #[serde(rename = "AddressIPv6", default)]
    pub address_ipv6: String,
    #[serde(rename = "MacAddress", default)]
    pub mac_address: String,
}

/// `NetworkDriver.CreateEndpoint`.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateEndpointRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Interface", default)]
    pub interface: Option<EndpointInterface>,
    #[serde(rename = "Options", default)]
    pub options: Options,
}

/// `NetworkDriver.Join`: the sandbox is Docker's to configure; its key is for logs only.
#[derive(Debug, Clone, Deserialize)]
pub struct JoinRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "SandboxKey", default)]
    pub sandbox_key: String,
    #[serde(rename = "Options", default)]
    pub options: Options,
}

/// `NetworkDriver.ProgramExternalConnectivity`: the port bindings to publish.
#[derive(Debug, Clone, Deserialize)]
pub struct ProgramExternalConnectivityRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Options", default)]
    pub options: Options,
}

/// Where Docker finds the container side of the veth and what it renames it to.
#[derive(Debug, Clone, Serialize)]
pub struct InterfaceName {
    #[serde(rename = "SrcName")]
    pub src_name: String,
    #[serde(rename = "DstPrefix")]
    pub dst_prefix: String,
}

/// `RouteType` 0: via `NextHop`; 1: connected (on-link).
#[derive(Debug, Clone, Serialize)]
pub struct StaticRoute {
    #[serde(rename = "Destination")]
    pub destination: String,
    #[serde(rename = "RouteType")]
    pub route_type: u8,
    #[serde(rename = "NextHop", skip_serializing_if = "String::is_empty")]
    pub next_hop: String,
}

/// The answer to `Join`: the interface Docker moves into the sandbox and its gateways.
#[derive(Debug, Clone, Serialize)]
pub struct JoinResponse {
    #[serde(rename = "InterfaceName")]
    pub interface_name: InterfaceName,
    #[serde(rename = "Gateway", skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "String::is_empty")]
    pub gateway_ipv6: String,
    #[serde(rename = "StaticRoutes", skip_serializing_if = "Vec::is_empty")]
    pub static_routes: Vec<StaticRoute>,
    #[serde(rename = "DisableGatewayService")]
    pub disable_gateway_service: bool,
}

/// One element of `com.docker.network.portmap` (libnetwork's `types.PortBinding`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// IANA protocol number: 6 tcp, 17 udp, 132 sctp.
    #[serde(rename = "Proto")]
    pub proto: u8,
    /// Container address (empty in requests).
    #[serde(rename = "IP", default)]
    pub ip: String,
    /// Container port.
    #[serde(rename = "Port")]
    pub port: u16,
    /// Empty = every host address.
    #[serde(rename = "HostIP", default)]
    pub host_ip: String,
    /// 0 = any free port.
    #[serde(rename = "HostPort", default)]
    pub host_port: u16,
    /// 0 = same as `HostPort`.
    #[serde(rename = "HostPortEnd", default)]
    pub host_port_end: u16,
}

/// `IpamDriver.RequestPool`: an explicit subnet (`Pool`), a range in it (`SubPool`), or neither.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestPoolRequest {
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    #[serde(rename = "Pool", default)]
    pub pool: String,
    #[serde(rename = "SubPool", default)]
    pub sub_pool: String,
    #[serde(rename = "Options", default)]
    pub options: Option<Map<String, Value>>,
    #[serde(rename = "V6", default)]
    pub v6: bool,
}

/// `IpamDriver.ReleasePool`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReleasePoolRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `IpamDriver.RequestAddress`: a given address or any; `Options` says if it is the gateway.
#[derive(Debug, Clone, Deserialize)]
pub struct RequestAddressRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(rename = "Address", default)]
    pub address: String,
    #[serde(rename = "Options", default)]
    pub options: Option<Map<String, Value>>,
}

/// `IpamDriver.ReleaseAddress`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseAddressRequest {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(rename = "Address")]
    pub address: String,
}
