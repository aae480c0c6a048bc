//! The daemon's control socket: a small JSON API on a unix socket for what only the running
//! daemon knows — its BGP sessions and the routes they carry. `weft bgp status|routes` are its
//! clients.
//!
//! One request per connection: the client writes one JSON line `{"method": "bgp.status"}`,
//! the daemon answers one JSON line, `{"result": …}` or `{"error": "…"}`, and closes. The
//! data comes from the backend's own status methods; this module only carries it.

pub mod client;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use weft_bgp::BgpBackend;
use weft_drivers::backend::Backend;

/// Where the daemon with the default state directory serves the control API.
pub const DEFAULT_SOCKET: &str = "/run/weft/weft.sock";
/// The control socket's file name inside any other state directory.
pub const STATE_DIR_SOCKET: &str = "control.sock";
/// Environment variable naming the socket, for the daemon and the CLI alike.
pub const SOCKET_ENV: &str = "WEFT_CONTROL_SOCKET";

/// The control socket: the one given (`--control-socket`, `WEFT_CONTROL_SOCKET`), else
/// [`DEFAULT_SOCKET`] for the default state directory and `STATE_DIR/control.sock` for any
/// other. A daemon and the CLI with the same state directory thus meet without being told,
/// and several weft instances on one machine (tests, say) never share a socket.
pub fn socket_path(given: Option<&Path>, state_dir: &Path) -> PathBuf {
    match given {
        Some(path) => path.to_path_buf(),
        None if state_dir == Path::new(crate::setup::DEFAULT_STATE_DIR) => {
            PathBuf::from(DEFAULT_SOCKET)
        }
        None => state_dir.join(STATE_DIR_SOCKET),
    }
}

/// The methods the daemon answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// The daemon itself: pid, version, cluster, backend.
    #[serde(rename = "daemon.info")]
    Info,
    /// The bgp backend's neighbours, announced subnets and route counters.
    #[serde(rename = "bgp.status")]
    BgpStatus,
    /// The Loc-RIB and what the route programmer keeps in the kernel.
    #[serde(rename = "bgp.routes")]
    BgpRoutes,
    /// Leave the cluster now: revoke the lease (the peers drop this host's routes at once),
    /// stop the agent. The daemon keeps serving its local networks.
    #[serde(rename = "cluster.leave")]
    ClusterLeave,
}

/// How the control socket asks the agent to leave: the agent answers on the oneshot once
/// the lease is given back (or says why not).
pub type LeaveRequest = tokio::sync::oneshot::Sender<Result<serde_json::Value, String>>;

/// One request line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// What is asked.
    pub method: Method,
}

/// One answer line: exactly one of the two is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    /// The answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why there is none, as the user should read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the running daemon has that the control API shows. The cluster agent fills it in as
/// it joins and makes its backend.
#[derive(Default)]
pub struct ControlState {
    inner: Mutex<Live>,
}

#[derive(Default, Clone)]
struct Live {
    cluster: Option<String>,
    backend: Option<&'static str>,
    bgp: Option<Arc<BgpBackend>>,
    /// Set while the agent runs and can be asked to leave.
    leave: Option<tokio::sync::mpsc::Sender<LeaveRequest>>,
    /// What `GET /healthz` reports.
    health: Health,
}

/// The agent's health as `--healthz` reports it.
#[derive(Default, Clone, Debug)]
pub struct Health {
    /// The subnet whose lease is held now.
    pub lease: Option<String>,
    /// Whether the last etcd call succeeded (`None` before the first one).
    pub etcd: Option<Result<(), String>>,
}

impl ControlState {
    /// The cluster this daemon joins (`--cluster`).
    pub fn set_cluster(&self, name: &str) {
        self.live().cluster = Some(name.to_string());
    }

    /// The backend now in use; `bgp` is set when it is the bgp backend.
    pub fn set_backend(&self, name: &'static str, bgp: Option<Arc<BgpBackend>>) {
        let mut live = self.live();
        live.backend = Some(name);
        live.bgp = bgp;
    }

    /// Updates the health the agent reports.
    pub fn update_health(&self, update: impl FnOnce(&mut Health)) {
        update(&mut self.live().health);
    }

    /// `GET /healthz`: healthy (200) when no cluster is to be joined, or when the lease is
    /// held and etcd answered last time; otherwise why not (503).
    pub fn healthz(&self) -> (bool, String) {
        let live = self.live().clone();
        let Some(cluster) = live.cluster else {
            return (true, "ok: this daemon joins no cluster\n".into());
        };
        let mut problems = Vec::new();
        if live.health.lease.is_none() {
            problems.push(format!("holds no lease in cluster {cluster}"));
        }
        match &live.health.etcd {
            Some(Ok(())) => {}
            Some(Err(e)) => problems.push(format!("etcd unreachable: {e}")),
            None => problems.push("has not reached etcd yet".into()),
        }
        match (problems.is_empty(), live.health.lease) {
            (true, Some(subnet)) => (true, format!("ok: cluster {cluster}, subnet {subnet}\n")),
            _ => (false, format!("unhealthy: {}\n", problems.join("; "))),
        }
    }

