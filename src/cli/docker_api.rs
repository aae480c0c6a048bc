//! A small client of dockerd's Engine API, for what the CLI must learn from Docker itself:
//! which endpoints a container has (`weft port`), and the names of Docker's networks and
//! containers (`weft network ls`, `inspect`). The plugin protocol never tells weft these.
//!
//! It lives in the CLI, not in `plugin-api`: `plugin-api` is the server dockerd calls
//! (decode, validate, call the engine, encode) and never calls dockerd; this is a client only
//! the CLI uses. It is blocking HTTP/1.1 over `std`'s sockets (one request per connection,
//! `Connection: close`): a CLI command makes one to three requests, so neither tokio nor hyper
//! would pay for themselves here.
//!
//! Where dockerd is: `DOCKER_HOST` (`unix:///path` or plain `tcp://host:port`, as the docker
//! CLI takes it), else `/var/run/docker.sock`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use weft_engine::EngineError;

/// dockerd's socket when `DOCKER_HOST` is not set (the docker CLI's default).
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// A local dockerd answers inspect calls in milliseconds; a hung one must not hang the CLI.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read: `/networks` of a busy host is well below it; more means the
/// socket is not dockerd's.
const MAX_RESPONSE: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DockerApiError {
    /// Nothing answers at the address: dockerd is not running here (or not on that socket).
    #[error("dockerd's API at {host} is not reachable ({reason}); start dockerd or point DOCKER_HOST at its socket")]
    Unreachable { host: String, reason: String },
    /// `DOCKER_HOST` names something this client cannot talk to.
    #[error("DOCKER_HOST={0:?} is not supported: give unix:///PATH or tcp://HOST:PORT (TLS is not supported)")]
    Unsupported(String),
    /// Something answered, but not as dockerd does.
    #[error("dockerd's API at {host}: GET {path}: {reason}")]
    Protocol {
        host: String,
        path: String,
        reason: String,
    },
}

impl DockerApiError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, DockerApiError::Unreachable { .. })
    }
}

impl From<DockerApiError> for EngineError {
    fn from(e: DockerApiError) -> Self {
        match e {
            DockerApiError::Unsupported(_) => EngineError::Invalid(e.to_string()),
            _ => EngineError::System(e.to_string()),
        }
    }
}

/// Where dockerd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerHost {
    Unix(PathBuf),
    Tcp(String),
}

impl DockerHost {
    /// From `DOCKER_HOST` as the docker CLI reads it; unset or empty = the default socket.
    pub fn parse(docker_host: Option<&str>) -> Result<DockerHost, DockerApiError> {
        match docker_host.map(str::trim) {
            None | Some("") => Ok(DockerHost::Unix(PathBuf::from(DEFAULT_SOCKET))),
            Some(v) => {
                if let Some(path) = v.strip_prefix("unix://").filter(|p| !p.is_empty()) {
                    Ok(DockerHost::Unix(PathBuf::from(path)))
                } else if let Some(addr) = v
                    .strip_prefix("tcp://")
                    .map(|a| a.trim_end_matches('/'))
                    .filter(|a| !a.is_empty() && !a.contains('/'))
                {
                    Ok(DockerHost::Tcp(addr.to_string()))
                } else {
                    Err(DockerApiError::Unsupported(v.to_string()))
                }
            }
        }
    }

    pub fn from_env() -> Result<DockerHost, DockerApiError> {
        Self::parse(std::env::var("DOCKER_HOST").ok().as_deref())
    }
}

impl std::fmt::Display for DockerHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DockerHost::Unix(p) => write!(f, "unix://{}", p.display()),
            DockerHost::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

pub struct Client {
    host: DockerHost,
}

impl Client {
    pub fn new(host: DockerHost) -> Client {
        Client { host }
    }

    pub fn from_env() -> Result<Client, DockerApiError> {
        DockerHost::from_env().map(Client::new)
    }

    /// `GET /containers/{name or id}/json`; `None` when Docker has no such container.
    pub fn container(&self, name_or_id: &str) -> Result<Option<Container>, DockerApiError> {
        let path = format!("/containers/{}/json", escape(name_or_id));
        match self.get(&path)? {
            None => Ok(None),
            Some(v) => parse_container(&v)
                .map(Some)
                .map_err(|reason| self.protocol(&path, reason)),
        }
    }

