//! The engine: one [`Engine`] holds a vault client per vault, the stores, the state file and the
//! hook journal, and checks certificates concurrently ([`Engine::cycle`]).
//!
//! To add a step to a certificate's check, extend `Engine::check_inner`. When and how the state
//! file is saved (the journal, the compactions) is in `save`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use akvvm_cert::store::{Acl, InstallRequest, Store};
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::settings::{AclEntry, ObservedCertificate, ReloadHook, Settings};
use crate::vault::{SecretBundle, VaultClient};

use super::connect;
use super::hook::{self, HookContext, HookJournal, HookRecord, HookRetry, HookState};
use super::list::{self, ListCost, Listed};
use super::state::{LastError, StateEntry, StateFile};
use super::{
    CertOutcome, CertReport, CycleReport, HookOutcome, InstalledInfo, SetupError, SyncError,
};
use akvvm_cert::locks::MutexExt;

/// One vault as one identity sees it ([`connect::VaultKey`]).
struct VaultHandle {
    client: VaultClient,
    /// The vault's permits, shared by every identity's handle of that vault.
    permits: Arc<Semaphore>,
    /// What listing this vault with this identity cost so far ([`list::page_budget`]).
    list_cost: Mutex<ListCost>,
}

/// How many certificate checks are under way at once, at least: each holds little while it
/// waits for its vault's permit, but 10,000 of them at once would hold it 10,000 times.
const MIN_CHECKS_IN_FLIGHT: usize = 64;

/// Everything a cycle needs: vault clients, stores, the state file and the hook journal.
pub struct Engine {
    settings: Settings,
    options: EngineOptions,
    vaults: BTreeMap<connect::VaultKey, VaultHandle>,
    stores: BTreeMap<PathBuf, Arc<Store>>,
    state: Mutex<StateFile>,
    /// Whether the state holds a change worth saving ([`list::significant_change`]).
    dirty: AtomicBool,
    /// The URLs whose entries changed significantly since the last save: what a journal append
    /// writes ([`super::state::journal`]). Locked after `state`, never before.
    changed: Mutex<std::collections::HashSet<String>>,
    /// Whether the next save must write the whole state (a save failed: the journal on disk may
    /// end in a torn record, or not continue the state file).
    compact_next: AtomicBool,
    /// Spreads the certificates' full checks ([`list::full_check_interval_for`]).
    full_check_salt: u64,
    /// Serialises saves so that a later snapshot is never overwritten by an earlier one, and
    /// remembers when the last one started.
    saving: tokio::sync::Mutex<Option<Instant>>,
    hooks: Mutex<HookJournal>,
    metrics: Arc<Metrics>,
    /// Chain validation, when on ([`EngineOptions::chain_validation`]).
    chain: Option<chain::ChainCheck>,
}

