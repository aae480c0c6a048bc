//! weft as the plugin of type `weft`: ADD, DEL, GC and STATUS (CHECK is in `check`).

use std::path::Path;

use ipnet::IpNet;
use serde_json::Value;
use weft_drivers::SubnetInfo;
use weft_engine::{
    AddressRequest, ConnectRequest, Controller, EndpointRecord, EndpointRequest, EngineError,
    NetworkRecord, Origin, PortSpec,
};

use super::attachment::{self, endpoint_id, owner, parse_owner};
use super::env::Command;
use super::error::CniError;
use super::network::{NetworkSpec, Subnets};
use super::result::CniResult;
use super::{check, collect, Ctx};

/// Runs the command for a config of type `weft`.
pub fn run(ctx: &Ctx) -> Result<Option<Value>, CniError> {
    match ctx.env.command {
        Command::Add => add(ctx).map(Some),
        Command::Del => del(ctx).map(|()| None),
        Command::Check => check::run(ctx).map(|()| None),
        Command::Gc => gc(ctx).map(|()| None),
        Command::Status => status(ctx).map(|()| None),
        Command::Version => unreachable!("VERSION is answered before the config is read"),
    }
}

/// The namespace of an ADD or CHECK: 3 when it does not exist, 4 when it is not a namespace.
pub fn netns_of<'a>(ctx: &'a Ctx) -> Result<&'a Path, CniError> {
    let path = ctx
        .env
        .netns
        .as_deref()
        .ok_or_else(|| CniError::Environment(format!("{} needs CNI_NETNS", ctx.env.command)))?;
    if !path.exists() {
        return Err(CniError::UnknownContainer(format!(
            "CNI_NETNS {} does not exist: the container is gone",
            path.display()
        )));
    }
    weft_drivers::netns::Netns::open(path)
        .map_err(|e| CniError::Environment(format!("CNI_NETNS: {e}")))?;
    Ok(path)
}

fn add(ctx: &Ctx) -> Result<Value, CniError> {
    let netns = netns_of(ctx)?;
    let c = ctx.controller()?;
    let _lock = c.store().lock()?;
    let delegate = ctx.ipam_delegate();
    let delegated = match &delegate {
        Some(d) => Some(ipam_add(d, ctx)?),
        None => None,
    };
    let result = attach(ctx, &c, netns, delegated.as_ref());
    if let (Err(_), Some(d)) = (&result, &delegate) {
        // Undo the delegated allocation; the error that matters is the first one.
        if let Err(e) = d.run(Command::Del) {
            tracing::warn!(error = %e, "releasing the delegated IPAM allocation after a failed ADD");
        }
    }
    let mine = result?;
    let out = match &ctx.conf.prev_result {
        Some(prev) => mine.chained_after(prev.clone()),
        None => mine,
    };
    Ok(out.to_json(ctx.conf.version))
}

/// The delegated IPAM plugin's ADD, read as a result; an unusable answer is given back.
fn ipam_add(d: &super::delegate::Delegate, ctx: &Ctx) -> Result<CniResult, CniError> {
    let v = d.run(Command::Add)?;
    let read = || -> Result<CniResult, CniError> {
        let v = v.ok_or_else(|| {
            CniError::Decoding(format!("{} plugin printed no result for ADD", d.plugin))
        })?;
        let r = CniResult::parse(&v, &format!("the {} plugin's result", d.plugin))?;
        if r.ips.is_empty() {
            return Err(CniError::InvalidConfig(format!(
                "the {} plugin handed out no address for {}",
                d.plugin,
                ctx.attachment_text()
            )));
        }
        Ok(r)
    };
    read().inspect_err(|_| {
        if let Err(e) = d.run(Command::Del) {
            tracing::warn!(error = %e, "giving back an unusable delegated allocation");
        }
    })
}