    /// `GET /networks`: every Docker network (id, name, driver).
    pub fn networks(&self) -> Result<Vec<DockerNetwork>, DockerApiError> {
        let path = "/networks";
        let v = self
            .get(path)?
            .ok_or_else(|| self.protocol(path, "404 for the network list".into()))?;
        parse_networks(&v).map_err(|reason| self.protocol(path, reason))
    }

    /// `GET /networks/{id}`: the containers attached, by endpoint; `None` when Docker has no
    /// such network.
    pub fn network_containers(
        &self,
        network_id: &str,
    ) -> Result<Option<Vec<Attached>>, DockerApiError> {
        let path = format!("/networks/{}", escape(network_id));
        match self.get(&path)? {
            None => Ok(None),
            Some(v) => parse_network_containers(&v)
                .map(Some)
                .map_err(|reason| self.protocol(&path, reason)),
        }
    }

    fn protocol(&self, path: &str, reason: String) -> DockerApiError {
        DockerApiError::Protocol {
            host: self.host.to_string(),
            path: path.to_string(),
            reason,
        }
    }

    /// One GET: the decoded JSON body of a 200, `None` for a 404, an error otherwise.
    fn get(&self, path: &str) -> Result<Option<Value>, DockerApiError> {
        let unreachable = |e: std::io::Error| DockerApiError::Unreachable {
            host: self.host.to_string(),
            reason: e.to_string(),
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: weft\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        let raw = match &self.host {
            DockerHost::Unix(p) => {
                let s = UnixStream::connect(p).map_err(unreachable)?;
                s.set_read_timeout(Some(TIMEOUT)).map_err(unreachable)?;
                s.set_write_timeout(Some(TIMEOUT)).map_err(unreachable)?;
                exchange(s, &request)
            }
            DockerHost::Tcp(a) => {
                let s = TcpStream::connect(a).map_err(unreachable)?;
                s.set_read_timeout(Some(TIMEOUT)).map_err(unreachable)?;
                s.set_write_timeout(Some(TIMEOUT)).map_err(unreachable)?;
                exchange(s, &request)
            }
        }
        .map_err(|e| self.protocol(path, e.to_string()))?;
        let (status, body) = parse_response(&raw).map_err(|r| self.protocol(path, r))?;
        match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| self.protocol(path, format!("the body is not JSON: {e}"))),
            404 => Ok(None),
            s => Err(self.protocol(path, format!("status {s}: {}", error_message(&body)))),
        }
    }
}

fn exchange(mut s: impl Read + Write, request: &str) -> std::io::Result<Vec<u8>> {
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    s.take(MAX_RESPONSE).read_to_end(&mut raw)?;
    Ok(raw)
}

/// Percent-encodes what is not safe in a path segment (Docker names are `[a-zA-Z0-9_.-]`, ids
/// hex: this only matters for input that is neither, which Docker then answers with 404).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// dockerd's error body is `{"message": "..."}`.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string())
}

/// Status and body of an HTTP/1.x response read to the end of the connection. dockerd (Go's
/// net/http) sends a large body chunked and a small one with Content-Length.
pub fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = find(raw, b"\r\n\r\n").ok_or("no end of the response header")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "the response header is not text")?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP response: {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        } else if k.eq_ignore_ascii_case("content-length") {
            length = Some(
                v.parse::<usize>()
                    .map_err(|_| format!("Content-Length {v:?}"))?,
            );
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else if let Some(n) = length {
        body.get(..n)
            .ok_or_else(|| format!("the body ended after {} of {n} bytes", body.len()))?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(body, b"\r\n").ok_or("a chunk size line without its end")?;
        let size_field = std::str::from_utf8(&body[..eol]).map_err(|_| "a chunk size")?;
        let size_hex = size_field.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("chunk size {size_hex:?} is not hex"))?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body
            .get(..size)
            .ok_or_else(|| format!("a chunk of {size} bytes ended early"))?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).ok_or("a chunk without its CRLF")?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Docker's names of its networks by id, for `weft network ls`; `Err` with the reason