    /// Where `cluster.leave` requests go (`None`: the agent stopped).
    pub fn set_leave(&self, leave: Option<tokio::sync::mpsc::Sender<LeaveRequest>>) {
        self.live().leave = leave;
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers one request (blocking: the backend's status calls wait for its threads).
    pub fn answer(&self, method: Method) -> Result<serde_json::Value, String> {
        let live = self.live().clone();
        match method {
            Method::Info => Ok(serde_json::json!({
                "pid": std::process::id(),
                "version": env!("CARGO_PKG_VERSION"),
                "cluster": live.cluster,
                "backend": live.backend,
            })),
            Method::BgpStatus => {
                let bgp = live.bgp()?;
                let mut status = bgp.status().map_err(|e| e.to_string())?;
                status["cluster"] = serde_json::json!(live.cluster);
                Ok(status)
            }
            Method::BgpRoutes => {
                let bgp = live.bgp()?;
                let routes = bgp.routes().map_err(|e| {
                    format!(
                        "{e} (the host may not have joined its cluster yet; see `weft bgp status`)"
                    )
                })?;
                let mut value = serde_json::to_value(routes).map_err(|e| e.to_string())?;
                value["cluster"] = serde_json::json!(live.cluster);
                Ok(value)
            }
            Method::ClusterLeave => {
                let (Some(cluster), Some(leave)) = (&live.cluster, &live.leave) else {
                    return Err(match &live.cluster {
                        None => "this weft daemon joins no cluster: there is nothing to leave"
                            .to_string(),
                        Some(c) => format!(
                            "this weft daemon has already left cluster {c} (or its agent \
                             stopped); restart it to join again"
                        ),
                    });
                };
                let (reply, answer) = tokio::sync::oneshot::channel();
                let gone = || format!("the agent of cluster {cluster} stopped before answering");
                leave.blocking_send(reply).map_err(|_| gone())?;
                answer.blocking_recv().map_err(|_| gone())?
            }
        }
    }
}

impl Live {
    fn bgp(&self) -> Result<&Arc<BgpBackend>, String> {
        if let Some(bgp) = &self.bgp {
            return Ok(bgp);
        }
        Err(match (&self.cluster, self.backend) {
            (None, _) => "this weft daemon runs no bgp backend: it joins no cluster (start it \
                          with --cluster NAME on a cluster made with --backend bgp)"
                .to_string(),
            (Some(c), Some(b)) => {
                format!("this weft daemon runs no bgp backend: cluster {c} uses the {b} backend")
            }
            (Some(c), None) => format!(
                "this weft daemon has not started its backend yet: it is still joining cluster \
                 {c} (see `weft cluster status {c}`)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_have_one_json_shape() {
        let line = serde_json::to_string(&Request {
            method: Method::BgpStatus,
        })
        .unwrap();
        assert_eq!(line, r#"{"method":"bgp.status"}"#);
        let parsed: Request = serde_json::from_str(r#"{"method":"bgp.routes"}"#).unwrap();
        assert_eq!(parsed.method, Method::BgpRoutes);
        assert!(serde_json::from_str::<Request>(r#"{"method":"bgp.nope"}"#).is_err());
        let err = Response {
            error: Some("x".into()),
            ..Response::default()
        };
        assert_eq!(serde_json::to_string(&err).unwrap(), r#"{"error":"x"}"#);
    }

    #[test]
    fn the_socket_follows_the_state_directory_unless_given() {
        let default = Path::new(crate::setup::DEFAULT_STATE_DIR);
        assert_eq!(socket_path(None, default), Path::new(DEFAULT_SOCKET));
        assert_eq!(
            socket_path(None, Path::new("/tmp/w/state")),
            Path::new("/tmp/w/state/control.sock")
        );
        assert_eq!(
            socket_path(Some(Path::new("/run/x.sock")), Path::new("/tmp/w/state")),
            Path::new("/run/x.sock")
        );
    }

    #[test]
    fn without_a_bgp_backend_the_answer_says_why() {
        let state = ControlState::default();
        let e = state.answer(Method::BgpStatus).unwrap_err();
        assert!(e.contains("joins no cluster"), "{e}");
        state.set_cluster("c1");
        let e = state.answer(Method::BgpRoutes).unwrap_err();
        assert!(e.contains("still joining cluster c1"), "{e}");
        state.set_backend("vxlan", None);
        let e = state.answer(Method::BgpStatus).unwrap_err();
        assert!(e.contains("cluster c1 uses the vxlan backend"), "{e}");
        let info = state.answer(Method::Info).unwrap();
        assert_eq!(info["cluster"], "c1");
        assert_eq!(info["backend"], "vxlan");
        assert_eq!(info["pid"], std::process::id());
    }
}