/// Network, endpoint, extra routes and result; on failure nothing of the endpoint is left.
fn attach(
    ctx: &Ctx,
    c: &Controller,
    netns: &Path,
    delegated: Option<&CniResult>,
) -> Result<CniResult, CniError> {
    let spec = spec(ctx, delegated);
    let (net, created) = ensure_network(ctx, c, &spec)?;
    let result = attach_endpoint(ctx, c, &net, netns, delegated);
    if result.is_err() && created {
        // A failed first ADD leaves no network behind either.
        if let Err(e) = c.delete_network(&net.network.id) {
            tracing::warn!(error = %e, "removing the network of a failed first ADD");
        }
    }
    result
}

fn attach_endpoint(
    ctx: &Ctx,
    c: &Controller,
    net: &NetworkRecord,
    netns: &Path,
    delegated: Option<&CniResult>,
) -> Result<CniResult, CniError> {
    let id = endpoint_id(&net.network.id, &ctx.env.container_id, &ctx.env.ifname);
    let addresses = match delegated {
        None => AddressRequest::Allocate {
            static_ips: ctx.static_ips(),
        },
        Some(r) => AddressRequest::Given(r.ips.iter().map(|ip| ip.address).collect()),
    };
    let ports = ctx
        .conf
        .runtime
        .port_mappings
        .iter()
        .map(|p| PortSpec::single(p.protocol, p.host_ip, p.host_port, p.container_port))
        .collect();
    let ep = c
        .connect(
            &net.network.id,
            &ConnectRequest {
                netns: netns.to_path_buf(),
                endpoint: EndpointRequest {
                    addresses,
                    mac: ctx.mac(),
                    ifname: ctx.env.ifname.clone(),
                    options: Default::default(),
                    owner: owner(
                        &ctx.env.container_id,
                        &ctx.env.ifname,
                        (ctx.conf.name != net.network.name).then_some(ctx.conf.name.as_str()),
                    ),
                },
                ports,
                endpoint_id: Some(id.clone()),
            },
        )
        .map_err(|e| add_error(ctx, e))?;
    let finish = || -> Result<CniResult, CniError> {
        let wanted = match delegated {
            None => ctx.conf.ipam.routes.clone(),
            Some(r) => r.routes.clone(),
        };
        let routes = attachment::program_routes(
            netns,
            &ctx.env.ifname,
            &ep,
            attachment::routes(&ep, &wanted),
        )?;
        let dns = ctx
            .conf
            .dns
            .clone()
            .or_else(|| ctx.conf.ipam.dns.clone())
            .or_else(|| delegated.and_then(|r| r.dns.clone()));
        attachment::result(&ep, netns, routes, dns)
    };
    finish().inspect_err(|_| {
        if let Err(e) = c.delete_endpoint(&net.network.id, &id) {
            tracing::warn!(error = %e, "removing the endpoint of a failed ADD");
        }
    })
}

/// Clearer words for the failures a runtime's user meets most.
fn add_error(ctx: &Ctx, e: EngineError) -> CniError {
    let exists = matches!(
        &e,
        EngineError::Exists {
            kind: "endpoint",
            ..
        }
    );
    let err = CniError::from(e);
    if exists {
        return err.map_message(|m| {
            format!("{m} (ADD was already done for this attachment; DEL it first)")
        });
    }
    err.context(&format!("ADD of {}", ctx.attachment_text()))
}

/// What the config asks the network to be; with a delegated IPAM plugin, its subnets are those
/// of the addresses it handed out (the bridge holds the gateway it named, or the first host).
fn spec(ctx: &Ctx, delegated: Option<&CniResult>) -> NetworkSpec {
    let subnets = match delegated {
        None => Subnets::Weft(ctx.conf.ipam.ranges.clone()),
        Some(r) => Subnets::Given(
            r.ips
                .iter()
                .map(|ip| {
                    let subnet = ip.address.trunc();
                    let gw = ip
                        .gateway
                        .unwrap_or_else(|| weft_ipam::alloc::host_bounds(&subnet).0);
                    SubnetInfo {
                        subnet,
                        gateway: IpNet::new(gw, subnet.prefix_len()).ok(),
                        ip_range: None,
                        pool_id: String::new(),
                    }
                })
                .collect(),
        ),
    };
    NetworkSpec {
        name: ctx.conf.network().to_string(),
        bridge: ctx.conf.bridge.clone(),
        subnets,
    }
}

