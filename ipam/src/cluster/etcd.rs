//! etcd v3 I/O: executes the [`Keeper`](super::Keeper)'s requests and the admin calls of the
//! CLI. Thin on purpose: every decision is the keeper's.
//!
//! A claim is one transaction: `if create_revision(key) == 0 then put(key, value, lease)` for a
//! free subnet, `if mod_revision(key) == n then put(…)` to take over this host's own lease, so
//! two hosts can never hold the same subnet. Every call has a deadline, so an unreachable etcd
//! is an error after a few seconds rather than a hang; retrying is the keeper's job.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    Identity, LeaseKeepAliveStream, LeaseKeeper, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions, WatchStream,
};
use ipnet::Ipv4Net;

use super::config::ClusterConfig;
use super::error::ClusterError;
use super::keeper::{Expect, Input, Kv, Request, Snapshot, WatchEvent};
use super::lease::{
    check_reservation_subnet, parse_lease, parse_reservation, Keys, Lease, Reservation,
};

/// Deadline of one etcd call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// HTTP/2 keepalive ping interval. etcd's default `--grpc-keepalive-min-time` is 5 s: a
/// client pinging more often collects a strike per ping, and at the third etcd resets the
/// connection (GOAWAY "too_many_pings"), every 8–12 s on a healthy cluster. Twice the minimum
/// leaves room for timer jitter on both sides. hyper only pings after this long without a
/// frame from etcd, so a busy connection sends none.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a ping may go unanswered before the connection counts as dead: a silently gone
/// etcd (host down, partition) is noticed within interval + timeout = 15 s, well inside the
/// default lease TTL (60 s) and its renewal every 20 s, which fail on their own deadline
/// anyway. Calls are not what this guards: they have [`CALL_TIMEOUT`]; the watch stream is.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach etcd: its endpoints, the TLS files and the credentials. Debug never shows
/// the password.
#[derive(Clone, Default)]
pub struct EtcdAccess {
    /// `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// CA certificate (PEM) that signed etcd's server certificate; turns TLS on.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's --client-cert-auth.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// etcd user, when etcd has authentication on.
    pub username: Option<String>,
    /// Its password.
    pub password: Option<String>,
}

impl std::fmt::Debug for EtcdAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdAccess")
            .field("endpoints", &self.endpoints)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl EtcdAccess {
    /// Plain endpoints, no TLS, no user.
    pub fn new(endpoints: Vec<String>) -> EtcdAccess {
        EtcdAccess {
            endpoints,
            ..EtcdAccess::default()
        }
    }

    /// The TLS settings, `None` without a CA file; the files are read here so that a wrong
    /// path is reported as such, not as an unreachable etcd.
    fn tls(&self) -> Result<Option<TlsOptions>, ClusterError> {
        let bad = |reason: String| ClusterError::EtcdSettings { reason };
        let https = self.endpoints.iter().filter(|e| e.starts_with("https://"));
        let http = self.endpoints.iter().find(|e| !e.starts_with("https://"));
        let Some(ca_file) = &self.ca_file else {
            if let Some(e) = https.clone().next() {
                return Err(bad(format!("endpoint {e} uses TLS: pass --etcd-cafile with the CA that signed etcd's certificate")));
            }
            if self.cert_file.is_some() || self.key_file.is_some() {
                return Err(bad("--etcd-certfile and --etcd-keyfile need --etcd-cafile (and https:// endpoints)".into()));
            }
            return Ok(None);
        };
        if let Some(e) = http {
            return Err(bad(format!(
                "--etcd-cafile turns TLS on but endpoint {e} is not https://; give https://HOST:PORT"
            )));
        }
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| {
                bad(format!(
                    "cannot read {flag} {}: {e}; give a readable PEM file",
                    path.display()
                ))
            })
        };
        let mut tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read("--etcd-cafile", ca_file)?));
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(
                    read("--etcd-certfile", cert)?,
                    read("--etcd-keyfile", key)?,
                ));
            }
            (None, None) => {}
            _ => {
                return Err(bad(
                    "--etcd-certfile and --etcd-keyfile go together: give both or neither".into(),
                ))
            }
        }
        Ok(Some(tls))
    }
}

