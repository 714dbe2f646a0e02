//! The names the guest agent and the handler agree on: the handler's name, its files and the
//! environment variables the guest agent sets for every handler command.

/// The handler name: the default `name` of `HandlerEnvironment.json`, reported in the status
/// file.
pub const HANDLER_NAME: &str = "Microsoft.Azure.KeyVault.KeyVaultForLinux";

/// The file the guest agent writes beside the extension.
pub const HANDLER_ENVIRONMENT_FILE: &str = "HandlerEnvironment.json";

/// The variable the guest agent sets, for every handler command it runs, to the extension's
/// directory (where it writes `HandlerEnvironment.json`).
pub const EXTENSION_PATH_ENV: &str = "AZURE_GUEST_AGENT_EXTENSION_PATH";

/// The variable the guest agent sets, for every handler command it runs, to the extension's
/// version (`4.0.1`).
pub const EXTENSION_VERSION_ENV: &str = "AZURE_GUEST_AGENT_EXTENSION_VERSION";

/// The environment variable the guest agent sets to the sequence number it is acting on.
pub const SEQUENCE_ENV: &str = "ConfigSequenceNumber";
