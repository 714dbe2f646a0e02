//! Starting the local vault ([`Emulator::start`] with an [`EmulatorConfig`]) and the handle to a
//! running one ([`RunningEmulator`]): its addresses and CA, faults and counters as methods, and
//! the rest of the Rust admin API (vaults, identities, apps, roles, secrets, certificates)
//! through [`State`], which it dereferences to: each one call of an operation of
//! [`crate::state`], as the HTTP admin API's routes are.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::AdminError;
use crate::state::{
    AuthorizationModel, Booting, Faults, Identity, ListPaging, NetworkDenial, RequestCount, State,
    Throttle, Vault,
};
use crate::token::AccessClaims;

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The HTTPS listener (Key Vault, Entra ID, admin). Default `127.0.0.1:0`.
    pub https_addr: SocketAddr,
    /// The plain-http IMDS listener. Default `127.0.0.1:0`.
    pub imds_addr: SocketAddr,
    /// Where the CA (and with `persist`, the state and signing key) is kept; none keeps
    /// everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Save the state to `data_dir/state.json` after every change and load it at start.
    pub persist: bool,
    /// Applied at start.
    pub seed: Option<crate::seed::Seed>,
    /// Answer IMDS as Azure Arc's agent does: a request without the key of a fresh key file in
    /// this directory gets a 401 naming the file ([`crate::imds::ArcChallenge`]).
    pub arc_key_directory: Option<PathBuf>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        EmulatorConfig {
            https_addr: loopback,
            imds_addr: loopback,
            data_dir: None,
            persist: false,
            seed: None,
            arc_key_directory: None,
        }
    }
}

/// The emulator; see [`Emulator::start`].
pub struct Emulator;

