//! Loading the persisted state and the token signing key from the data directory.
//!
//! With `--persist`, `state.json` holds the [`Model`] (rewritten after each change) and
//! `token-signing-key.der` the PKCS#8 key that signs access tokens, so tokens survive restarts.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::state::Model;
use crate::token::TokenIssuer;

pub const STATE_FILE: &str = "state.json";
pub const SIGNING_KEY_FILE: &str = "token-signing-key.der";

pub fn load(
    data_dir: Option<&Path>,
    persist: bool,
) -> anyhow::Result<(Model, TokenIssuer, Option<PathBuf>)> {
    let Some(dir) = data_dir.filter(|_| persist) else {
        return Ok((Model::default(), TokenIssuer::generate()?, None));
    };
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let key_path = dir.join(SIGNING_KEY_FILE);
    let issuer = if key_path.exists() {
        let der = std::fs::read(&key_path)
            .with_context(|| format!("failed to read {}", key_path.display()))?;
        TokenIssuer::from_pkcs8(&der).with_context(|| format!("in {}", key_path.display()))?
    } else {
        let issuer = TokenIssuer::generate()?;
        crate::tls::write_private(&key_path, &issuer.pkcs8()?)?;
        issuer
    };
    let state_path = dir.join(STATE_FILE);
    let model = if state_path.exists() {
        let bytes = std::fs::read(&state_path)
            .with_context(|| format!("failed to read {}", state_path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a state file of this emulator version; move it away to start empty",
                state_path.display()
            )
        })?
    } else {
        Model::default()
    };
    Ok((model, issuer, Some(state_path)))
}
