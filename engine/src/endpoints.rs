//! Endpoints: created on a network, joined to a sandbox, published, and taken down again. The
//! granular steps are Docker's; `connect` and `disconnect` run them as one operation for the
//! CLI and CNI.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use tracing::{info, warn};
use weft_drivers::driver::JoinInfo;
use weft_drivers::netns::Netns;
use weft_drivers::{Endpoint, MacAddr, Sandbox};
use weft_ipam::Ipam;

use crate::error::EngineError;
use crate::intents::Intent;
use crate::ports::{self, PortSpec};
use crate::records::{self, load, save, EndpointRecord, NetworkRecord};
use crate::{ids, Controller};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressRequest {
    /// Allocate from the network's weft pools: one address per subnet, or exactly these
    /// (each must fall in one of the network's subnets).
    Allocate { static_ips: Vec<IpAddr> },
    /// Addresses another IPAM already handed out (Docker).
    Given(Vec<IpNet>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRequest {
    pub addresses: AddressRequest,
    pub mac: Option<MacAddr>,
    /// Interface name inside the sandbox.
    pub ifname: String,
    pub options: BTreeMap<String, String>,
    pub owner: String,
}

/// One-shot attach of a namespace to a network (CLI, CNI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub netns: PathBuf,
    pub endpoint: EndpointRequest,
    pub ports: Vec<PortSpec>,
    /// Default: derived from network, namespace path and ifname.
    pub endpoint_id: Option<String>,
}

impl Controller {
    /// Records an endpoint with its addresses and MAC; no kernel change yet. Repeating it for
    /// an existing endpoint id returns the existing record.
    pub fn create_endpoint(
        &self,
        network: &str,
        endpoint_id: &str,
        req: &EndpointRequest,
    ) -> Result<EndpointRecord, EngineError> {
        check_endpoint_id(endpoint_id)?;
        let _lock = self.change()?;
        let net = self.network(network)?;
        let key = records::endpoint_key(&net.network.id, endpoint_id);
        if let Some(existing) = load::<EndpointRecord>(self.store(), &key)? {
            return Ok(existing);
        }
        let intent = self.record_intent(Intent::Connect {
            network_id: net.network.id.clone(),
            endpoint_id: endpoint_id.to_string(),
            netns: None,
        })?;
        let ep = match self.new_endpoint(&net, endpoint_id, req) {
            Ok(ep) => ep,
            Err(e) => {
                self.forget_intent(&intent)?;
                return Err(e);
            }
        };
        if let Err(e) = save(self.store(), &key, &ep) {
            if self.release_leases(&ep.leases).is_ok() {
                self.forget_intent(&intent)?;
            }
            return Err(e);
        }
        self.forget_intent(&intent)?;
        Ok(ep)
    }

    /// Allocates the endpoint's addresses and checks it with the driver (store only).
    fn new_endpoint(
        &self,
        net: &NetworkRecord,
        endpoint_id: &str,
        req: &EndpointRequest,
    ) -> Result<EndpointRecord, EngineError> {
        let owner = records::endpoint_owner(&net.network.id, endpoint_id);
        let mut leases = Vec::new();
        let result = self
            .allocate_addresses(net, &req.addresses, &owner, &mut leases)
            .and_then(|addresses| {
                self.unjoined_endpoint(net, endpoint_id, addresses, req, &leases)
            });
        if let Err(e) = result {
            // What cannot be released now stays with this owner: the intent's recovery
            // finds it.
            self.release_leases(&leases)?;
            return Err(e);
        }
        result
    }

    /// The record of an endpoint with these addresses, not yet joined, once its driver has
    /// accepted it. Nothing is written.
    pub(crate) fn unjoined_endpoint(
        &self,
        net: &NetworkRecord,
        endpoint_id: &str,
        addresses: Vec<IpNet>,
        req: &EndpointRequest,
        leases: &[(String, IpAddr)],
    ) -> Result<EndpointRecord, EngineError> {
        let mac = req.mac.unwrap_or_else(|| default_mac(&addresses));
        crate::validate::endpoint(net, &addresses, mac, &req.owner)?;
        let endpoint = Endpoint {
            id: endpoint_id.to_string(),
            network_id: net.network.id.clone(),
            addresses,
            mac,
            ifname: req.ifname.clone(),
            ports: Vec::new(),
            sandbox: None,
            options: req.options.clone(),
        };
        self.driver(&net.network.driver)?
            .validate_endpoint(&net.network, &endpoint)?;
        Ok(EndpointRecord {
            endpoint,
            leases: leases.to_vec(),
            join: None,
            published: false,
            owner: req.owner.clone(),
            created: records::now(),
        })
    }

    fn allocate_addresses(
        &self,
        net: &NetworkRecord,
        req: &AddressRequest,
        owner: &str,
        leases: &mut Vec<(String, IpAddr)>,
    ) -> Result<Vec<IpNet>, EngineError> {
        match req {
            AddressRequest::Given(addrs) => Ok(addrs.clone()),
            // Networks without subnets (none, host, container) hand out no addresses; their
            // driver refuses static ones.
            AddressRequest::Allocate { static_ips } if net.network.subnets.is_empty() => {
                Ok(static_ips.iter().map(|ip| IpNet::from(*ip)).collect())
            }
            AddressRequest::Allocate { static_ips } => {
                let ipam = Ipam::new(self.store());
                let pooled: Vec<_> = net
                    .network
                    .subnets
                    .iter()
                    .filter(|s| net.pools.contains(&s.pool_id))
                    .collect();
                if pooled.is_empty() {
                    return Err(EngineError::Invalid(format!(
                        "network {} gets its addresses from another IPAM; weft cannot allocate on it",
                        net.network.name
                    )));
                }
                for ip in static_ips {
                    if !pooled.iter().any(|s| s.subnet.contains(ip)) {
                        return Err(EngineError::Invalid(format!(
                            "address {ip} is outside every subnet of network {} ({})",
                            net.network.name,
                            pooled
                                .iter()
                                .map(|s| s.subnet.to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                }
                let mut out = Vec::new();
                for s in pooled {
                    // One address per subnet; the static one where the user gave one for it.
                    let want = static_ips.iter().find(|ip| s.subnet.contains(*ip)).copied();
                    let addr = ipam.request_address(&s.pool_id, want, owner)?;
                    leases.push((s.pool_id.clone(), addr.addr()));
                    out.push(addr);
                }
                Ok(out)
            }
        }
    }

    /// Releases every address it can and reports the first failure: a teardown must not
    /// claim success while an address stays reserved.
    pub(crate) fn release_leases(&self, leases: &[(String, IpAddr)]) -> Result<(), EngineError> {
        let ipam = Ipam::new(self.store());
        let mut first = None;
        for (pool, addr) in leases {
            if let Err(e) = ipam.release_address(pool, *addr) {
                warn!(%pool, %addr, error = %e, "releasing address failed");
                first.get_or_insert(e);
            }
        }
        match first {
            None => Ok(()),
            Some(e) => Err(e.into()),
        }
    }

    pub fn endpoint(
        &self,
        network: &str,
        endpoint_id: &str,
    ) -> Result<(NetworkRecord, EndpointRecord), EngineError> {
        let net = self.network(network)?;
        let key = records::endpoint_key(&net.network.id, endpoint_id);
        let ep = load::<EndpointRecord>(self.store(), &key)?.ok_or_else(|| {
            EngineError::not_found(
                "endpoint",
                endpoint_id,
                &format!(
                    "`weft network inspect {}` lists its endpoints",
                    net.network.name
                ),
            )
        })?;
        Ok((net, ep))
    }

    pub(crate) fn save_endpoint(&self, ep: &EndpointRecord) -> Result<(), EngineError> {
        save(
            self.store(),
            &records::endpoint_key(&ep.endpoint.network_id, &ep.endpoint.id),
            ep,
        )
    }

    /// Builds the endpoint's link pair into the sandbox.
    pub fn join(
        &self,
        network: &str,
        endpoint_id: &str,
        sandbox: Sandbox,
    ) -> Result<JoinInfo, EngineError> {
        let _lock = self.change()?;
        let (net, mut ep) = self.endpoint(network, endpoint_id)?;
        let info = self.join_kernel(&net, &mut ep, sandbox)?;
        if let Err(e) = self.save_endpoint(&ep) {
            let _ = self
                .driver(&net.network.driver)?
                .leave(&net.network, &ep.endpoint);
            return Err(e);
        }
        Ok(info)
    }

    fn join_kernel(
        &self,
        net: &NetworkRecord,
        ep: &mut EndpointRecord,
        sandbox: Sandbox,
    ) -> Result<JoinInfo, EngineError> {
        let info = self
            .driver(&net.network.driver)?
            .join(&net.network, &ep.endpoint, &sandbox)?;
        ep.endpoint.sandbox = Some(sandbox);
        ep.join = Some(info.clone());
        Ok(info)
    }

    /// Reserves host ports for `specs` and publishes them (replacing what was published).
    pub fn program_external(
        &self,
        network: &str,
        endpoint_id: &str,
        specs: &[PortSpec],
    ) -> Result<EndpointRecord, EngineError> {
        let _lock = self.change()?;
        let (net, mut ep) = self.endpoint(network, endpoint_id)?;
        let intent = self.record_intent(Intent::Publish {
            network_id: net.network.id.clone(),
            endpoint_id: endpoint_id.to_string(),
        })?;
        let result = self.replace_ports(&net, &mut ep, specs);
        match &result {
            Ok(()) => self.forget_intent(&intent)?,
            Err(_) => match self.unpublish(&net, &mut ep) {
                Ok(()) => self.forget_intent(&intent)?,
                Err(undo) => warn!(endpoint = %weft_drivers::names::short(endpoint_id),
                    error = %undo, "undoing a failed publish; the next command tries again"),
            },
        }
        result.map(|()| ep)
    }

    /// Unpublishes what was published, reserves and publishes `specs`, records the result.
    fn replace_ports(
        &self,
        net: &NetworkRecord,
        ep: &mut EndpointRecord,
        specs: &[PortSpec],
    ) -> Result<(), EngineError> {
        if ep.published || !ep.endpoint.ports.is_empty() {
            self.unpublish(net, ep)?;
        }
        self.reserve_ports(net, ep, specs)?;
        self.publish(net, ep)?;
        self.save_endpoint(ep)
    }

    fn reserve_ports(
        &self,
        net: &NetworkRecord,
        ep: &mut EndpointRecord,
        specs: &[PortSpec],
    ) -> Result<(), EngineError> {
        let owner = records::endpoint_owner(&net.network.id, &ep.endpoint.id);
        ep.endpoint.ports = ports::reserve(self.store(), specs, &owner, self.ephemeral_ports)?;
        Ok(())
    }

    fn publish(&self, net: &NetworkRecord, ep: &mut EndpointRecord) -> Result<(), EngineError> {
        self.driver(&net.network.driver)?
            .program_external_connectivity(&net.network, &ep.endpoint)?;
        ep.published = true;
        Ok(())
    }

    /// Removes the DNAT entries and releases the host ports.
    pub(crate) fn unpublish(
        &self,
        net: &NetworkRecord,
        ep: &mut EndpointRecord,
    ) -> Result<(), EngineError> {
        self.driver(&net.network.driver)?
            .revoke_external_connectivity(&net.network, &ep.endpoint)?;
        ports::release(self.store(), &ep.endpoint.ports)?;
        ep.endpoint.ports.clear();
        ep.published = false;
        Ok(())
    }

    pub fn revoke_external(&self, network: &str, endpoint_id: &str) -> Result<(), EngineError> {
        let _lock = self.change()?;
        let (net, mut ep) = self.endpoint(network, endpoint_id)?;
        self.unpublish(&net, &mut ep)?;
        self.save_endpoint(&ep)
    }

    pub fn leave(&self, network: &str, endpoint_id: &str) -> Result<(), EngineError> {
        let _lock = self.change()?;
        let (net, mut ep) = self.endpoint(network, endpoint_id)?;
        self.driver(&net.network.driver)?
            .leave(&net.network, &ep.endpoint)?;
        ep.join = None;
        ep.endpoint.sandbox = None;
        self.save_endpoint(&ep)
    }

    /// Takes the endpoint down whatever state it is in (unpublish, leave, release addresses and
    /// ports, drop the record), keeping going past failures and reporting them all. The record
    /// stays if the kernel could not be cleaned, so the removal can be retried.
    pub fn delete_endpoint(&self, network: &str, endpoint_id: &str) -> Result<(), EngineError> {
        let _lock = self.change()?;
        let (net, ep) = self.endpoint(network, endpoint_id)?;
        let intent = self.record_removal_intent(Intent::Disconnect {
            network_id: net.network.id.clone(),
            endpoint_id: endpoint_id.to_string(),
        })?;
        let result = self.teardown(&net, &ep).and_then(|()| {
            self.store
                .delete(&records::endpoint_key(&net.network.id, endpoint_id))?;
            Ok(())
        });
        // Finished, or failed with the record still there (kernel first, claims after): either
        // way nothing is half-done that the intent must remember.
        if let Some(intent) = intent {
            self.forget_intent(&intent)?;
        }
        result
    }

    /// Kernel first, then the store's reservations.
    pub(crate) fn teardown(
        &self,
        net: &NetworkRecord,
        ep: &EndpointRecord,
    ) -> Result<(), EngineError> {
        let driver = self.driver(&net.network.driver)?;
        let mut errors = Vec::new();
        if let Err(e) = driver.revoke_external_connectivity(&net.network, &ep.endpoint) {
            errors.push(e);
        }
        if let Err(e) = driver.leave(&net.network, &ep.endpoint) {
            errors.push(e);
        }
        weft_drivers::DriverError::collect(errors)?;
        ports::release(self.store(), &ep.endpoint.ports)?;
        self.release_leases(&ep.leases)
    }

    /// The endpoint id `connect` gives when none is asked for: derived from the namespace's
    /// identity (its nsfs device and inode), so that `/run/netns/c1` and `/proc/PID/ns/net`
    /// name one endpoint; from the path when the namespace cannot be opened.
    pub fn connect_id(network_id: &str, netns: &std::path::Path, ifname: &str) -> String {
        match namespace_identity(netns) {
            Some(identity) => ids::derived_id(&["cli", network_id, &identity, ifname]),
            None => path_connect_id(network_id, netns, ifname),
        }
    }

    /// The endpoint the namespace at `netns` has on `network` through `ifname`: by the
    /// namespace's identity, or — for a namespace that is gone, or an endpoint made before weft
    /// identified namespaces by inode — by the path connect was given.
    pub fn attached_endpoint(
        &self,
        network: &str,
        netns: &std::path::Path,
        ifname: &str,
    ) -> Result<String, EngineError> {
        let net = self.network(network)?;
        let id = &net.network.id;
        for candidate in [
            Self::connect_id(id, netns, ifname),
            path_connect_id(id, netns, ifname),
        ] {
            if self
                .store
                .get(&records::endpoint_key(id, &candidate))?
                .is_some()
            {
                return Ok(candidate);
            }
        }
        let by_path = self.endpoints(id)?.into_iter().find(|e| {
            e.endpoint.ifname == ifname
                && matches!(&e.endpoint.sandbox, Some(Sandbox::Netns(p)) if p == netns)
        });
        by_path.map(|e| e.endpoint.id).ok_or_else(|| {
            EngineError::not_found(
                "attachment",
                format!(
                    "{} ({ifname}) on network {}",
                    netns.display(),
                    net.network.name
                ),
                &format!(
                    "that namespace is not connected to it through {ifname}; `weft network inspect {}` lists its endpoints",
                    net.network.name
                ),
            )
        })
    }

    /// Creates, joins and publishes an endpoint in one step and records it once; on failure
    /// nothing of it is left.
    pub fn connect(
        &self,
        network: &str,
        req: &ConnectRequest,
    ) -> Result<EndpointRecord, EngineError> {
        // A bad namespace fails before anything is allocated.
        Netns::open(&req.netns)?;
        let _lock = self.change()?;
        let net = self.network(network)?;
        let id = match &req.endpoint_id {
            Some(id) => {
                check_endpoint_id(id)?;
                id.clone()
            }
            None => Self::connect_id(&net.network.id, &req.netns, &req.endpoint.ifname),
        };
        let key = records::endpoint_key(&net.network.id, &id);
        if self.store.get(&key)?.is_some() {
            return Err(EngineError::Exists {
                kind: "endpoint",
                name: format!(
                    "{} in {} on network {}",
                    req.endpoint.ifname,
                    req.netns.display(),
                    net.network.name
                ),
                hint: "disconnect it first, or pick another --ifname".into(),
            });
        }
        let intent = self.record_intent(Intent::Connect {
            network_id: net.network.id.clone(),
            endpoint_id: id.clone(),
            netns: Some(req.netns.clone()),
        })?;
        let mut ep = match self.new_endpoint(&net, &id, &req.endpoint) {
            Ok(ep) => ep,
            Err(e) => {
                self.forget_intent(&intent)?;
                return Err(e);
            }
        };
        let result = self
            .reserve_ports(&net, &mut ep, &req.ports)
            .and_then(|()| self.join_kernel(&net, &mut ep, Sandbox::Netns(req.netns.clone())))
            .and_then(|_| self.publish(&net, &mut ep))
            .and_then(|()| save(self.store(), &key, &ep));
        match result {
            Ok(()) => {
                self.forget_intent(&intent)?;
                info!(network = %net.network.name, endpoint = %&id[..12], "connected");
                Ok(ep)
            }
            Err(e) => {
                match self.teardown(&net, &ep) {
                    Ok(()) => self.forget_intent(&intent)?,
                    // The intent stays: the next command finishes the undo.
                    Err(undo) => {
                        warn!(endpoint = %id, error = %undo, "rolling back a failed connect")
                    }
                }
                Err(e)
            }
        }
    }

    pub fn disconnect(&self, network: &str, endpoint_id: &str) -> Result<(), EngineError> {
        self.delete_endpoint(network, endpoint_id)?;
        info!(network, endpoint = %weft_drivers::names::short(endpoint_id), "disconnected");
        Ok(())
    }
}

/// The id weft gave before it identified namespaces by inode.
fn path_connect_id(network_id: &str, netns: &std::path::Path, ifname: &str) -> String {
    ids::derived_id(&["cli", network_id, &netns.to_string_lossy(), ifname])
}

/// `netns:<device>:<inode>` of the namespace file at `path` (the nsfs inode names the namespace
/// whatever path reaches it).
fn namespace_identity(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(format!("netns:{}:{}", m.dev(), m.ino()))
}

fn check_endpoint_id(id: &str) -> Result<(), EngineError> {
    if ids::is_id(id) {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "endpoint id {id:?} is not 64 lowercase hex characters"
        )))
    }
}

/// Docker's scheme: 02:42 and the IPv4 address; random (locally administered) without one.
fn default_mac(addresses: &[IpNet]) -> MacAddr {
    match addresses.iter().find_map(|a| match a.addr() {
        IpAddr::V4(v4) => Some(v4),
        _ => None,
    }) {
        Some(v4) => MacAddr::from_ipv4(v4),
        None => {
            let mut m: [u8; 6] = rand::random();
            m[0] = (m[0] & 0xfe) | 0x02;
            MacAddr(m)
        }
    }
}
