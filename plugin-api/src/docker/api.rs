//! The protocol's dispatch: a request path and body in, a status and JSON body out. Synchronous
//! (engine calls take the store's file lock); the server runs it on blocking threads.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tracing::{debug, warn};
use weft_drivers::netlink::Netlink;
use weft_engine::{Controller, EndpointRequest, EngineError};

use super::error::DockerError;
use super::leaving::Leaving;

/// Every method dockerd can call on a NetworkDriver + IpamDriver plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    Activate,
    GetCapabilities,
    CreateNetwork,
    DeleteNetwork,
    AllocateNetwork,
    FreeNetwork,
    CreateEndpoint,
    EndpointOperInfo,
    DeleteEndpoint,
    Join,
    Leave,
    ProgramExternalConnectivity,
    RevokeExternalConnectivity,
    DiscoverNew,
    DiscoverDelete,
    IpamGetCapabilities,
    GetDefaultAddressSpaces,
    RequestPool,
    ReleasePool,
    RequestAddress,
    ReleaseAddress,
}

impl Method {
    /// All methods, for tests and documentation.
    pub const ALL: [Method; 21] = [
        Method::Activate,
        Method::GetCapabilities,
        Method::CreateNetwork,
        Method::DeleteNetwork,
        Method::AllocateNetwork,
        Method::FreeNetwork,
        Method::CreateEndpoint,
        Method::EndpointOperInfo,
        Method::DeleteEndpoint,
        Method::Join,
        Method::Leave,
        Method::ProgramExternalConnectivity,
        Method::RevokeExternalConnectivity,
        Method::DiscoverNew,
        Method::DiscoverDelete,
        Method::IpamGetCapabilities,
        Method::GetDefaultAddressSpaces,
        Method::RequestPool,
        Method::ReleasePool,
        Method::RequestAddress,
        Method::ReleaseAddress,
    ];

    /// The path's name without the leading `/`, e.g. `NetworkDriver.Join`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Activate => "Plugin.Activate",
            Method::GetCapabilities => "NetworkDriver.GetCapabilities",
            Method::CreateNetwork => "NetworkDriver.CreateNetwork",
            Method::DeleteNetwork => "NetworkDriver.DeleteNetwork",
            Method::AllocateNetwork => "NetworkDriver.AllocateNetwork",
            Method::FreeNetwork => "NetworkDriver.FreeNetwork",
            Method::CreateEndpoint => "NetworkDriver.CreateEndpoint",
            Method::EndpointOperInfo => "NetworkDriver.EndpointOperInfo",
            Method::DeleteEndpoint => "NetworkDriver.DeleteEndpoint",
            Method::Join => "NetworkDriver.Join",
            Method::Leave => "NetworkDriver.Leave",
            Method::ProgramExternalConnectivity => "NetworkDriver.ProgramExternalConnectivity",
            Method::RevokeExternalConnectivity => "NetworkDriver.RevokeExternalConnectivity",
            Method::DiscoverNew => "NetworkDriver.DiscoverNew",
            Method::DiscoverDelete => "NetworkDriver.DiscoverDelete",
            Method::IpamGetCapabilities => "IpamDriver.GetCapabilities",
            Method::GetDefaultAddressSpaces => "IpamDriver.GetDefaultAddressSpaces",
            Method::RequestPool => "IpamDriver.RequestPool",
            Method::ReleasePool => "IpamDriver.ReleasePool",
            Method::RequestAddress => "IpamDriver.RequestAddress",
            Method::ReleaseAddress => "IpamDriver.ReleaseAddress",
        }
    }

    /// The method a request path names (`/NetworkDriver.Join`).
    pub fn from_path(path: &str) -> Option<Method> {
        let name = path.strip_prefix('/').unwrap_or(path);
        Method::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A reply: HTTP status and JSON body (`{"Err": "..."}` when the status is not 200).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Reply { status: 200, body }
    }

    fn err(e: &DockerError) -> Self {
        Reply {
            status: e.status(),
            body: json!({ "Err": e.to_string() }),
        }
    }
}

/// Host routes and addresses, which default pools must avoid.
pub type HostPrefixes = dyn Fn() -> Result<Vec<IpNet>, EngineError> + Send + Sync;

/// The plugin's handlers over one controller.
pub struct DockerApi {
    pub(super) controller: Arc<Controller>,
    /// Methods that fail on purpose after their work is rolled back (tests only).
    faults: BTreeSet<Method>,
    pub(super) host_prefixes: Box<HostPrefixes>,
    /// Endpoints Docker created and has not joined yet: endpoint id → (network id, request).
    /// Recorded with their join, in one store write (see `Controller::create_and_join`).
    pending: Mutex<HashMap<String, (String, EndpointRequest)>>,
    /// Veth removals of answered Leaves (see `leaving`).
    pub(super) leaving: Leaving,
}