impl Engine {
    /// Builds the engine: one vault client per vault (connections reused), the stores opened,
    /// the state file loaded (a corrupt one is set aside and rebuilt from the stores).
    pub fn new(settings: Settings, options: EngineOptions) -> Result<Self, SetupError> {
        let metrics = Metrics::new();
        let vault_clients =
            connect::vault_clients(&settings, Some(metrics.clone())).map_err(Box::new)?;
        let mut vaults = BTreeMap::new();
        let mut permits_by_host: BTreeMap<String, Arc<Semaphore>> = BTreeMap::new();
        for (key, client) in vault_clients {
            let permits = permits_by_host
                .entry(key.host.clone())
                .or_insert_with(|| {
                    Arc::new(Semaphore::new(settings.agent.concurrency_per_vault.get()))
                })
                .clone();
            vaults.insert(
                key,
                VaultHandle {
                    client,
                    permits,
                    list_cost: Mutex::new(ListCost::default()),
                },
            );
        }
        let mut stores = BTreeMap::new();
        for cert in &settings.observed {
            if !stores.contains_key(&cert.store_dir) {
                stores.insert(
                    cert.store_dir.clone(),
                    Arc::new(Store::open_layout(
                        &cert.store_dir,
                        settings.mode.mode.store_layout(),
                    )?),
                );
            }
        }
        super::state_dir::secure(&settings.agent.state_directory)?;
        let state_path = state_file_path(&settings);
        let (mut state, problem) = StateFile::load_or_recover(&state_path);
        let problem_seen = problem.is_some();
        if let Some(problem) = problem {
            tracing::warn!(error = %problem, "the state file could not be loaded; rebuilding it from the store");
        }
        let observed: std::collections::HashSet<String> = settings
            .observed
            .iter()
            .map(|c| c.url.to_string())
            .collect();
        let stale: Vec<String> = state
            .entries()
            .map(|(url, _)| url.to_string())
            .filter(|url| !observed.contains(url))
            .collect();
        let dirty = !stale.is_empty() || problem_seen;
        for url in stale {
            if settings.agent.prune_removed_certificates
                && let Some(entry) = state.entry(&url)
            {
                super::prune_removed::prune(&settings, &stores, &url, entry);
            }
            state.remove(&url);
        }
        let hooks = HookJournal::load(&settings.agent.state_directory);
        let chain = options
            .chain_validation
            .then(|| chain::ChainCheck::new(&settings));
        Ok(Engine {
            settings,
            options,
            vaults,
            stores,
            state: Mutex::new(state),
            dirty: AtomicBool::new(dirty),
            changed: Mutex::new(std::collections::HashSet::new()),
            compact_next: AtomicBool::new(true),
            full_check_salt: rand::random(),
            saving: tokio::sync::Mutex::new(None),
            hooks: Mutex::new(hooks),
            metrics,
            chain,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// The counters this engine and its vault clients keep.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Checks every certificate whose URL `select` accepts, concurrently.
    pub async fn cycle(
        &self,
        select: impl Fn(&str) -> bool,
        cancel: &CancellationToken,
    ) -> CycleReport {
        let started = Instant::now();
        let certificates: Vec<(usize, &ObservedCertificate)> = self
            .settings
            .observed
            .iter()
            .enumerate()
            .filter(|(_, c)| select(&c.url.to_string()))
            .collect();
        // What others changed in the stores since the last cycle is seen by its first install. A
        // cycle of a few certificates (a push, a retry) scans only a store that changed.
        let whole = certificates.len() == self.settings.observed.len();
        for store in self.stores.values() {
            if whole {
                store.rescan();
            } else {
                store.rescan_if_changed();
            }
        }
        let listed = {
            let selected: Vec<&ObservedCertificate> =
                certificates.iter().map(|(_, c)| *c).collect();
            self.list_vaults(&selected, cancel).await
        };
        // Many certificates at once; each vault's semaphore bounds what reaches it.
        let hosts = self
            .vaults
            .keys()
            .map(|key| &key.host)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let in_flight = hosts
            .saturating_mul(self.settings.agent.concurrency_per_vault.get())
            .saturating_mul(4)
            .max(MIN_CHECKS_IN_FLIGHT);
        let mut pending = certificates.into_iter();
        let mut running = futures::stream::FuturesUnordered::new();
        let mut reports: Vec<(usize, CertReport)> = Vec::new();
        loop {
            while running.len() < in_flight {
                let Some((position, cert)) = pending.next() else {
                    break;
                };
                let span = tracing::info_span!("certificate", url = %cert.url);
                let check = self.check(cert, &listed, cancel).instrument(span);
                running.push(async move { (position, check.await) });
            }
            match running.next().await {
                Some(report) => reports.push(report),
                None => break,
            }
        }
        // In the settings' order.
        reports.sort_by_key(|(position, _)| *position);
        let reports: Vec<CertReport> = reports.into_iter().map(|(_, report)| report).collect();
        super::batch_hook::run(&self.settings, &reports, cancel).await;
        self.save_state(None).await;
        self.metrics
            .record_cycle(OffsetDateTime::now_utc(), started.elapsed());
        reports.into()
    }

    /// Runs the reload hooks a previous run installed a version for but did not finish.
    pub async fn finish_interrupted_hooks(&self, cancel: &CancellationToken) -> Vec<CertReport> {
        let mut reports = Vec::new();
        for cert in &self.settings.observed {
            let url = cert.url.to_string();
            let pending = {
                let hooks = self.hooks.lock_or_recover();
                hooks
                    .get(&url)
                    .filter(|r| r.state == HookState::Pending)
                    .cloned()
            };
            let Some(pending) = pending else { continue };
            // What is in place, from the store's stable link: the state file may not have been
            // saved since that version was installed.
            let store = self.stores[&cert.store_dir].clone();
            let Some(info) = self
                .in_place(cert, &store)
                .filter(|info| info.version == pending.version)
            else {
                continue;
            };
            let link = {
                let state = self.state.lock_or_recover();
                state.entry(&url).and_then(|e| e.link.clone())
            };
            tracing::info!(%url, version = %pending.version, "running the reload hook an earlier run did not finish");
            let hook = self.run_hook(cert, &info, link, cancel).await;
            reports.push(CertReport {
                url,
                outcome: CertOutcome::Unchanged(info),
                hook,
            });
        }
        reports
    }

    /// The client `cert` goes through: its vault, as its identity
    /// ([`connect::identity_key`]).
    fn vault_key(&self, cert: &ObservedCertificate) -> connect::VaultKey {
        connect::VaultKey::of(&self.settings, cert)
    }

    /// `fullCheckIntervalInS` for `url`, spread ([`list::full_check_interval_for`]).
    fn full_check_interval_for(&self, url: &str) -> Duration {
        list::full_check_interval_for(
            self.settings.agent.full_check_interval,
            url,
            self.full_check_salt,
        )
    }

    /// Changes the state entry of `url`, noting whether the change must be saved.
    fn update_entry<T>(&self, url: &str, change: impl FnOnce(&mut StateEntry) -> T) -> T {
        let mut state = self.state.lock_or_recover();
        let entry = state.entry_mut(url);
        let before = entry.clone();
        let result = change(entry);
        if list::significant_change(&before, entry, self.settings.agent.full_check_interval) {
            self.note_change(url);
        }
        result
    }

    /// Lists the secrets of every vault where a list can stand for enough GETs
    /// ([`list::page_budget`]); the lists read to their end are returned.
    async fn list_vaults(
        &self,
        certificates: &[&ObservedCertificate],
        cancel: &CancellationToken,
    ) -> Listed {
        let interval = self.settings.agent.full_check_interval;
        let mut listed = Listed::default();
        if interval.is_zero() {
            return listed;
        }
        let now = OffsetDateTime::now_utc();
        let mut candidates: BTreeMap<connect::VaultKey, u32> = BTreeMap::new();
        {
            let state = self.state.lock_or_recover();
            for cert in certificates {
                let url = cert.url.to_string();
                if cert.url.version.is_none()
                    && state
                        .entry(&url)
                        .is_some_and(|e| list::listable(e, now, self.full_check_interval_for(&url)))
                {
                    *candidates.entry(self.vault_key(cert)).or_default() += 1;
                }
            }
        }
        let lists = candidates.into_iter().filter_map(|(key, count)| {
            let handle = &self.vaults[&key];
            let budget = list::page_budget(&handle.list_cost.lock_or_recover(), count)?;
            Some(async move {
                let list = list::list_vault(
                    &handle.client,
                    &handle.permits,
                    &handle.list_cost,
                    (key.host.as_str(), count, budget),
                    cancel,
                )
                .await?;
                Some((key, list))
            })
        });
        for (key, list) in futures::future::join_all(lists).await.into_iter().flatten() {
            listed.by_vault.insert(key, list);
        }
        listed
    }

    fn installed_info(&self, url: &str) -> Option<InstalledInfo> {
        let state = self.state.lock_or_recover();
        let entry = state.entry(url)?;
        Some(InstalledInfo {
            version: entry.installed_version.clone()?,
            thumbprint: entry.thumbprint.clone(),
            not_after: entry.not_after,
            file: entry.file.clone(),
            chain_warning: chain_warning_of(self.chain.is_some(), entry),
        })
    }

    /// The version in place for `cert`: the state file's, confirmed by the store's stable link;
    /// or, when the state file does not know it, the store's (recorded in the state).
    fn in_place(&self, cert: &ObservedCertificate, store: &Store) -> Option<InstalledInfo> {
        let url = cert.url.to_string();
        let current = match store.current(&cert.url.vault_name, &cert.url.name) {
            Ok(current) => current?,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the certificate's stable link");
                return None;
            }
        };
        match self.installed_info(&url) {
            Some(info) if info.version == current.version => Some(info),
            _ => {
                // The state file does not know this version (lost, corrupt, or written by
                // someone else): read it back from the store, writing nothing there.
                let read_back = store
                    .installed(
                        &cert.url.vault_name,
                        &cert.url.name,
                        cert.link_name.as_deref(),
                    )
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "cannot read the installed certificate back");
                        None
                    })
                    .filter(|installed| installed.version == current.version);
                let mut state = self.state.lock_or_recover();
                self.note_change(&url);
                let entry = state.entry_mut(&url);
                entry.installed_version = Some(current.version.clone());
                entry.version_updated = None;
                entry.file = Some(current.file.clone());
                entry.link = Some(current.link.clone());
                match &read_back {
                    Some(installed) => {
                        entry.thumbprint = Some(installed.thumbprint.clone());
                        entry.not_after = Some(installed.not_after);
                        entry.custom_link = installed.custom_link.clone();
                        entry.live_link = installed.live_link.clone();
                    }
                    None => {
                        entry.thumbprint = None;
                        entry.not_after = None;
                    }
                }
                tracing::info!(version = %current.version, "recorded the installed version found in the store");
                Some(InstalledInfo {
                    version: current.version,
                    thumbprint: entry.thumbprint.clone(),
                    not_after: entry.not_after,
                    file: Some(current.file),
                    chain_warning: chain_warning_of(self.chain.is_some(), entry),
                })
            }
        }
    }

    /// One certificate's check.
    async fn check(
        &self,
        cert: &ObservedCertificate,
        listed: &Listed,
        cancel: &CancellationToken,
    ) -> CertReport {
        let url = cert.url.to_string();
        let store = self.stores[&cert.store_dir].clone();
        let in_place = self.in_place(cert, &store);
        let result = self
            .check_inner(cert, store, in_place.clone(), listed, cancel)
            .await;
        let now = OffsetDateTime::now_utc();
        match result {
            Ok((outcome, mut hook)) => {
                let installed = matches!(outcome, CertOutcome::Installed(_));
                self.metrics.record_success(&url, now, installed);
                if hook.ran() {
                    self.metrics
                        .record_hook(&url, hook == HookOutcome::Succeeded);
                }
                if let CertOutcome::Unchanged(info) = &outcome {
                    self.update_entry(&url, |entry| entry.record_check(now));
                    // A hook that failed for this version stays reported until the next one.
                    if hook == HookOutcome::NotRun {
                        hook = self.failed_hook(&url, &info.version);
                    }
                }
                CertReport { url, outcome, hook }
            }
            Err(err) => {
                let message = err.to_string();
                let code = err.code().to_string();
                if !matches!(err, SyncError::Cancelled { .. }) {
                    tracing::warn!(code, error = %message, "certificate check failed");
                    self.metrics.record_failure(&url, &code);
                }
                self.update_entry(&url, |entry| entry.record_error(&code, &message, now));
                CertReport {
                    url,
                    outcome: CertOutcome::Failed {
                        code,
                        message,
                        installed: in_place,
                    },
                    hook: HookOutcome::NotRun,
                }
            }
        }
    }

    async fn check_inner(
        &self,
        cert: &ObservedCertificate,
        store: Arc<Store>,
        in_place: Option<InstalledInfo>,
        listed: &Listed,
        cancel: &CancellationToken,
    ) -> Result<(CertOutcome, HookOutcome), SyncError> {
        let url = cert.url.to_string();
        // A pinned version already in place is never fetched again.
        if let (Some(pinned), Some(info)) = (&cert.url.version, &in_place)
            && *pinned == info.version
        {
            tracing::debug!("pinned version is installed; not fetched");
            return Ok((CertOutcome::Unchanged(info.clone()), HookOutcome::NotRun));
        }
        // The vault's list shows the installed version's `updated`: nothing new (see `list`).
        if let Some(info) = &in_place
            && cert.url.version.is_none()
        {
            let confirmed = {
                let state = self.state.lock_or_recover();
                state.entry(&url).is_some_and(|entry| {
                    list::listable(
                        entry,
                        OffsetDateTime::now_utc(),
                        self.full_check_interval_for(&url),
                    ) && listed.confirms(
                        &self.vault_key(cert),
                        &cert.url.name,
                        entry,
                        &info.version,
                    )
                })
            };
            if confirmed {
                tracing::debug!(version = %info.version, "the vault's list shows no new version");
                return Ok((CertOutcome::Unchanged(info.clone()), HookOutcome::NotRun));
            }
        }
        let bundle = self.fetch(cert, cancel).await?;
        let version = bundle.version.clone();
        let verified = (OffsetDateTime::now_utc(), list::settled_updated(&bundle));
        if let Some(info) = in_place.as_ref().filter(|i| i.version == version) {
            tracing::debug!(%version, "installed version is current");
            self.update_entry(&url, |entry| {
                entry.verified_at = Some(verified.0);
                entry.version_updated = verified.1;
            });
            return Ok((CertOutcome::Unchanged(info.clone()), HookOutcome::NotRun));
        }
        if bundle.enabled == Some(false) {
            return Err(SyncError::Disabled { url });
        }
        // Decoding a PFX costs milliseconds of key derivation: off the async workers.
        let decoded = tokio::task::spawn_blocking(move || {
            akvvm_cert::certificate::decode_secret(bundle.content_type.as_deref(), &bundle.value)
        })
        .await
        .map_err(|e| SyncError::Task {
            url: url.clone(),
            detail: e.to_string(),
        })?
        .map_err(|source| SyncError::Decode {
            url: url.clone(),
            source,
        })?;
        // 4.x: a broken chain is refused here, before anything is written or journalled.
        let chain_warning = match &self.chain {
            Some(check) => check.check(&url, &decoded).await?,
            None => None,
        };

        // The install runs to completion even when shutdown is requested meanwhile: a write is
        // never abandoned half-way.
        let acls: Vec<Acl> = if self.settings.acl_enabled {
            cert.acls
                .iter()
                .map(|a| match a {
                    AclEntry::User(u) => Acl::User(u.clone()),
                    AclEntry::Group(g) => Acl::Group(g.clone()),
                })
                .collect()
        } else {
            Vec::new()
        };
        let vault = cert.url.vault_name.clone();
        let name = cert.url.name.clone();
        let link_name = cert.link_name.clone();
        let certbot_layout = cert.certbot_layout(&self.settings.agent);
        let keep = self.settings.agent.keep_versions;
        let files = cert.options.files.clone();
        // The hook is journalled as pending before the link moves: a crash after the switch
        // and before the hook ran must leave a pending record for the restart to finish
        // (crash_safety's SIGKILLs found the window when the record came after the install).
        // A crash before the switch leaves the record naming a version not in place, which
        // the restart skips; the next cycle installs that version and runs its hook.
        if self.hook_of(cert).is_some() {
            self.journal(&url, HookRecord::pending(&version));
        }
        let install_version = version.clone();
        let installed = tokio::task::spawn_blocking(move || {
            let request = InstallRequest {
                vault: &vault,
                name: &name,
                version: &install_version,
                bundle: &decoded,
                link_name: link_name.as_deref(),
                acls: &acls,
                keep,
                certbot_layout,
            };
            if files == akvvm_cert::store::FileAccess::default() {
                store.install(&request)
            } else {
                // `owner`, `group`, `mode`: applied to every new version's files.
                store.install_with_access(&request, &files)
            }
        })
        .await
        .map_err(|e| SyncError::Task {
            url: url.clone(),
            detail: e.to_string(),
        })??;
        let now = OffsetDateTime::now_utc();
        self.update_entry(&url, |entry| {
            entry.record_install(&installed, now);
            entry.verified_at = Some(verified.0);
            entry.version_updated = verified.1;
            entry.chain_warning = chain_warning.as_ref().map(|w| LastError {
                code: w.code.to_owned(),
                message: w.message.clone(),
                at: now,
            });
        });
        self.save_state_at_most_every_interval().await;
        tracing::info!(
            file = %installed.file.display(),
            version = %installed.version,
            thumbprint = %installed.thumbprint,
            not_after = %crate::status::format_timestamp(installed.not_after),
            "installed a new certificate version"
        );
        for pruned in &installed.pruned {
            tracing::info!(path = %pruned.display(), "removed an old version");
        }
        let info = InstalledInfo {
            version: installed.version.clone(),
            thumbprint: Some(installed.thumbprint.clone()),
            not_after: Some(installed.not_after),
            file: Some(installed.file.clone()),
            chain_warning: chain_warning.map(|w| format!("[{}] {}", w.code, w.message)),
        };
        let hook = self
            .run_hook(cert, &info, Some(installed.link.clone()), cancel)
            .await;
        Ok((CertOutcome::Installed(info), hook))
    }

    /// The reload hook of `cert` (its own, else the agent-wide one).
    fn hook_of<'a>(&'a self, cert: &'a ObservedCertificate) -> Option<&'a ReloadHook> {
        cert.reload_hook(&self.settings.agent)
    }

    async fn run_hook(
        &self,
        cert: &ObservedCertificate,
        info: &InstalledInfo,
        link: Option<PathBuf>,
        cancel: &CancellationToken,
    ) -> HookOutcome {
        let Some(hook) = self.hook_of(cert) else {
            return HookOutcome::NotRun;
        };
        let url = cert.url.to_string();
        let record = |state: HookState, error: Option<String>| HookRecord {
            version: info.version.clone(),
            state,
            at: OffsetDateTime::now_utc(),
            error,
        };
        let already_pending = {
            let hooks = self.hooks.lock_or_recover();
            hooks
                .get(&url)
                .is_some_and(|r| r.state == HookState::Pending && r.version == info.version)
        };
        if !already_pending {
            self.journal(&url, record(HookState::Pending, None));
        }
        let context = HookContext {
            cert_path: info.file.clone().unwrap_or_default(),
            link_path: link.unwrap_or_else(|| cert.stable_link_in(self.settings.mode.mode)),
            thumbprint: info.thumbprint.clone().unwrap_or_default(),
            version: info.version.clone(),
            url: url.clone(),
        };
        let retry = HookRetry::capped(self.settings.polling_interval);
        match hook::run_with_retries(hook, &context, &retry, cancel).await {
            Ok(attempts) => {
                tracing::info!(program = %hook.command[0], attempts, "reload hook succeeded");
                self.journal(&url, record(HookState::Succeeded, None));
                HookOutcome::Succeeded
            }
            Err(err @ hook::HookError::Cancelled { .. }) => {
                // Stays pending: the next start finishes it.
                tracing::warn!(error = %err, "reload hook interrupted");
                HookOutcome::Failed {
                    message: err.to_string(),
                }
            }
            Err(err) => {
                tracing::error!(code = err.code(), error = %err, "reload hook failed; not retried until the next version");
                self.journal(&url, record(HookState::Failed, Some(err.to_string())));
                HookOutcome::Failed {
                    message: err.to_string(),
                }
            }
        }
    }

    /// The error of the hook that failed for `version` of `url`, if it did.
    fn failed_hook(&self, url: &str, version: &str) -> HookOutcome {
        let hooks = self.hooks.lock_or_recover();
        hooks
            .get(url)
            .filter(|r| r.version == version && r.state == HookState::Failed)
            .map_or(HookOutcome::NotRun, |r| HookOutcome::Failed {
                message: r.error.clone().unwrap_or_else(|| "failed".to_string()),
            })
    }

    fn journal(&self, url: &str, record: HookRecord) {
        let mut hooks = self.hooks.lock_or_recover();
        if let Err(e) = hooks.record(url, record) {
            tracing::error!(error = %e, "failed to save the hook journal");
        }
    }

    /// One GET for `cert`: the latest version, or its pinned one. Waits for a permit of the
    /// certificate's vault, so no vault sees more than `concurrencyPerVault` requests at once.
    async fn fetch(
        &self,
        cert: &ObservedCertificate,
        cancel: &CancellationToken,
    ) -> Result<SecretBundle, SyncError> {
        let url = cert.url.to_string();
        let handle = &self.vaults[&self.vault_key(cert)];
        let request = async {
            let _permit = handle.permits.acquire().await;
            match &cert.url.version {
                Some(version) => handle.client.get_version(&cert.url.name, version).await,
                None => handle.client.get_latest(&cert.url.name).await,
            }
        };
        tokio::select! {
            result = request => Ok(result?),
            () = cancel.cancelled() => Err(SyncError::Cancelled { url }),
        }
    }
}

/// The `[code] message` of the chain warning recorded for the installed version, while chain
/// validation is on (a warning a 4.x run recorded says nothing to a 3.x one).
fn chain_warning_of(chain: bool, entry: &StateEntry) -> Option<String> {
    entry
        .chain_warning
        .as_ref()
        .filter(|_| chain)
        .map(|w| format!("[{}] {}", w.code, w.message))
}

mod chain;
mod metrics_view;
mod options;
mod save;

pub use options::{
    EngineOptions, INITIAL_RETRY_DELAY, MAX_RETRY_DELAY, POLL_JITTER, STATE_FILE_NAME,
    jittered_interval, startup_pause, state_file_in, state_file_path,
};

#[cfg(test)]
mod tests;
