//! The engine's options that do not come from the settings' documented keys, its retry and
//! polling pauses, and where its state file lives.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::settings::Settings;

/// The state file's name in the agent's state directory.
pub const STATE_FILE_NAME: &str = "state.json";

/// The pause before the first retry of a failing certificate; doubled after each failure.
pub const INITIAL_RETRY_DELAY: Duration = Duration::from_secs(2);

/// The longest pause between retries of a failing certificate (never longer than the polling
/// interval either).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// The jitter applied to the polling interval: each wait is the interval times a random factor in
/// `1 - POLL_JITTER ..= 1 + POLL_JITTER`.
pub const POLL_JITTER: f64 = 0.1;

/// Options of the engine that do not come from the settings' documented keys.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The pause before the first retry of a failing certificate.
    pub initial_retry_delay: Duration,
    /// The longest pause between retries.
    pub max_retry_delay: Duration,
    /// Validate the chain of certificates carrying the serverAuth EKU before installing them
    /// (4.x documents it; see `chain`): on in 4.x mode ([`EngineOptions::for_settings`]), off
    /// in 3.x, so 3.x installs are unchanged.
    pub chain_validation: bool,
}

impl EngineOptions {
    /// The defaults, with no pause longer than the polling interval (so a short polling interval
    /// retries quickly too).
    pub fn for_settings(settings: &Settings) -> Self {
        EngineOptions {
            initial_retry_delay: INITIAL_RETRY_DELAY.min(settings.polling_interval),
            max_retry_delay: MAX_RETRY_DELAY.min(settings.polling_interval),
            chain_validation: settings.mode.mode == crate::settings::ExtensionMode::V4,
        }
    }

    /// The pause after `failures` consecutive failed attempts: doubling from
    /// `initial_retry_delay`, capped at `max_retry_delay`, with half of it jittered.
    pub fn retry_delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        let ceiling = self
            .initial_retry_delay
            .saturating_mul(factor)
            .min(self.max_retry_delay);
        let half = ceiling / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// A random pause between zero and `max` (`startupJitterInS`), uniform, so that machines started
/// together reach their vault spread over `max`.
pub fn startup_pause(max: Duration) -> Duration {
    max.mul_f64(rand::random::<f64>())
}

/// The polling interval with jitter.
pub fn jittered_interval(interval: Duration) -> Duration {
    let factor = 1.0 - POLL_JITTER + 2.0 * POLL_JITTER * rand::random::<f64>();
    interval.mul_f64(factor)
}

/// `<state directory>/state.json`.
pub fn state_file_path(settings: &Settings) -> PathBuf {
    state_file_in(&settings.agent.state_directory)
}

/// `<dir>/state.json`.
pub fn state_file_in(state_directory: &Path) -> PathBuf {
    state_directory.join(STATE_FILE_NAME)
}