/// (shown as a note) when dockerd cannot be asked.
pub fn network_names() -> Result<std::collections::BTreeMap<String, String>, DockerApiError> {
    Ok(Client::from_env()?
        .networks()?
        .into_iter()
        .map(|n| (n.id, n.name))
        .collect())
}

/// Adds to `weft network inspect`'s JSON of one network what Docker knows: `docker_name` (the
/// network's name in Docker) and, on each endpoint Docker made, `container` (`{"id",
/// "name"}`). Docker networks are the record's own id (origin docker) and its `docker_ids`
/// (aliases of a cluster network). `Err` when dockerd cannot be asked.
pub fn annotate_inspect(v: &mut Value) -> Result<(), DockerApiError> {
    let net = &v["network"];
    let mut docker_ids: Vec<String> = net["docker_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if net["origin"] == "docker" {
        if let Some(id) = net["id"].as_str() {
            docker_ids.insert(0, id.to_string());
        }
    }
    if docker_ids.is_empty() {
        return Ok(());
    }
    let client = Client::from_env()?;
    let names = network_names()?;
    if let Some(name) = docker_ids.first().and_then(|id| names.get(id)) {
        v["network"]["docker_name"] = Value::from(name.clone());
    }
    let mut attached = Vec::new();
    for id in &docker_ids {
        attached.extend(client.network_containers(id)?.unwrap_or_default());
    }
    if let Some(eps) = v["endpoints"].as_array_mut() {
        for ep in eps {
            let Some(a) = attached.iter().find(|a| ep["id"] == a.endpoint_id.as_str()) else {
                continue;
            };
            ep["container"] = serde_json::json!({"id": a.container_id, "name": a.container_name});
        }
    }
    Ok(())
}

/// What `weft port` needs of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub endpoints: Vec<ContainerEndpoint>,
}

/// One of `.NetworkSettings.Networks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEndpoint {
    pub network_name: String,
    pub network_id: String,
    pub endpoint_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerNetwork {
    pub id: String,
    pub name: String,
    pub driver: String,
}

/// One of `GET /networks/{id}`'s `.Containers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub endpoint_id: String,
    pub container_id: String,
    pub container_name: String,
}

fn text<'a>(v: &'a Value, key: &str, what: &str) -> Result<&'a str, String> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what} has no {key}"))
}

pub fn parse_container(v: &Value) -> Result<Container, String> {
    let id = text(v, "Id", "the container")?.to_string();
    let name = text(v, "Name", "the container")?
        .trim_start_matches('/')
        .to_string();
    let mut endpoints = Vec::new();
    // A container that is not running has endpoints with empty ids (and `--network none`
    // an endpoint without ports): only those with an id can be weft's.
    if let Some(nets) = v
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
    {
        for (network_name, settings) in nets {
            let endpoint_id = settings
                .get("EndpointID")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if endpoint_id.is_empty() {
                continue;
            }
            endpoints.push(ContainerEndpoint {
                network_name: network_name.clone(),
                network_id: settings
                    .get("NetworkID")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                endpoint_id: endpoint_id.to_string(),
            });
        }
    }
    Ok(Container {
        id,
        name,
        endpoints,
    })
}