/// The recorded network if the config describes it, or a new one (then `true`). The caller
/// holds the store lock, so concurrent first ADDs cannot both create it. A cluster's network is
/// the agent's to make: its absence is worth waiting for, not filling in.
fn ensure_network(
    ctx: &Ctx,
    c: &Controller,
    spec: &NetworkSpec,
) -> Result<(NetworkRecord, bool), CniError> {
    if let Some(cluster) = &ctx.conf.cluster {
        let existing = c.cluster_network(cluster).map_err(not_joined)?;
        spec.check_matches(&existing, &ctx.state_dir_text())?;
        return Ok((existing, false));
    }
    match c.network(&spec.name) {
        Ok(existing) => {
            spec.check_matches(&existing, &ctx.state_dir_text())?;
            Ok((existing, false))
        }
        Err(EngineError::NotFound { .. }) if joined_before(c, &spec.name)? => {
            Err(CniError::TryAgainLater(format!(
                "network {name:?} is missing, but this host is part of cluster {name}: its network is made by `weft daemon --cluster {name}`, not by CNI; try again once the daemon has joined",
                name = spec.name
            )))
        }
        Err(EngineError::NotFound { .. }) => c
            .create_network(spec.request())
            .map(|n| (n, true))
            .map_err(|e| CniError::from(e).context(&format!("creating network {:?}", spec.name))),
        Err(e) => Err(e.into()),
    }
}

/// A cluster network that is not there (yet) is worth waiting for: the daemon joining the
/// cluster makes it.
fn not_joined(e: EngineError) -> CniError {
    match e {
        EngineError::NotFound { .. } => CniError::TryAgainLater(format!(
            "{e}; CNI does not create a cluster's network, try again once the host has joined"
        )),
        other => other.into(),
    }
}

/// Whether this host has been part of cluster `name` (so a network of that name is the
/// agent's to make).
fn joined_before(c: &Controller, name: &str) -> Result<bool, CniError> {
    weft_ipam::cluster::local::load_record(c.store(), name)
        .map(|r| r.is_some())
        .map_err(|e| CniError::Io(format!("reading this host's record of cluster {name}: {e}")))
}