/// A connection to an etcd cluster (the client reconnects by itself; calls fail while etcd is
/// down).
pub struct Etcd {
    client: Client,
    endpoints: String,
    keep_alive: Option<(i64, LeaseKeeper, LeaseKeepAliveStream)>,
}

/// A running watch of a cluster's keys.
pub struct Watch {
    stream: WatchStream,
    endpoints: String,
}

impl Etcd {
    /// Connects to etcd as `access` says (endpoints `http://host:port`, several for an etcd
    /// cluster; `https://` with TLS files; a user and password when etcd has auth on).
    pub async fn connect(access: &EtcdAccess) -> Result<Etcd, ClusterError> {
        let endpoints = &access.endpoints;
        let joined = endpoints.join(",");
        if endpoints.is_empty() {
            return Err(ClusterError::Etcd {
                endpoints: joined,
                op: "connecting".into(),
                failure: "no etcd endpoint given".into(),
                fix: "pass --etcd-endpoints http://HOST:2379".into(),
                refused: false,
            });
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CALL_TIMEOUT)
            .with_timeout(CALL_TIMEOUT)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
            // etcd (grpc-go, PermitWithoutStream=false) counts every ping on a connection
            // with no open stream as abuse; without streams there is nothing to keep alive.
            .with_keep_alive_while_idle(false);
        if let Some(tls) = access.tls()? {
            options = options.with_tls(tls);
        }
        let user = match (&access.username, &access.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (None, None) => None,
            _ => {
                return Err(ClusterError::EtcdSettings {
                    reason: "--etcd-username and --etcd-password go together: give both or neither"
                        .into(),
                })
            }
        };
        let authenticating = user.is_some();
        if let Some((user, password)) = user {
            // etcd's auth tokens expire (--auth-token-ttl, 5 min by default): a daemon runs
            // longer, so the client logs in again when etcd says the token is stale.
            options = options
                .with_user(user, password)
                .with_auto_token_refresh(true);
        }
        let client = within(
            &joined,
            "connecting",
            Client::connect(endpoints, Some(options)),
        )
        .await
        .map_err(|e| match e {
            // Connecting with a user is logging in: a refusal is about the credentials.
            ClusterError::Etcd {
                endpoints,
                op,
                failure,
                refused: true,
                ..
            } if authenticating => ClusterError::Etcd {
                endpoints,
                op: format!(
                    "{op} as user {}",
                    access.username.as_deref().unwrap_or_default()
                ),
                failure,
                fix: "check --etcd-username and --etcd-password (or WEFT_ETCD_PASSWORD)".into(),
                refused: true,
            },
            other => other,
        })?;
        Ok(Etcd {
            client,
            endpoints: joined,
            keep_alive: None,
        })
    }

    /// The endpoints, for messages.
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// Executes one keeper request and returns its reply. `Watch` is not executed here (it is
    /// a stream: see [`Etcd::watch`]) and returns `None`.
    pub async fn execute(&mut self, keys: &Keys, request: Request) -> Option<Input> {
        let text = |e: ClusterError| e.to_string();
        Some(match request {
            Request::Load => Input::Loaded(self.load(keys).await.map_err(text)),
            Request::Grant { ttl_secs } => Input::Granted(self.grant(ttl_secs).await.map_err(text)),
            Request::Claim {
                key,
                value,
                lease,
                expect,
            } => Input::Claimed(self.claim(&key, value, lease, expect).await.map_err(text)),
            Request::KeepAlive { lease } => {
                Input::KeptAlive(self.keep_alive(lease).await.map_err(text))
            }
            Request::Watch { .. } => return None,
        })
    }

    /// Everything under the cluster's prefix, with the revision of the read.
    pub async fn load(&mut self, keys: &Keys) -> Result<Snapshot, ClusterError> {
        let ep = self.endpoints.clone();
        let response = within(
            &ep,
            "reading the cluster",
            self.client
                .get(keys.cluster(), Some(GetOptions::new().with_prefix())),
        )
        .await?;
        let revision = response.header().map(|h| h.revision()).unwrap_or(0);
        let kvs = response
            .kvs()
            .iter()
            .filter_map(|kv| {
                Some(Kv {
                    key: kv.key_str().ok()?.to_string(),
                    value: kv.value().to_vec(),
                    mod_revision: kv.mod_revision(),
                })
            })
            .collect();
        Ok(Snapshot { revision, kvs })
    }

