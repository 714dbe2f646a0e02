//! The handler settings: `<config folder>/<seq>.settings`, the one the guest agent asks for (or
//! the highest), and its `runtimeSettings[0].handlerSettings.publicSettings`.

use std::path::{Path, PathBuf};

use super::environment::HandlerEnvironment;
use super::error::HandlerError;

/// The handler settings of one sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerSettings {
    pub sequence: u64,
    pub path: PathBuf,
    /// `runtimeSettings[0].handlerSettings.publicSettings`.
    pub public_settings: serde_json::Value,
}

/// The sequence number to act on: `ConfigSequenceNumber` when the guest agent set it, else the
/// highest `<seq>.settings` in `config_folder`.
pub fn sequence_number(config_folder: &Path, from_env: Option<&str>) -> Result<u64, HandlerError> {
    if let Some(value) = from_env.map(str::trim).filter(|v| !v.is_empty()) {
        return value.parse::<u64>().map_err(|_| HandlerError::BadSequence {
            value: value.to_string(),
        });
    }
    sequence_numbers(config_folder)?
        .last()
        .copied()
        .ok_or_else(|| HandlerError::NoSettings {
            folder: config_folder.to_path_buf(),
        })
}

/// Every `<seq>.settings` in `config_folder`, by sequence number, lowest first.
pub fn sequence_numbers(config_folder: &Path) -> Result<Vec<u64>, HandlerError> {
    let entries = std::fs::read_dir(config_folder).map_err(|source| HandlerError::Read {
        path: config_folder.to_path_buf(),
        source,
    })?;
    let mut numbers: Vec<u64> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_suffix(".settings")?.parse::<u64>().ok()
        })
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

impl HandlerSettings {
    /// Validates the public settings for the extension version the guest agent runs (it
    /// chooses the mode); warnings are logged.
    pub fn validate(
        &self,
        extension_version: Option<crate::settings::ExtensionVersion>,
    ) -> Result<crate::settings::Settings, crate::settings::LoadError> {
        match crate::settings::Settings::from_json_value_for(
            &self.public_settings,
            extension_version,
        ) {
            Ok((settings, warnings)) => {
                for warning in warnings {
                    tracing::warn!(path = %warning.path, code = warning.code, "{}", warning.message);
                }
                Ok(settings)
            }
            Err(diagnostics) => Err(crate::settings::LoadError::Invalid {
                path: self.path.clone(),
                diagnostics,
            }),
        }
    }

    /// Reads `<config_folder>/<sequence>.settings`.
    pub fn read(config_folder: &Path, sequence: u64) -> Result<Self, HandlerError> {
        let path = config_folder.join(format!("{sequence}.settings"));
        let text = crate::trusted::read_to_string("handler settings file", &path)
            .map_err(|e| HandlerError::from_trusted_read(&path, e))?;
        Self::parse(&path, sequence, &text)
    }

    /// Parses the text of the `<sequence>.settings` file read from `path`.
    pub fn parse(path: &Path, sequence: u64, text: &str) -> Result<Self, HandlerError> {
        let public_settings = Self::public_settings(path, text)?;
        Ok(HandlerSettings {
            sequence,
            path: path.to_path_buf(),
            public_settings,
        })
    }

    /// The sequence number the guest agent asks for (or the highest), and its settings.
    pub fn current(env: &HandlerEnvironment, from_env: Option<&str>) -> Result<Self, HandlerError> {
        let sequence = sequence_number(&env.config_folder, from_env)?;
        Self::read(&env.config_folder, sequence)
    }

    fn public_settings(path: &Path, text: &str) -> Result<serde_json::Value, HandlerError> {
        let missing = |detail: &str| HandlerError::NoPublicSettings {
            path: path.to_path_buf(),
            detail: detail.to_string(),
        };
        let root: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
            .map_err(|e| missing(&format!("not JSON: {e}")))?;
        let handler_settings = root
            .get("runtimeSettings")
            .ok_or_else(|| missing("no runtimeSettings"))?
            .get(0)
            .ok_or_else(|| missing("runtimeSettings is not a non-empty array"))?
            .get("handlerSettings")
            .ok_or_else(|| missing("no handlerSettings in runtimeSettings[0]"))?;
        if handler_settings
            .get("protectedSettings")
            .is_some_and(|p| !p.is_null() && p.as_str() != Some(""))
        {
            tracing::warn!(
                path = %path.display(),
                "protectedSettings are ignored: this extension has no protected settings"
            );
        }
        match handler_settings.get("publicSettings") {
            Some(value @ serde_json::Value::Object(_)) => Ok(value.clone()),
            // An escaped JSON string is handed on as is: the settings parser explains that pitfall.
            Some(value @ serde_json::Value::String(_)) => Ok(value.clone()),
            Some(_) => Err(missing("publicSettings is neither an object nor a string")),
            None => Err(missing("no publicSettings in handlerSettings")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_file(public: &str) -> String {
        format!(
            r#"{{"runtimeSettings":[{{"handlerSettings":{{"protectedSettingsCertThumbprint":null,"publicSettings":{public}}}}}]}}"#
        )
    }

    #[test]
    fn the_highest_sequence_number_wins_unless_the_environment_names_one() {
        let dir = tempfile::tempdir().unwrap();
        for seq in [0, 2, 10] {
            std::fs::write(
                dir.path().join(format!("{seq}.settings")),
                settings_file(&format!(r#"{{"seq":{seq}}}"#)),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("HandlerState"), "x").unwrap();
        std::fs::write(dir.path().join("11.settings.tmp"), "x").unwrap();
        assert_eq!(sequence_number(dir.path(), None).unwrap(), 10);
        // Numerically ordered (10 after 2), other files left out.
        assert_eq!(sequence_numbers(dir.path()).unwrap(), vec![0, 2, 10]);
        assert_eq!(sequence_number(dir.path(), Some("2")).unwrap(), 2);
        assert_eq!(sequence_number(dir.path(), Some("")).unwrap(), 10);
        assert_eq!(
            sequence_number(dir.path(), Some("x")).unwrap_err().code(),
            "handler.bad_sequence"
        );

        let settings = HandlerSettings::read(dir.path(), 10).unwrap();
        assert_eq!(settings.public_settings, serde_json::json!({"seq": 10}));
        assert_eq!(settings.path, dir.path().join("10.settings"));
    }

    #[test]
    fn an_empty_config_folder_says_no_settings_yet() {
        let dir = tempfile::tempdir().unwrap();
        let err = sequence_number(dir.path(), None).unwrap_err();
        assert_eq!(err.code(), "handler.no_settings");
    }

    #[test]
    fn settings_without_public_settings_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        for (i, text) in [
            r#"{"runtimeSettings":[]}"#.to_string(),
            r#"{"runtimeSettings":[{"handlerSettings":{}}]}"#.to_string(),
            settings_file("42"),
            "not json".to_string(),
        ]
        .iter()
        .enumerate()
        {
            std::fs::write(dir.path().join(format!("{i}.settings")), text).unwrap();
            let err = HandlerSettings::read(dir.path(), i as u64).unwrap_err();
            assert_eq!(err.code(), "handler.no_public_settings", "{text}");
            assert!(err.to_string().contains(&format!("{i}.settings")), "{err}");
        }
        // An escaped JSON string is passed on for the settings parser to explain.
        std::fs::write(
            dir.path().join("9.settings"),
            settings_file(r#""{\"a\":1}""#),
        )
        .unwrap();
        let settings = HandlerSettings::read(dir.path(), 9).unwrap();
        assert_eq!(settings.public_settings, serde_json::json!("{\"a\":1}"));
    }
}