impl DockerApi {
    /// Handlers over `controller`, reading host prefixes from the kernel.
    pub fn new(controller: Arc<Controller>) -> Self {
        DockerApi {
            controller,
            faults: BTreeSet::new(),
            host_prefixes: Box::new(|| Ok(Netlink::open()?.host_prefixes()?)),
            pending: Mutex::new(HashMap::new()),
            leaving: Leaving::default(),
        }
    }

    /// The pending endpoint map; a panic elsewhere cannot leave it unusable.
    pub(super) fn pending(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (String, EndpointRequest)>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the link removals of answered Leaves (before the daemon exits).
    pub fn finish_leaves(&self) {
        self.leaving.finish_all();
    }

    /// Replaces where host prefixes come from (tests without a kernel to ask).
    pub fn with_host_prefixes(mut self, f: Box<HostPrefixes>) -> Self {
        self.host_prefixes = f;
        self
    }

    /// Makes `methods` (names like `NetworkDriver.Join`, comma-separated, as in the
    /// `WEFT_DOCKER_FAIL` variable) do their work, undo it, and fail: how tests prove that a
    /// failure half-way leaves nothing behind.
    pub fn with_faults(mut self, methods: &str) -> Result<Self, String> {
        for name in methods.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let m = Method::from_path(name)
                .ok_or_else(|| format!("unknown method {name:?} in the failure list"))?;
            self.faults.insert(m);
        }
        Ok(self)
    }

    /// Serves one request.
    pub fn handle(&self, path: &str, body: &[u8]) -> Reply {
        let Some(method) = Method::from_path(path) else {
            let e = DockerError::UnknownMethod(path.to_string());
            debug!(path, "unknown plugin method");
            return Reply::err(&e);
        };
        match self.dispatch(method, body) {
            Ok(v) => Reply::ok(v),
            Err(e) => {
                warn!(method = method.name(), error = %e, "plugin call failed");
                Reply::err(&e)
            }
        }
    }

    fn dispatch(&self, method: Method, body: &[u8]) -> Result<Value, DockerError> {
        use Method as M;
        match method {
            M::Activate => Ok(json!({ "Implements": ["NetworkDriver", "IpamDriver"] })),
            M::GetCapabilities => Ok(json!({ "Scope": "local", "ConnectivityScope": "local" })),
            M::CreateNetwork => self.create_network(decode(method, body)?),
            M::DeleteNetwork => self.delete_network(decode(method, body)?),
            M::AllocateNetwork => {
                decode::<super::wire::AllocateNetworkRequest>(method, body)?;
                Ok(json!({ "Options": {} }))
            }
            M::FreeNetwork => {
                decode::<super::wire::NetworkRequest>(method, body)?;
                Ok(json!({}))
            }
            M::CreateEndpoint => self.create_endpoint(decode(method, body)?),
            M::EndpointOperInfo => self.endpoint_oper_info(decode(method, body)?),
            M::DeleteEndpoint => self.delete_endpoint(decode(method, body)?),
            M::Join => self.join(decode(method, body)?),
            M::Leave => self.leave(decode(method, body)?),
            M::ProgramExternalConnectivity => self.program_external(decode(method, body)?),
            M::RevokeExternalConnectivity => self.revoke_external(decode(method, body)?),
            // Discovery carries node and datastore events of swarm; a local driver has no use
            // for them.
            M::DiscoverNew | M::DiscoverDelete => {
                decode::<Value>(method, body)?;
                Ok(json!({}))
            }
            M::IpamGetCapabilities => Ok(json!({
                "RequiresMACAddress": false,
                "RequiresRequestReplay": false,
            })),
            M::GetDefaultAddressSpaces => Ok(json!({
                "LocalDefaultAddressSpace": super::ipam::LOCAL_SPACE,
                "GlobalDefaultAddressSpace": super::ipam::GLOBAL_SPACE,
            })),
            M::RequestPool => self.request_pool(decode(method, body)?),
            M::ReleasePool => self.release_pool(decode(method, body)?),
            M::RequestAddress => self.request_address(decode(method, body)?),
            M::ReleaseAddress => self.release_address(decode(method, body)?),
        }
    }

    /// Whether `method` must fail on purpose (its caller has just undone its work).
    pub(super) fn injected(&self, method: Method) -> Result<(), DockerError> {
        if self.faults.contains(&method) {
            Err(DockerError::Injected(method.name().to_string()))
        } else {
            Ok(())
        }
    }

    pub(super) fn faulty(&self, method: Method) -> bool {
        self.faults.contains(&method)
    }
}

/// Parses a body that came without a Content-Type. An empty body reads as JSON `null`, which
/// methods without parameters accept and methods with required fields refuse by name.
/// Public (as `docker::decode_body`) so that the fuzz targets feed bytes to the very decoder the
/// handlers use.
pub fn decode_body<T: DeserializeOwned>(method: Method, body: &[u8]) -> Result<T, DockerError> {
    decode(method, body)
}

fn decode<T: DeserializeOwned>(method: Method, body: &[u8]) -> Result<T, DockerError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"null"[..]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| DockerError::bad(method.name(), e.to_string()))
}