    /// Grants an etcd lease of `ttl_secs`.
    pub async fn grant(&mut self, ttl_secs: i64) -> Result<i64, ClusterError> {
        let ep = self.endpoints.clone();
        let response = within(
            &ep,
            "granting a lease",
            self.client.lease_grant(ttl_secs, None),
        )
        .await?;
        Ok(response.id())
    }

    /// The claim transaction; `(succeeded, revision)`.
    pub async fn claim(
        &mut self,
        key: &str,
        value: Vec<u8>,
        lease: i64,
        expect: Expect,
    ) -> Result<(bool, i64), ClusterError> {
        let compare = match expect {
            Expect::Absent => Compare::create_revision(key, CompareOp::Equal, 0),
            Expect::ModRevision(n) => Compare::mod_revision(key, CompareOp::Equal, n),
        };
        let txn = Txn::new().when(vec![compare]).and_then(vec![TxnOp::put(
            key,
            value,
            Some(PutOptions::new().with_lease(lease)),
        )]);
        let ep = self.endpoints.clone();
        let response = within(&ep, "claiming a subnet", self.client.txn(txn)).await?;
        let revision = response.header().map(|h| h.revision()).unwrap_or(0);
        Ok((response.succeeded(), revision))
    }

    /// Renews `lease` once; the remaining TTL (0 when etcd no longer knows the lease).
    pub async fn keep_alive(&mut self, lease: i64) -> Result<i64, ClusterError> {
        let ep = self.endpoints.clone();
        let result = within(&ep, "renewing the lease", self.renew(lease)).await;
        if result.is_err() {
            // The stream may be broken (etcd restarted): open a new one next time.
            self.keep_alive = None;
        }
        result
    }

    /// Revokes `lease`: the keys attached to it (this host's subnet) go at once rather than
    /// after the TTL.
    pub async fn revoke(&mut self, lease: i64) -> Result<(), ClusterError> {
        let ep = self.endpoints.clone();
        within(&ep, "revoking the lease", self.client.lease_revoke(lease)).await?;
        self.keep_alive = None;
        Ok(())
    }

    async fn renew(&mut self, lease: i64) -> Result<i64, etcd_client::Error> {
        if self
            .keep_alive
            .as_ref()
            .is_none_or(|(id, _, _)| *id != lease)
        {
            let (keeper, stream) = self.client.lease_keep_alive(lease).await?;
            self.keep_alive = Some((lease, keeper, stream));
        }
        let (_, keeper, stream) = self.keep_alive.as_mut().expect("just set");
        keeper.keep_alive().await?;
        match stream.message().await? {
            Some(response) => Ok(response.ttl()),
            None => Err(etcd_client::Error::LeaseKeepAliveError(
                "the keep-alive stream ended".into(),
            )),
        }
    }