impl Emulator {
    /// Binds the listeners and starts serving; the emulator stops when the handle is dropped or
    /// [`RunningEmulator::shutdown`] is called.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<RunningEmulator> {
        let data_dir = config.data_dir.as_deref();
        if config.persist && data_dir.is_none() {
            anyhow::bail!("persisting the state needs a data directory (--data-dir)");
        }
        let authority = crate::tls::Authority::load_or_create(data_dir)?;
        let (model, issuer, persist_path) = crate::persist::load(data_dir, config.persist)?;
        let state = Arc::new(State::new(model, issuer, persist_path));
        if let Some(seed) = &config.seed {
            crate::seed::apply(&state, seed).context("failed to apply the seed")?;
        }
        let ca_pem = Arc::new(authority.ca_pem.clone());
        let https = TcpListener::bind(config.https_addr)
            .await
            .with_context(|| format!("failed to listen on {} (https)", config.https_addr))?;
        let imds = TcpListener::bind(config.imds_addr)
            .await
            .with_context(|| format!("failed to listen on {} (imds)", config.imds_addr))?;
        let https_addr = https.local_addr()?;
        let imds_addr = imds.local_addr()?;
        let faults = state.clone();
        let untrusted: crate::tls::Untrusted = Arc::new(move |name: &str| {
            crate::keyvault::vault_from_host(name)
                .is_some_and(|vault| faults.traffic.faults(&vault).untrusted_certificate)
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(authority.server_config(untrusted)?);
        let arc = config
            .arc_key_directory
            .clone()
            .map(crate::imds::ArcChallenge::new);
        let cancel = CancellationToken::new();
        crate::server::spawn(
            state.clone(),
            ca_pem.clone(),
            https,
            acceptor,
            imds,
            arc,
            &cancel,
        );
        tracing::info!(%https_addr, %imds_addr, "local vault listening");
        Ok(RunningEmulator {
            state,
            https_addr,
            imds_addr,
            ca_pem,
            cancel,
        })
    }
}

/// A running emulator: its addresses, CA, and the fault and counter helpers as methods. It is a
/// handle on its model: it dereferences to [`State`], whose methods are the rest of the admin
/// API (`emulator.set_secret(..)`, `emulator.create_certificate(..)`, `emulator.read(..)`).
pub struct RunningEmulator {
    state: Arc<State>,
    https_addr: SocketAddr,
    imds_addr: SocketAddr,
    ca_pem: Arc<String>,
    cancel: CancellationToken,
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl std::ops::Deref for RunningEmulator {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl RunningEmulator {
    /// The HTTPS listener's address; map vault host names to it.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The IMDS listener's address.
    pub fn imds_addr(&self) -> SocketAddr {
        self.imds_addr
    }

    /// The IMDS identity endpoint (an `msiEndpoint`): `http://127.0.0.1:PORT/metadata/identity`.
    pub fn imds_url(&self) -> String {
        format!("http://{}/metadata/identity", self.imds_addr)
    }

    /// The Entra ID authority host: `https://localhost:PORT`.
    pub fn authority_host(&self) -> String {
        format!("https://localhost:{}", self.https_addr.port())
    }

    /// The vault URL clients use: `https://<vault>.vault.azure.net:PORT` (map the host to
    /// [`Self::https_addr`]).
    pub fn vault_url(&self, vault: &str) -> String {
        self.vault_url_in(vault, ".vault.azure.net")
    }

    /// The vault URL under another of [`crate::keyvault::VAULT_SUFFIXES`]
    /// (`.vault.localhost`, `.vault.azure.cn`, ...): `https://<vault><suffix>:PORT`. The
    /// challenge and the accepted token audience follow the suffix.
    pub fn vault_url_in(&self, vault: &str, suffix: &str) -> String {
        format!("https://{vault}{suffix}:{}", self.https_addr.port())
    }

    /// The CA certificate (PEM) that issued the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// Creates an empty vault in the default tenant with RBAC authorization.
    pub fn add_vault(&self, name: &str) -> Result<Vault, AdminError> {
        self.state
            .create_vault(name, None, AuthorizationModel::Rbac)
    }

    /// Signs an access token for `identity` and `resource` valid from `not_before` to
    /// `expires_on` (Unix seconds), as IMDS would issue it: for tests of tokens that IMDS never
    /// hands out (expired, not yet valid).
    pub fn issue_token(
        &self,
        identity: &Identity,
        resource: &str,
        not_before: i64,
        expires_on: i64,
    ) -> anyhow::Result<String> {
        self.state.issuer.issue(&AccessClaims::new(
            resource,
            &identity.tenant_id,
            &identity.object_id,
            &identity.client_id,
            not_before,
            expires_on,
        ))
    }

    /// Replaces the faults of a scope (a vault name, `imds` or `entra`).
    pub fn set_faults(&self, scope: &str, faults: Faults) {
        self.state.traffic.set_faults(scope, faults);
    }

    /// Throttles a scope: at most `limit` requests per `window`, the rest get 429.
    pub fn throttle(
        &self,
        scope: &str,
        limit: u32,
        window: std::time::Duration,
        retry_after_s: Option<u64>,
    ) {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self.state.traffic.update_faults(scope, |f| {
            f.throttle = Some(Throttle {
                limit,
                window_ms,
                retry_after_s,
            })
        });
    }

    /// Throttles `vault` as Key Vault's service limits do for secrets
    /// ([`Throttle::key_vault_secrets`]: 4,000 requests per 10 s), the 429s with
    /// `Retry-After: retry_after_s` or without it.
    pub fn throttle_like_key_vault(&self, vault: &str, retry_after_s: Option<u64>) {
        self.state.traffic.update_faults(vault, |f| {
            f.throttle = Some(Throttle::key_vault_secrets(retry_after_s));
        });
    }

    /// The request counters summed per scope and status.
    pub fn request_stats(&self) -> crate::state::RequestStats {
        self.state.traffic.stats()
    }

    /// Answers the next requests of a scope with `statuses`, one each.
    pub fn fail_next(&self, scope: &str, statuses: &[u16]) {
        self.state
            .traffic
            .update_faults(scope, |f| f.statuses.extend(statuses.iter().copied()));
    }

    pub fn add_latency(&self, scope: &str, latency: std::time::Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.state
            .traffic
            .update_faults(scope, |f| f.latency_ms = ms);
    }

    /// Closes the connection of the next `count` requests of a scope without answering.
    pub fn drop_next(&self, scope: &str, count: u32) {
        self.state
            .traffic
            .update_faults(scope, |f| f.drop_next += count);
    }

    /// Cuts the answers to the next `count` requests of a scope short: the status line, the
    /// headers (with the whole answer's `Content-Length`) and half the body are sent, then the
    /// connection closes.
    pub fn cut_next(&self, scope: &str, count: u32) {
        self.state
            .traffic
            .update_faults(scope, |f| f.cut_next += count);
    }

    /// Makes TLS handshakes for `vault`'s host name present a self-signed impostor certificate
    /// that the local vault's CA did not issue, until [`clear_faults`](Self::clear_faults).
    pub fn untrusted_certificate(&self, vault: &str) {
        self.state
            .traffic
            .update_faults(vault, |f| f.untrusted_certificate = true);
    }

    /// Makes IMDS answer as it does while booting: the next `not_found` token requests get 404,
    /// then the next `gone` get 410 (IMDS's error body), then it answers again.
    pub fn imds_booting(&self, not_found: u32, gone: u32) {
        self.state
            .traffic
            .update_faults(crate::server::IMDS_SCOPE, |f| {
                f.booting = Some(Booting { not_found, gone })
            });
    }

    /// Serves the list answers of `vault` in short pages, as Key Vault can: at most `page_size`
    /// items a page, each preceded by `empty_pages` empty pages, every one but the last with a
    /// `nextLink`.
    pub fn short_list_pages(&self, vault: &str, page_size: u32, empty_pages: u32) {
        self.state.traffic.update_faults(vault, |f| {
            f.list_paging = Some(ListPaging {
                page_size,
                empty_pages,
            })
        });
    }

    /// Makes `vault`'s network rules refuse every authenticated request with Key Vault's 403
    /// (`innererror.code` `ForbiddenByFirewall` or `ForbiddenByConnection`), whatever the
    /// caller's roles, until [`clear_faults`](Self::clear_faults). Requests without a valid
    /// token still get the 401 challenge first, as the 403 names the caller.
    pub fn deny_network(&self, vault: &str, denial: NetworkDenial) {
        self.state
            .traffic
            .update_faults(vault, |f| f.network_denial = Some(denial));
    }

    /// Makes the certificate operations that `vault` starts from now on read `inProgress` for
    /// `polls` polls of `GET .../pending` before `completed` (Key Vault's issuance takes a while).
    pub fn pending_polls(&self, vault: &str, polls: u32) {
        self.state
            .traffic
            .update_faults(vault, |f| f.pending_polls = polls);
    }

    /// Makes `vault`'s soft deletes and recoveries complete `delay` after they are asked for, as
    /// Key Vault's do: meanwhile `/deleted...` (or the recovered object) reads as not found and
    /// writes to a name being deleted get `409 ObjectIsBeingDeleted`. Zero: at once (the default).
    pub fn set_deletion_delay(&self, vault: &str, delay: std::time::Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state
            .traffic
            .update_faults(vault, |f| f.deletion_delay_ms = ms);
    }

    pub fn clear_faults(&self, scope: &str) {
        self.state.traffic.set_faults(scope, Faults::default());
    }

    /// Which identity made which Key Vault request: authenticated requests per vault, path and
    /// caller object id ([`crate::CallerCount`]), since the start or the last
    /// [`reset_counters`](Self::reset_counters).
    pub fn callers(&self) -> Vec<crate::CallerCount> {
        self.state.traffic.callers()
    }

    /// How many authenticated requests for `path` in `vault` the identity with object id
    /// `object_id` made.
    pub fn caller_count(&self, vault: &str, path: &str, object_id: &str) -> u64 {
        self.callers()
            .iter()
            .filter(|c| c.vault == vault && c.path == path && c.object_id == object_id)
            .map(|c| c.count)
            .sum()
    }

    pub fn counters(&self) -> Vec<RequestCount> {
        self.state.traffic.counters()
    }

    /// Requests seen in `scope` (a vault name, `imds`, `entra`) for `path`, any method and status
    /// (dropped connections count with status 0).
    pub fn request_count(&self, scope: &str, path: &str) -> u64 {
        self.count_where(|c| c.scope == scope && c.path == path)
    }

    /// Requests in `scope` answered with `status`.
    pub fn status_count(&self, scope: &str, status: u16) -> u64 {
        self.count_where(|c| c.scope == scope && c.status == status)
    }

    /// The requests of the counters that `keep` selects.
    fn count_where(&self, keep: impl Fn(&RequestCount) -> bool) -> u64 {
        self.state
            .traffic
            .counters()
            .iter()
            .filter(|c| keep(c))
            .map(|c| c.count)
            .sum()
    }

    /// The most requests to `scope` (a vault name, `imds` or `entra`) that were being handled at
    /// the same time since the start or the last [`reset_counters`](Self::reset_counters).
    pub fn peak_in_flight(&self, scope: &str) -> u32 {
        self.state.traffic.peak_in_flight(scope)
    }

    pub fn reset_counters(&self) {
        self.state.traffic.reset_counters();
    }
}
