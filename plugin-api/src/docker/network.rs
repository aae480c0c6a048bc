//! NetworkDriver handlers: Docker's network and endpoint lifecycle mapped onto the engine.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Map, Value};
use tracing::{info, warn};
use weft_drivers::{MacAddr, Sandbox, SubnetInfo};
use weft_engine::{
    AddressRequest, EndpointRequest as EngineEndpointRequest, EngineError, IpamRequest,
    NetworkRequest, Origin,
};

use super::api::{DockerApi, Method};
use super::error::DockerError;
use super::options::{self, CLUSTER, ENABLE_IPV6, GENERIC, INTERNAL, PORTMAP};
use super::wire::{
    CreateEndpointRequest, CreateNetworkRequest, EndpointRequest, InterfaceName, IpamData,
    JoinRequest, JoinResponse, NetworkRequest as WireNetworkRequest,
    ProgramExternalConnectivityRequest, StaticRoute,
};

/// What Docker renames the container side to (`eth0`, `eth1`, … in join order).
const DST_PREFIX: &str = "eth";

/// Docker never tells a driver the network's name: weft names the record after the id.
pub fn network_name(network_id: &str) -> String {
    format!("docker-{}", &network_id[..network_id.len().min(12)])
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

impl DockerApi {
    pub(super) fn create_network(&self, req: CreateNetworkRequest) -> Result<Value, DockerError> {
        let method = Method::CreateNetwork.name();
        let opts = req.options.clone().unwrap_or_default();
        let generic = options::string_map(opts.get(GENERIC))
            .map_err(|e| DockerError::bad(method, format!("option {GENERIC}: {e}")))?;
        let enable_ipv6 =
            options::flag(&opts, ENABLE_IPV6).map_err(|e| DockerError::bad(method, e))?;
        let internal = options::flag(&opts, INTERNAL).map_err(|e| DockerError::bad(method, e))?;
        let driver = options::driver_of(&generic).map_err(|e| DockerError::bad(method, e))?;
        let mut subnets = Vec::new();
        for data in req
            .ipv4_data
            .iter()
            .flatten()
            .chain(req.ipv6_data.iter().flatten())
        {
            subnets.push(subnet_info(data).map_err(|e| DockerError::bad(method, e))?);
        }
        if subnets.is_empty() {
            return Err(DockerError::bad(method, "IPv4Data holds no subnet"));
        }
        if let Some(cluster) = generic.get(CLUSTER) {
            return self.create_cluster_alias(&req, cluster, &generic, internal, &subnets);
        }
        if driver == "routed" {
            // Containers route through 169.254.1.1; the gateway Docker's IPAM reserved stays
            // unused rather than being put on the host.
            for s in &mut subnets {
                s.gateway = None;
            }
        }
        let record = self.controller.create_network(NetworkRequest {
            name: network_name(&req.network_id),
            id: Some(req.network_id.clone()),
            driver: driver.to_string(),
            internal,
            enable_ipv6,
            ipam: IpamRequest::Given(subnets),
            options: generic,
            labels: BTreeMap::new(),
            origin: Origin::Docker,
        })?;
        let pinned = self.controller.pin_endpoints(&record.network.id);
        if let Err(e) = pinned
            .map_err(DockerError::from)
            .and_then(|()| self.injected(Method::CreateNetwork))
        {
            self.controller.delete_network(&record.network.id)?;
            self.controller.unpin_endpoints(&record.network.id)?;
            return Err(e);
        }
        info!(network = %short(&req.network_id), name = %record.network.name, "docker network created");
        Ok(json!({}))
    }

    /// Removes the network, or only the alias when it is one of a cluster network.
    pub(super) fn delete_network(&self, req: WireNetworkRequest) -> Result<Value, DockerError> {
        self.leaving.finish_all();
        self.controller.delete_network(&req.network_id)?;
        self.controller.unpin_endpoints(&req.network_id)?;
        self.pending().retain(|_, (net, _)| *net != req.network_id);
        info!(network = %short(&req.network_id), "docker network removed");
        Ok(json!({}))
    }

    pub(super) fn create_endpoint(&self, req: CreateEndpointRequest) -> Result<Value, DockerError> {
        let method = Method::CreateEndpoint.name();
        let iface = req.interface.unwrap_or_default();
        let mut addresses = Vec::new();
        for (what, s) in [
            ("Interface.Address", &iface.address),
            ("Interface.AddressIPv6", &iface.address_ipv6),
        ] {
            if !s.is_empty() {
                addresses.push(options::cidr(what, s).map_err(|e| DockerError::bad(method, e))?);
            }
        }
        if addresses.is_empty() {
            return Err(DockerError::bad(
                method,
                "the interface has no address; weft needs the addresses Docker's IPAM allocated",
            ));
        }
        let mac = if iface.mac_address.is_empty() {
            None
        } else {
            Some(
                iface
                    .mac_address
                    .parse::<MacAddr>()
                    .map_err(|e| DockerError::bad(method, e))?,
            )
        };
        let request = EngineEndpointRequest {
            addresses: AddressRequest::Given(addresses.clone()),
            mac,
            ifname: format!("{DST_PREFIX}0"),
            options: BTreeMap::new(),
            owner: "docker".into(),
        };
        self.controller
            .check_endpoint(&req.network_id, &req.endpoint_id, &request)?;
        self.injected(Method::CreateEndpoint)?;
        self.pending()
            .insert(req.endpoint_id.clone(), (req.network_id.clone(), request));
        info!(network = %short(&req.network_id), endpoint = %short(&req.endpoint_id),
            ?addresses, "docker endpoint created");
        // Docker refuses a reply that restates addresses it gave; the MAC it gave is used as is.
        Ok(json!({}))
    }

    pub(super) fn endpoint_oper_info(&self, req: EndpointRequest) -> Result<Value, DockerError> {
        if self.is_pending(&req) {
            return Ok(json!({ "Value": {} }));
        }
        let (_, ep) = self
            .controller
            .endpoint(&req.network_id, &req.endpoint_id)?;
        let mut value = Map::new();
        if !ep.endpoint.ports.is_empty() {
            let container = ep.endpoint.v4().map(IpAddr::V4);
            value.insert(
                PORTMAP.to_string(),
                serde_json::to_value(options::bindings_of(&ep.endpoint.ports, container))
                    .expect("bindings serialize"),
            );
        }
        Ok(json!({ "Value": value }))
    }

    pub(super) fn delete_endpoint(&self, req: EndpointRequest) -> Result<Value, DockerError> {
        self.pending().remove(&req.endpoint_id);
        self.leaving.finish(&req.endpoint_id);
        tolerate_gone_endpoint(
            self.controller
                .delete_endpoint(&req.network_id, &req.endpoint_id),
            "DeleteEndpoint",
        )?;
        info!(network = %short(&req.network_id), endpoint = %short(&req.endpoint_id), "docker endpoint removed");
        Ok(json!({}))
    }

    pub(super) fn join(&self, req: JoinRequest) -> Result<Value, DockerError> {
        let pending = self.pending().get(&req.endpoint_id).cloned();
        let info = match pending {
            Some((network, request)) if network == req.network_id => {
                let info = self.controller.create_and_join(
                    &req.network_id,
                    &req.endpoint_id,
                    &request,
                    Sandbox::Delegated,
                )?;
                self.pending().remove(&req.endpoint_id);
                info
            }
            _ => self
                .controller
                .join(&req.network_id, &req.endpoint_id, Sandbox::Delegated)?,
        };
        let result = self.injected(Method::Join).and_then(|()| {
            let src_name = info.src_name.clone().ok_or_else(|| {
                DockerError::Engine(EngineError::Invalid(format!(
                    "the network driver left no interface for Docker to move into sandbox {}",
                    req.sandbox_key
                )))
            })?;
            Ok(JoinResponse {
                interface_name: InterfaceName {
                    src_name,
                    dst_prefix: DST_PREFIX.into(),
                },
                gateway: info.gateway_v4.map(|g| g.to_string()).unwrap_or_default(),
                gateway_ipv6: info.gateway_v6.map(|g| g.to_string()).unwrap_or_default(),
                static_routes: routes_the_sandbox_lacks(&req.sandbox_key, &info.static_routes)
                    .iter()
                    .map(|r| StaticRoute {
                        destination: r.destination.to_string(),
                        route_type: if r.next_hop.is_some() { 0 } else { 1 },
                        next_hop: r.next_hop.map(|h| h.to_string()).unwrap_or_default(),
                    })
                    .collect(),
                disable_gateway_service: false,
            })
        });
        match result {
            Ok(resp) => {
                info!(network = %short(&req.network_id), endpoint = %short(&req.endpoint_id),
                    sandbox = %req.sandbox_key, "docker endpoint joined");
                Ok(serde_json::to_value(resp).expect("join response serializes"))
            }
            Err(e) => {
                // Docker answers a failed Join with DeleteEndpoint, but the links must not wait
                // for that: take them down now.
                if let Err(undo) = self.controller.leave(&req.network_id, &req.endpoint_id) {
                    warn!(endpoint = %short(&req.endpoint_id), error = %undo, "undoing a failed join");
                }
                Err(e)
            }
        }
    }

    pub(super) fn leave(&self, req: EndpointRequest) -> Result<Value, DockerError> {
        if self.is_pending(&req) {
            return Ok(json!({}));
        }
        // Looked up now, so an unknown network is refused as before; the record itself goes
        // with the DeleteEndpoint that follows.
        match self.controller.endpoint(&req.network_id, &req.endpoint_id) {
            Ok(_) => {
                let controller = std::sync::Arc::clone(&self.controller);
                let (network, endpoint) = (req.network_id.clone(), req.endpoint_id.clone());
                self.leaving.start(&req.endpoint_id, move || {
                    if let Err(e) = controller.leave_kernel(&network, &endpoint) {
                        warn!(endpoint = %short(&endpoint), error = %e,
                            "removing the links of a Docker Leave; DeleteEndpoint tries again");
                    }
                });
            }
            Err(e) => tolerate_gone_endpoint(Err(e), "Leave")?,
        }
        info!(network = %short(&req.network_id), endpoint = %short(&req.endpoint_id), "docker endpoint left");
        Ok(json!({}))
    }

    pub(super) fn program_external(
        &self,
        req: ProgramExternalConnectivityRequest,
    ) -> Result<Value, DockerError> {
        let method = Method::ProgramExternalConnectivity.name();
        let opts = req.options.unwrap_or_default();
        let specs = options::port_bindings(&opts)
            .and_then(|b| options::port_specs(&b))
            .map_err(|e| DockerError::bad(method, e))?;
        // Bound first: a guard in an `if let` scrutinee would live through the block.
        let pending = self.pending().get(&req.endpoint_id).cloned();
        if let Some((network, request)) = pending {
            if specs.is_empty() {
                return Ok(json!({}));
            }
            // Ports before the join: the endpoint needs its record to hold them.
            self.controller
                .create_endpoint(&network, &req.endpoint_id, &request)?;
            self.pending().remove(&req.endpoint_id);
        }
        if specs.is_empty() && self.nothing_published(&req.network_id, &req.endpoint_id)? {
            // Docker calls this for every container, mostly without ports: skipping the store
            // write it would cost keeps `docker run` fast.
            return Ok(json!({}));
        }
        let ep = self
            .controller
            .program_external(&req.network_id, &req.endpoint_id, &specs)?;
        if self.faulty(Method::ProgramExternalConnectivity) {
            self.controller
                .revoke_external(&req.network_id, &req.endpoint_id)?;
            return self
                .injected(Method::ProgramExternalConnectivity)
                .map(|()| json!({}));
        }
        if !ep.endpoint.ports.is_empty() {
            info!(network = %short(&req.network_id), endpoint = %short(&req.endpoint_id),
                ports = ?ep.endpoint.ports, "docker endpoint ports published");
        }
        Ok(json!({}))
    }

    pub(super) fn revoke_external(&self, req: EndpointRequest) -> Result<Value, DockerError> {
        if self.is_pending(&req) {
            return Ok(json!({}));
        }
        let result = self
            .nothing_published(&req.network_id, &req.endpoint_id)
            .and_then(|idle| match idle {
                true => Ok(()),
                false => self
                    .controller
                    .revoke_external(&req.network_id, &req.endpoint_id),
            });
        tolerate_gone_endpoint(result, "RevokeExternalConnectivity")?;
        Ok(json!({}))
    }

    /// Whether Docker created the endpoint and has not joined it yet (nothing recorded).
    fn is_pending(&self, req: &EndpointRequest) -> bool {
        self.pending()
            .get(&req.endpoint_id)
            .is_some_and(|(net, _)| *net == req.network_id)
    }

    /// Whether the endpoint has no published ports (a read: no lock, no write).
    fn nothing_published(&self, network: &str, endpoint: &str) -> Result<bool, EngineError> {
        let (_, ep) = self.controller.endpoint(network, endpoint)?;
        Ok(!ep.published && ep.endpoint.ports.is_empty())
    }
}

/// Teardown of an endpoint that is already gone has nothing left to do: Docker repeats these
/// calls when it rolls back or cleans up after a restart. An unknown network is still an error.
fn tolerate_gone_endpoint(result: Result<(), EngineError>, what: &str) -> Result<(), DockerError> {
    match result {
        Err(EngineError::NotFound {
            kind: "endpoint",
            name,
            ..
        }) => {
            info!(endpoint = %short(&name), "{what} of an endpoint weft does not have: nothing to do");
            Ok(())
        }
        other => Ok(other?),
    }
}

/// One `IPv4Data`/`IPv6Data` element as a subnet of the network.
fn subnet_info(data: &IpamData) -> Result<SubnetInfo, String> {
    let subnet = options::cidr("Pool", &data.pool)?.trunc();
    let gateway = match data.gateway.as_deref() {
        None | Some("") => None,
        Some(g) => {
            let gw = options::cidr("Gateway", g)?;
            // The bridge carries the gateway with the subnet's prefix length.
            Some(IpNet::new(gw.addr(), subnet.prefix_len()).map_err(|e| e.to_string())?)
        }
    };
    if let Some(gw) = gateway {
        if !subnet.contains(&gw.addr()) {
            return Err(format!("gateway {} is outside pool {subnet}", gw.addr()));
        }
    }
    Ok(SubnetInfo {
        subnet,
        gateway,
        ip_range: None,
        pool_id: String::new(),
    })
}

/// The static routes of a Join answer that the sandbox does not have yet. Docker adds each one
/// itself with a plain netlink add, which fails with EEXIST when an earlier endpoint of the
/// same container already installed an identical prefix: the routed driver's on-link
/// `169.254.1.1/32` is the same on every routed network, so `docker network connect` of a
/// second routed network failed. An existing route to that prefix already takes the
/// container there (the host answers for the gateway on every routed veth), so it is left out
/// of the answer. Only the driver's contract cannot do this: a delegated join does not tell
/// the driver which sandbox it is for. If the sandbox cannot be read, the answer is unchanged.
fn routes_the_sandbox_lacks(
    sandbox_key: &str,
    routes: &[weft_drivers::driver::StaticRoute],
) -> Vec<weft_drivers::driver::StaticRoute> {
    if routes.is_empty() {
        return Vec::new();
    }
    let existing = weft_drivers::netns::Netns::open(std::path::Path::new(sandbox_key))
        .and_then(|ns| weft_drivers::netlink::Netlink::open_in(&ns))
        .and_then(|mut nl| nl.routes(None, Some(254)));
    match existing {
        Ok(existing) => routes
            .iter()
            .filter(|r| !existing.iter().any(|e| e.destination == r.destination))
            .cloned()
            .collect(),
        Err(e) => {
            warn!(sandbox = %sandbox_key, error = %e, "cannot read the sandbox's routes; answering every static route");
            routes.to_vec()
        }
    }
}