    /// Starts watching the cluster's keys from `from_revision`.
    pub async fn watch(&mut self, keys: &Keys, from_revision: i64) -> Result<Watch, ClusterError> {
        let ep = self.endpoints.clone();
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from_revision);
        let stream = within(
            &ep,
            "watching the cluster",
            self.client.watch(keys.cluster(), Some(options)),
        )
        .await?;
        Ok(Watch {
            stream,
            endpoints: ep,
        })
    }

    /// Writes the cluster config (validated first).
    pub async fn put_config(
        &mut self,
        keys: &Keys,
        config: &ClusterConfig,
    ) -> Result<(), ClusterError> {
        config.validate()?;
        let ep = self.endpoints.clone();
        within(
            &ep,
            "writing the cluster config",
            self.client.put(keys.config(), config.encode(), None),
        )
        .await?;
        Ok(())
    }

    /// The cluster config, `None` when the cluster has none.
    pub async fn config(&mut self, keys: &Keys) -> Result<Option<ClusterConfig>, ClusterError> {
        let ep = self.endpoints.clone();
        let response = within(
            &ep,
            "reading the cluster config",
            self.client.get(keys.config(), None),
        )
        .await?;
        response
            .kvs()
            .first()
            .map(|kv| ClusterConfig::decode(kv.value()))
            .transpose()
    }

    /// Reserves `subnet` for the host with `public_ip` (no TTL); `false` when it already was.
    ///
    /// Refused when another host holds a live lease on the subnet (that host would lose it on
    /// its next restart) and, unless `force`, when it is reserved for another host. The checks
    /// and the write are one transaction comparing the revisions that were read (a lease key
    /// absent: `create_revision == 0`), so a host claiming the subnet meanwhile makes the write
    /// fail rather than race; it is then read and judged again.
    pub async fn reserve(
        &mut self,
        keys: &Keys,
        config: &ClusterConfig,
        subnet: Ipv4Net,
        public_ip: IpAddr,
        force: bool,
    ) -> Result<bool, ClusterError> {
        check_reservation_subnet(config, subnet)?;
        let lease_key = keys.subnet(subnet);
        let reservation_key = keys.reservation(subnet);
        let value = serde_json::to_vec(&Reservation {
            subnet: None,
            public_ip,
        })
        .expect("reservation serializes");
        let ep = self.endpoints.clone();
        // Each round loses only to a write of one of the two keys between its read and its
        // transaction; a handful of rounds is plenty.
        for _ in 0..5 {
            let read = Txn::new().and_then(vec![
                TxnOp::get(lease_key.as_str(), None),
                TxnOp::get(reservation_key.as_str(), None),
            ]);
            let response = within(
                &ep,
                "reading the subnet's lease and reservation",
                self.client.txn(read),
            )
            .await?;
            let mut found = response.op_responses().into_iter().map(|r| match r {
                TxnOpResponse::Get(get) => get
                    .kvs()
                    .first()
                    .map(|kv| (kv.value().to_vec(), kv.mod_revision())),
                _ => None,
            });
            let (lease, reserved) = (found.next().flatten(), found.next().flatten());
            let mut compares = Vec::new();
            match &lease {
                None => compares.push(Compare::create_revision(
                    lease_key.as_str(),
                    CompareOp::Equal,
                    0,
                )),
                Some((bytes, revision)) => {
                    let lease = parse_lease(config, keys, &lease_key, bytes, *revision)?;
                    // The host's own lease: pinning the subnet it already has is the point.
                    if lease.value.public_ip != public_ip {
                        return Err(ClusterError::SubnetLeased {
                            subnet,
                            public_ip,
                            holder: if lease.value.hostname.is_empty() {
                                format!("node {}", lease.value.node_id)
                            } else {
                                format!(
                                    "host {} (node {})",
                                    lease.value.hostname, lease.value.node_id
                                )
                            },
                            holder_ip: lease.value.public_ip,
                        });
                    }
                    compares.push(Compare::mod_revision(
                        lease_key.as_str(),
                        CompareOp::Equal,
                        *revision,
                    ));
                }
            }
            match &reserved {
                None => compares.push(Compare::create_revision(
                    reservation_key.as_str(),
                    CompareOp::Equal,
                    0,
                )),
                Some((bytes, revision)) => {
                    let existing = parse_reservation(config, keys, &reservation_key, bytes);
                    match existing {
                        Ok(r) if r.public_ip == public_ip => return Ok(false),
                        Ok(r) if !force => {
                            return Err(ClusterError::AlreadyReserved {
                                subnet,
                                public_ip,
                                reserved_for: r.public_ip,
                            })
                        }
                        // Forced, or unreadable (nobody can use it): replaced.
                        _ => {}
                    }
                    compares.push(Compare::mod_revision(
                        reservation_key.as_str(),
                        CompareOp::Equal,
                        *revision,
                    ));
                }
            }
            let txn = Txn::new().when(compares).and_then(vec![TxnOp::put(
                reservation_key.as_str(),
                value.clone(),
                None,
            )]);
            if within(&ep, "writing a reservation", self.client.txn(txn))
                .await?
                .succeeded()
            {
                return Ok(true);
            }
        }
        Err(ClusterError::Etcd {
            failure: format!("the lease or reservation of {subnet} in etcd at {ep} kept changing"),
            endpoints: ep,
            op: "writing a reservation".into(),
            fix: "run the command again".into(),
            refused: false,
        })
    }

    /// Removes a reservation; `false` when there was none.
    pub async fn unreserve(&mut self, keys: &Keys, subnet: Ipv4Net) -> Result<bool, ClusterError> {
        let ep = self.endpoints.clone();
        let response = within(
            &ep,
            "removing a reservation",
            self.client.delete(keys.reservation(subnet), None),
        )
        .await?;
        Ok(response.deleted() > 0)
    }

    /// Removes everything of the cluster (config, reservations, leases). Without `force`,
    /// refused while any lease key exists: those hosts would lose their subnet under their
    /// containers. Returns how many keys were removed; 0 means there was no such cluster.
    pub async fn remove_cluster(
        &mut self,
        keys: &Keys,
        cluster: &str,
        force: bool,
    ) -> Result<i64, ClusterError> {
        let ep = self.endpoints.clone();
        let leases = within(
            &ep,
            "reading the cluster's leases",
            self.client.get(
                keys.subnets(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            ),
        )
        .await?;
        let holders: Vec<String> = leases
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect();
        if !holders.is_empty() && !force {
            return Err(ClusterError::ClusterInUse {
                cluster: cluster.to_string(),
                leases: holders,
            });
        }
        let response = within(
            &ep,
            "removing the cluster",
            self.client
                .delete(keys.cluster(), Some(DeleteOptions::new().with_prefix())),
        )
        .await?;
        Ok(response.deleted())
    }

    /// Writes many keys in one transaction, attached to `lease` (0: none). For seeding a
    /// cluster in tests and benchmarks; etcd limits a transaction to `--max-txn-ops` (default
    /// 128) operations.
    pub async fn put_all(
        &mut self,
        kvs: Vec<(String, Vec<u8>)>,
        lease: i64,
    ) -> Result<i64, ClusterError> {
        let options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        let ops: Vec<TxnOp> = kvs
            .into_iter()
            .map(|(k, v)| TxnOp::put(k, v, options.clone()))
            .collect();
        let ep = self.endpoints.clone();
        let response = within(
            &ep,
            "writing keys",
            self.client.txn(Txn::new().and_then(ops)),
        )
        .await?;
        Ok(response.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Every lease, valid ones parsed and malformed ones as their error.
    pub async fn leases(
        &mut self,
        keys: &Keys,
        config: &ClusterConfig,
    ) -> Result<Vec<Result<Lease, ClusterError>>, ClusterError> {
        let snapshot = self.load(keys).await?;
        Ok(snapshot
            .kvs
            .iter()
            .filter(|kv| kv.key.starts_with(&keys.subnets()))
            .map(|kv| parse_lease(config, keys, &kv.key, &kv.value, kv.mod_revision))
            .collect())
    }
}

impl Watch {
    /// The next batch of changes. An error means the watch is over (etcd went away, or the
    /// revision was compacted): reload and watch again.
    pub async fn next(&mut self) -> Result<Vec<WatchEvent>, ClusterError> {
        let op = "watching the cluster";
        loop {
            let response = match self.stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    return Err(unreachable(
                        &self.endpoints,
                        op,
                        "the watch stream ended".into(),
                    ))
                }
                Err(e) => return Err(explain(&self.endpoints, op, &e)),
            };
            if response.canceled() {
                return Err(ClusterError::Etcd {
                    endpoints: self.endpoints.clone(),
                    op: op.into(),
                    failure: format!(
                        "etcd at {} canceled the watch ({}; compacted at revision {})",
                        self.endpoints,
                        one_line(response.cancel_reason()),
                        response.compact_revision()
                    ),
                    fix: "weft reads the cluster again and watches from there".into(),
                    refused: false,
                });
            }
            let events: Vec<WatchEvent> = response
                .events()
                .iter()
                .filter_map(|event| {
                    let kv = event.kv()?;
                    let key = kv.key_str().ok()?.to_string();
                    Some(match event.event_type() {
                        EventType::Put => WatchEvent::Put(Kv {
                            key,
                            value: kv.value().to_vec(),
                            mod_revision: kv.mod_revision(),
                        }),
                        EventType::Delete => WatchEvent::Delete {
                            key,
                            mod_revision: kv.mod_revision(),
                        },
                    })
                })
                .collect();
            if !events.is_empty() {
                return Ok(events);
            }
        }
    }
}