pub fn parse_networks(v: &Value) -> Result<Vec<DockerNetwork>, String> {
    let list = v.as_array().ok_or("the network list is not a JSON array")?;
    list.iter()
        .map(|n| {
            Ok(DockerNetwork {
                id: text(n, "Id", "a network")?.to_string(),
                name: text(n, "Name", "a network")?.to_string(),
                driver: n
                    .get("Driver")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect()
}

pub fn parse_network_containers(v: &Value) -> Result<Vec<Attached>, String> {
    let Some(containers) = v.get("Containers") else {
        return Err("the network has no Containers".into());
    };
    // Docker writes `null` for a network nobody is attached to.
    let Some(map) = containers.as_object() else {
        return Ok(Vec::new());
    };
    map.iter()
        .map(|(container_id, c)| {
            Ok(Attached {
                endpoint_id: text(c, "EndpointID", "an attached container")?.to_string(),
                container_id: container_id.clone(),
                container_name: text(c, "Name", "an attached container")?.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_forms() {
        assert_eq!(
            DockerHost::parse(None).unwrap(),
            DockerHost::Unix(DEFAULT_SOCKET.into())
        );
        assert_eq!(
            DockerHost::parse(Some("")).unwrap(),
            DockerHost::Unix(DEFAULT_SOCKET.into())
        );
        assert_eq!(
            DockerHost::parse(Some("unix:///tmp/d.sock")).unwrap(),
            DockerHost::Unix("/tmp/d.sock".into())
        );
        assert_eq!(
            DockerHost::parse(Some("tcp://127.0.0.1:2375")).unwrap(),
            DockerHost::Tcp("127.0.0.1:2375".into())
        );
        for bad in [
            "ssh://me@host",
            "unix://",
            "npipe:////./pipe/docker",
            "/tmp/x",
        ] {
            let e = DockerHost::parse(Some(bad)).unwrap_err();
            assert!(matches!(e, DockerApiError::Unsupported(_)), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn responses_with_length_and_chunked() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        assert_eq!(parse_response(raw).unwrap(), (200, b"{\"a\":1}".to_vec()));
        // As Go's net/http sends a large body: chunks with sizes in hex, then 0.
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\nb\r\n:[1,2,3,4]}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(raw).unwrap(),
            (200, b"{\"a\":[1,2,3,4]}".to_vec())
        );
        let body = "{\"message\":\"No such container: nope\"}\n";
        let raw = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let raw = raw.as_bytes();
        let (status, body) = parse_response(raw).unwrap();
        assert_eq!(status, 404);
        assert_eq!(error_message(&body), "No such container: nope");
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }

    #[test]
    fn escapes_path_segments() {
        assert_eq!(escape("web-1_a.b"), "web-1_a.b");
        assert_eq!(escape("a/b c"), "a%2Fb%20c");
    }

    // Captured from dockerd 20.10.24 (pretty-printed): `GET /containers/web/json` of a
    // container on the weft network `pn` and Docker's own `bridge`, `GET /networks`, and
    // `GET /networks/pn` with the containers `web` and `solo` attached.
    const CONTAINER: &str = include_str!("docker_api/testdata/container.json");
    const NETWORKS: &str = include_str!("docker_api/testdata/networks.json");
    const NETWORK: &str = include_str!("docker_api/testdata/network.json");

    #[test]
    fn captured_container() {
        let c = parse_container(&serde_json::from_str(CONTAINER).unwrap()).unwrap();
        assert_eq!(c.name, "web");
        assert_eq!(c.id.len(), 64);
        assert_eq!(c.endpoints.len(), 2, "{c:?}");
        let names: Vec<_> = c
            .endpoints
            .iter()
            .map(|e| e.network_name.as_str())
            .collect();
        assert!(
            names.contains(&"bridge") && names.contains(&"pn"),
            "{names:?}"
        );
        for e in &c.endpoints {
            assert_eq!(e.endpoint_id.len(), 64);
            assert_eq!(e.network_id.len(), 64);
        }
    }

    #[test]
    fn stopped_container_has_no_endpoints() {
        let v = serde_json::json!({"Id": "ab", "Name": "/x", "NetworkSettings": {"Networks":
            {"pn": {"EndpointID": "", "NetworkID": "cd"}}}});
        assert!(parse_container(&v).unwrap().endpoints.is_empty());
        assert!(parse_container(&serde_json::json!({"Name": "/x"})).is_err());
    }

    #[test]
    fn captured_network_list_and_network() {
        let nets = parse_networks(&serde_json::from_str(NETWORKS).unwrap()).unwrap();
        let names: Vec<_> = nets.iter().map(|n| n.name.as_str()).collect();
        for n in ["bridge", "host", "none", "pn"] {
            assert!(names.contains(&n), "{names:?}");
        }
        assert!(nets.iter().any(|n| n.name == "pn" && n.driver == "weft"));
        let attached = parse_network_containers(&serde_json::from_str(NETWORK).unwrap()).unwrap();
        let mut names: Vec<_> = attached.iter().map(|a| a.container_name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["solo", "web"], "{attached:?}");
        assert!(attached.iter().all(|a| a.endpoint_id.len() == 64));
        let empty = serde_json::json!({"Name": "x", "Containers": {}});
        assert!(parse_network_containers(&empty).unwrap().is_empty());
    }
}