/// The recorded network of the config, if any.
fn recorded_network(c: &Controller, name: &str) -> Result<Option<NetworkRecord>, CniError> {
    match c.network(name) {
        Ok(n) => Ok(Some(n)),
        Err(EngineError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes the attachment (kernel, reservations, record) and the delegated allocation. Missing
/// pieces are fine; every failure is reported after trying the rest.
fn del(ctx: &Ctx) -> Result<(), CniError> {
    let mut errors = Vec::new();
    // A state directory that was never made holds nothing to delete.
    if ctx.state_dir.exists() {
        if let Err(e) = del_endpoint(ctx) {
            errors.push(e);
        }
    }
    if let Some(d) = ctx.ipam_delegate() {
        if let Err(e) = d.run(Command::Del) {
            errors.push(e);
        }
    }
    collect(errors).map_err(|e| e.context(&format!("DEL of {}", ctx.attachment_text())))
}

fn del_endpoint(ctx: &Ctx) -> Result<(), CniError> {
    let c = ctx.controller()?;
    let _lock = c.store().lock()?;
    let Some(net) = recorded_network(&c, ctx.conf.network())? else {
        return Ok(());
    };
    let id = endpoint_id(&net.network.id, &ctx.env.container_id, &ctx.env.ifname);
    match c.delete_endpoint(&net.network.id, &id) {
        Ok(()) | Err(EngineError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Takes down the network's CNI attachments the runtime did not list, and the network itself
/// when CNI made it and nothing is left on it.
fn gc(ctx: &Ctx) -> Result<(), CniError> {
    let valid = ctx.conf.valid_attachments.clone().ok_or_else(|| {
        CniError::InvalidConfig(
            "GC needs cni.dev/valid-attachments (the attachments to keep; [] keeps none)".into(),
        )
    })?;
    let mut errors = Vec::new();
    if ctx.state_dir.exists() {
        if let Err(e) = gc_network(ctx, &valid) {
            errors.push(e);
        }
    }
    if let Some(d) = ctx.ipam_delegate() {
        // GC exists from 1.1.0 on: an older plugin has nothing to be asked.
        match d.speaks(ctx.conf.version) {
            Ok(true) => {
                if let Err(e) = d.run(Command::Gc) {
                    errors.push(e);
                }
            }
            Ok(false) => tracing::debug!(plugin = d.plugin, "delegate does not speak GC"),
            Err(e) => errors.push(e),
        }
    }
    collect(errors).map_err(|e| e.context(&format!("GC of network {:?}", ctx.conf.name)))
}

fn gc_network(ctx: &Ctx, valid: &[super::config::Attachment]) -> Result<(), CniError> {
    let c = ctx.controller()?;
    let _lock = c.store().lock()?;
    let Some(net) = recorded_network(&c, ctx.conf.network())? else {
        return Ok(());
    };
    let keep = |ep: &EndpointRecord| match parse_owner(&ep.owner) {
        // Not a CNI attachment (the CLI's or Docker's): not ours to judge.
        None => true,
        // Another config's, on a network configs share (a cluster network): not ours either.
        Some((_, _, config)) if config.unwrap_or(&net.network.name) != ctx.conf.name => true,
        Some((cid, ifname, _)) => valid
            .iter()
            .any(|a| a.container_id == cid && a.ifname == ifname),
    };
    let report = c.collect_garbage(&net.network.id, &keep)?;
    for line in &report.done {
        tracing::info!(network = %net.network.name, "{line}");
    }
    let mut errors: Vec<CniError> = report.errors.into_iter().map(CniError::from).collect();
    if errors.is_empty() && report.remaining == 0 && net.origin == Origin::Cni {
        if let Err(e) = c.delete_network(&net.network.id) {
            errors.push(e.into());
        }
    }
    collect(errors)
}

/// Can weft serve ADDs? Its state directory must be readable and writable and nft present; a
/// delegated IPAM plugin that speaks STATUS must be ready too.
fn status(ctx: &Ctx) -> Result<(), CniError> {
    store_usable(ctx)?;
    nft_present(ctx)?;
    if let Some(d) = ctx.ipam_delegate() {
        if d.speaks(ctx.conf.version)? {
            d.run(Command::Status)?;
        }
    }
    Ok(())
}

/// Code 50 unless the state directory can be opened, listed and written.
pub fn store_usable(ctx: &Ctx) -> Result<(), CniError> {
    let unavailable = |e: String| {
        CniError::NotAvailable(format!(
            "weft's state directory {} is unusable: {e}",
            ctx.state_dir.display()
        ))
    };
    let c = (ctx.backend.controller)(&ctx.state_dir, ctx.conf.lock_timeout)
        .map_err(|e| unavailable(e.to_string()))?;
    let store = c.store();
    store.children("").map_err(|e| unavailable(e.to_string()))?;
    const PROBE: &str = "status-probe";
    store
        .put(PROBE, b"probe")
        .and_then(|()| store.delete(PROBE).map(drop))
        .map_err(|e| unavailable(e.to_string()))
}

fn nft_present(ctx: &Ctx) -> Result<(), CniError> {
    let path = ctx
        .vars
        .get("PATH")
        .cloned()
        .unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    if std::env::split_paths(&path).any(|d| d.join("nft").is_file()) {
        Ok(())
    } else {
        Err(CniError::NotAvailable(format!(
            "nft is not in PATH ({path}): weft programs its firewall with it; install nftables"
        )))
    }
}