/// Runs one etcd call with [`CALL_TIMEOUT`], mapping failures to a clear error.
async fn within<T>(
    endpoints: &str,
    op: &str,
    call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(explain(endpoints, op, &e)),
        Err(_) => Err(unreachable(
            endpoints,
            op,
            format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
        )),
    }
}

const REACH_FIX: &str = "is etcd running and reachable from this host? check --etcd-endpoints";

/// etcd did not answer: `cause` is the socket's error or what was missing.
fn unreachable(endpoints: &str, op: &str, cause: String) -> ClusterError {
    ClusterError::Etcd {
        endpoints: endpoints.to_string(),
        op: op.to_string(),
        failure: format!("cannot reach etcd at {endpoints} ({cause})"),
        fix: REACH_FIX.into(),
        refused: false,
    }
}

/// One line for an etcd client error: unreachable (a socket error anywhere in the chain, or
/// gRPC's Unavailable), refused credentials, or another refusal with etcd's own words.
/// Decided on error types and gRPC codes, never on message text.
fn explain(endpoints: &str, op: &str, e: &etcd_client::Error) -> ClusterError {
    use etcd_client::Error as E;
    use tonic::Code;
    let refused = |cause: String, fix: &str| ClusterError::Etcd {
        endpoints: endpoints.to_string(),
        op: op.to_string(),
        failure: format!("etcd at {endpoints} refused the request ({cause})"),
        fix: fix.to_string(),
        refused: true,
    };
    match e {
        E::GRpcStatus(status) => {
            if let Some(io) = io_cause(status) {
                return unreachable(endpoints, op, describe_io(io));
            }
            let message = one_line(status.message());
            match status.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                    unreachable(endpoints, op, message)
                }
                Code::Unauthenticated | Code::PermissionDenied => refused(
                    message,
                    "check --etcd-username and --etcd-password (WEFT_ETCD_PASSWORD) and the key prefix the user's role may use",
                ),
                // etcd answers a missing user, and a failed login, with InvalidArgument
                // (rpctypes.ErrGRPCUserEmpty, ErrGRPCAuthFailed).
                Code::InvalidArgument => refused(
                    message,
                    "if etcd has authentication enabled, pass --etcd-username and --etcd-password (or WEFT_ETCD_PASSWORD); otherwise see etcd's log",
                ),
                _ => refused(
                    message,
                    "see etcd's log; the request may exceed a limit such as --max-txn-ops",
                ),
            }
        }
        E::TransportError(t) => {
            let cause = io_cause(t)
                .map(describe_io)
                .unwrap_or_else(|| one_line(&t.to_string()));
            unreachable(endpoints, op, cause)
        }
        E::IoError(io) => unreachable(endpoints, op, describe_io(io)),
        E::InvalidUri(_) | E::EndpointError(_) | E::InvalidArgs(_) => ClusterError::Etcd {
            endpoints: endpoints.to_string(),
            op: op.to_string(),
            failure: format!(
                "invalid etcd endpoint {endpoints} ({})",
                one_line(&e.to_string())
            ),
            fix: "give --etcd-endpoints as http://HOST:PORT (https:// with --etcd-cafile)".into(),
            refused: true,
        },
        E::LeaseKeepAliveError(m) | E::WatchError(m) => unreachable(endpoints, op, one_line(m)),
        other => refused(one_line(&other.to_string()), "see etcd's log"),
    }
}

/// The innermost socket error in an error's chain.
fn io_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut found = None;
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            found = Some(io);
        }
        next = e.source();
    }
    found
}

/// A socket error in a few words: `connection refused`, `network unreachable`, ….
fn describe_io(io: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match io.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::NetworkUnreachable => "network unreachable".into(),
        K::HostUnreachable => "host unreachable".into(),
        K::TimedOut => "connection timed out".into(),
        K::ConnectionReset => "connection reset".into(),
        K::BrokenPipe => "connection closed by etcd".into(),
        K::AddrNotAvailable => "address not available".into(),
        _ => one_line(&io.to_string()),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
