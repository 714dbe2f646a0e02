//! The managed identity of an Azure Arc server: the local vault's IMDS answers as the Connected
//! Machine agent does (a 401 naming a fresh key file; the content of the file, presented as Basic
//! authorization, buys the token), and the token opens the vault through the official SDK.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use akvvm::http::{HostOverride, HttpOptions};
use akvvm::identity::{Identity, IdentityError, ManagedIdentityCredential, ManagedIdentityOptions};
use akvvm::settings::MsiEndpoint;
use akvvm::vault::{VaultClient, VaultOptions};
use akvvm_emulator::{Emulator, EmulatorConfig, IdentitySpec, SecretSpec};
use url::Url;

fn credential(imds: &Url, key_directory: &std::path::Path) -> ManagedIdentityCredential {
    ManagedIdentityCredential::new(
        &MsiEndpoint::new(imds),
        None,
        &HttpOptions::default(),
        ManagedIdentityOptions {
            arc_key_directory: key_directory.to_path_buf(),
            // The local vault's IMDS is not on Arc's port.
            arc_challenges: Some(true),
            ..ManagedIdentityOptions::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn an_arc_challenge_is_answered_with_the_key_file_and_the_token_opens_the_vault() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let emulator = Emulator::start(EmulatorConfig {
        arc_key_directory: Some(tokens.clone()),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator.add_vault("arcvault").unwrap();
    emulator
        .assign_roles("arcvault", "system", &["Key Vault Secrets User"])
        .unwrap();
    emulator
        .set_secret(
            "arcvault",
            "web",
            SecretSpec {
                value: "from-arc".into(),
                ..SecretSpec::default()
            },
        )
        .unwrap();
    let imds = Url::parse(&emulator.imds_url()).unwrap();

    let arc = Arc::new(credential(&imds, &tokens));
    let identity = Identity::Managed(arc.clone());
    let vault_url = Url::parse(&emulator.vault_url("arcvault")).unwrap();
    let options = VaultOptions {
        http: HttpOptions {
            extra_ca_pems: vec![emulator.ca_pem().to_owned()],
            host_overrides: vec![
                HostOverride::parse("arcvault.vault.azure.net", "127.0.0.1").unwrap(),
            ],
            ..HttpOptions::default()
        },
        ..VaultOptions::default()
    };
    let client = VaultClient::new(&vault_url, &identity, &options).unwrap();
    let secret = client
        .get_latest("web")
        .await
        .expect("read with the Arc token");
    assert!(
        secret.value.as_str() == "from-arc",
        "not the expected value (not shown)"
    );
    let keys: Vec<_> = std::fs::read_dir(&tokens).unwrap().collect();
    assert_eq!(keys.len(), 1, "one challenge, one key file");

    // The token is cached: no second challenge.
    client.get_latest("web").await.unwrap();
    assert_eq!(std::fs::read_dir(&tokens).unwrap().count(), 1);

    // A challenge naming a file outside the trusted directory is refused, and nothing is read.
    let elsewhere = credential(&imds, &dir.path().join("elsewhere"));
    let error = elsewhere
        .token_for_resource("https://vault.azure.net")
        .await
        .unwrap_err();
    assert_eq!(error.code(), "identity.arc_key_refused");
    let IdentityError::ArcKey { reason, path, .. } = &error else {
        panic!("{error}")
    };
    assert!(path.starts_with(&tokens.display().to_string()), "{path}");
    assert!(
        reason.contains("is not a .key file directly in") && reason.contains("elsewhere"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_key_file_too_large_or_unreadable_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    // An endpoint that names files the test controls: a stand-in for a hostile or broken agent.
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    let realm = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let named = realm.clone();
    let router = axum::Router::new().route(
        "/metadata/identity/oauth2/token",
        axum::routing::get(move |_headers: HeaderMap| {
            let named = named.clone();
            async move {
                let realm = named.lock().unwrap().clone();
                let mut headers = HeaderMap::new();
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    format!("Basic realm={realm}").parse().unwrap(),
                );
                (StatusCode::UNAUTHORIZED, headers, "{}").into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let imds = Url::parse(&format!("http://{address}/metadata/identity")).unwrap();
    let arc = credential(&imds, &tokens);

    std::fs::create_dir_all(&tokens).unwrap();
    let large = tokens.join("large.key");
    std::fs::write(&large, vec![b'k'; 5000]).unwrap();
    // A link to a file the agent may read (O_NOFOLLOW refuses it), a FIFO (which would block a
    // plain open), a directory.
    let symlink = tokens.join("link.key");
    std::fs::write(dir.path().join("target"), "k").unwrap();
    std::os::unix::fs::symlink(dir.path().join("target"), &symlink).unwrap();
    let fifo = tokens.join("fifo.key");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let directory = tokens.join("dir.key");
    std::fs::create_dir(&directory).unwrap();
    for (file, expected) in [
        (large.clone(), "is 5000 bytes, more than the 4096"),
        (tokens.join("missing.key"), "cannot be read"),
        (tokens.join("secret.txt"), "is not a .key file directly in"),
        (
            tokens.join("../tokens/large.key"),
            "is not a .key file directly in",
        ),
        (symlink.clone(), "cannot be read"),
        (fifo.clone(), "is not a regular file"),
        (directory.clone(), "is not a regular file"),
    ] {
        *realm.lock().unwrap() = file.display().to_string();
        let error = arc
            .token_for_resource("https://vault.azure.net")
            .await
            .unwrap_err();
        assert!(error.to_string().contains(expected), "{file:?}: {error}");
    }
}

/// A challenge is answered only by an Azure Arc endpoint on this machine: another endpoint's
/// `Basic realm=` gets no key, and neither does an Arc-style endpoint off loopback.
#[tokio::test]
async fn a_key_goes_only_to_the_arc_endpoint_over_loopback() {
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let key = tokens.join("a.key");
    std::fs::write(&key, "k3y-never-sent").unwrap();
    let root = akvvm::cert::machine::require_root("arc: a key file owned by another user");
    if root {
        // Owned by neither root nor himds: refused as well.
        let other = tokens.join("other.key");
        std::fs::write(&other, "k").unwrap();
        std::os::unix::fs::chown(&other, Some(4242), None).unwrap();
    }
    let presented = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let realm = Arc::new(std::sync::Mutex::new(key.display().to_string()));
    let (seen, named) = (presented.clone(), realm.clone());
    let router = axum::Router::new().route(
        "/metadata/identity/oauth2/token",
        axum::routing::get(move |headers: HeaderMap| {
            let (seen, named) = (seen.clone(), named.clone());
            async move {
                if let Some(value) = headers.get(header::AUTHORIZATION) {
                    seen.lock()
                        .unwrap()
                        .push(value.to_str().unwrap().to_owned());
                }
                let mut answer = HeaderMap::new();
                answer.insert(
                    header::WWW_AUTHENTICATE,
                    format!("Basic realm={}", named.lock().unwrap())
                        .parse()
                        .unwrap(),
                );
                (StatusCode::UNAUTHORIZED, answer, "{}").into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let with = |url: &str, arc_challenges: Option<bool>, http: HttpOptions| {
        ManagedIdentityCredential::new(
            &MsiEndpoint::new(&Url::parse(url).unwrap()),
            None,
            &http,
            ManagedIdentityOptions {
                arc_key_directory: tokens.clone(),
                arc_challenges,
                retry: akvvm::http::RetryPolicy::no_retry(),
            },
        )
        .unwrap()
    };

    // Not Azure Arc's endpoint (not localhost:40342): the 401 is an answer, not a challenge.
    let imds = with(
        &format!("http://{address}/metadata/identity"),
        None,
        HttpOptions::default(),
    );
    let error = imds
        .token_for_resource("https://vault.azure.net")
        .await
        .unwrap_err();
    assert_eq!(error.code(), "identity.imds_refused", "{error}");

    // Off loopback (a name that resolves here only through the override).
    let remote = with(
        &format!(
            "http://imds.example.com:{}/metadata/identity",
            address.port()
        ),
        Some(true),
        HttpOptions {
            host_overrides: vec![HostOverride::parse("imds.example.com", "127.0.0.1").unwrap()],
            ..HttpOptions::default()
        },
    );
    let error = remote
        .token_for_resource("https://vault.azure.net")
        .await
        .unwrap_err();
    assert_eq!(error.code(), "identity.arc_key_refused", "{error}");
    assert!(error.to_string().contains("not on this machine"), "{error}");

    // The local endpoint's challenge naming `key`: refused, and why.
    let refused_for = async |key: &std::path::Path| {
        *realm.lock().unwrap() = key.display().to_string();
        let local = with(
            &format!("http://{address}/metadata/identity"),
            Some(true),
            HttpOptions::default(),
        );
        let error = local
            .token_for_resource("https://vault.azure.net")
            .await
            .unwrap_err();
        assert_eq!(error.code(), "identity.arc_key_refused", "{error}");
        error.to_string()
    };
    if root {
        let error = refused_for(&tokens.join("other.key")).await;
        assert!(error.contains("is owned by uid 4242"), "{error}");
    }
    // Root's, but anyone may write it: whoever did could have put their own key there.
    let writable = tokens.join("writable.key");
    std::fs::write(&writable, "k").unwrap();
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o646)).unwrap();
    let error = refused_for(&writable).await;
    assert!(error.contains("mode 0646"), "{error}");
    assert!(
        presented.lock().unwrap().is_empty(),
        "a key was presented ({} times)",
        presented.lock().unwrap().len()
    );
}
