//! Certificates as managed secrets encoded as Key Vault encodes them, deleted
//! certificates read, recovered and purged, and the certificate user role.

use super::*;

#[tokio::test]
async fn certificates_are_managed_secrets_encoded_as_key_vault_does() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator
        .assign_roles(VAULT, "system", &["Key Vault Secrets User"])
        .unwrap();
    let client = sdk(
        &emulator,
        Arc::new(ImdsCredential::system(emulator.imds_url())),
    );

    let rsa = emulator
        .create_certificate(VAULT, "web", &json!({"key_props": {"kty": "RSA", "key_size": 3072}, "x509_props": {"subject": "CN=www.contoso.com", "sans": {"dns_names": ["www.contoso.com"]}}}))
        .unwrap();
    let secret = client
        .get_secret("web", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(secret.content_type.as_deref(), Some("application/x-pkcs12"));
    assert_eq!(secret.managed, Some(true));
    assert_eq!(
        secret.kid.as_deref(),
        Some(format!("{}/keys/web/{}", emulator.vault_url(VAULT), rsa.version).as_str())
    );
    assert_eq!(
        secret.resource_id().unwrap().version.as_deref(),
        Some(rsa.version.as_str())
    );
    let value = secret.value.unwrap();
    let pfx = STANDARD.decode(&value).unwrap();
    // HMAC-SHA1 MAC, iteration count left out, as Key Vault's PFX files have it.
    assert_eq!(
        akvvm_cert::pkcs12::mac_summary(&pfx).unwrap(),
        Some(("1.3.14.3.2.26".to_owned(), None))
    );
    let bundle =
        akvvm_cert::certificate::decode_secret(Some("application/x-pkcs12"), &value).unwrap();
    assert_eq!(bundle.leaf.subject, "CN=www.contoso.com");
    assert_eq!(bundle.leaf.thumbprint(), rsa.thumbprint);
    assert_eq!(
        bundle.key.key_type(),
        &akvvm_cert::certificate::KeyType::Rsa { bits: 3072 }
    );

    // outContentType: the same PFX read as PEM (api-version 2025-07-01).
    let as_pem = client
        .get_secret(
            "web",
            Some(SecretClientGetSecretOptions {
                out_content_type: Some(ContentType::Pem),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(
        as_pem.content_type.as_deref(),
        Some("application/x-pem-file")
    );
    let converted = akvvm_cert::certificate::decode_secret(
        as_pem.content_type.as_deref(),
        as_pem.value.as_deref().unwrap(),
    )
    .unwrap();
    assert_eq!(converted.leaf.thumbprint(), rsa.thumbprint);

    let ec = emulator
        .create_certificate(VAULT, "mail", &json!({"key_props": {"kty": "EC", "crv": "P-521"}, "secret_props": {"contentType": "application/x-pem-file"}, "x509_props": {"subject": "CN=mail"}}))
        .unwrap();
    let pem = client
        .get_secret("mail", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(pem.content_type.as_deref(), Some("application/x-pem-file"));
    let bundle = akvvm_cert::certificate::decode_secret(
        pem.content_type.as_deref(),
        pem.value.as_deref().unwrap(),
    )
    .unwrap();
    assert_eq!(bundle.leaf.thumbprint(), ec.thumbprint);

    // Key Vault's own PFX (no password) imports as it is.
    let reimported = emulator
        .import_certificate(
            VAULT,
            "web-copy",
            &akvvm_emulator::certs::CertificateImport {
                pfx: Some(value.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(reimported.thumbprint, rsa.thumbprint);
    let bad = emulator
        .import_certificate(
            VAULT,
            "broken",
            &akvvm_emulator::certs::CertificateImport {
                pfx: Some("bm90IGEgcGZ4".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(bad.status(), 400);

    // Rotation: a new current version; the old one stays readable by version.
    let rotated = emulator.rotate_certificate(VAULT, "web").unwrap();
    assert_ne!(rotated.version, rsa.version);
    let current = client
        .get_secret("web", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(
        current.resource_id().unwrap().version.as_deref(),
        Some(rotated.version.as_str())
    );
    let old = client
        .get_secret(
            "web",
            Some(SecretClientGetSecretOptions {
                secret_version: Some(rsa.version.clone()),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_value(old.value.as_deref(), value.as_str());

    // Deleting a certificate deletes its secret.
    emulator.delete_certificate(VAULT, "mail").unwrap();
    let err = client.get_secret("mail", None).await.unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(404));

    // Disabling the certificate's current version disables its secret.
    emulator
        .set_certificate_enabled(VAULT, "web", None, false)
        .unwrap();
    let err = client.get_secret("web", None).await.unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(403));
}

/// Deleting a certificate through the data plane soft-deletes it as Key Vault does: it is read
/// back under `/deletedcertificates` (what the SDKs' delete pollers wait for), its name cannot be
/// reused until it is purged or recovered, and recovering brings back its secret too.
#[tokio::test]
async fn deleted_certificates_can_be_read_recovered_and_purged() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    let identity = emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator
        .assign_roles(
            VAULT,
            &identity.object_id,
            &["Key Vault Certificates Officer", "Key Vault Secrets User"],
        )
        .unwrap();
    emulator
        .create_certificate(VAULT, "web", &json!({"x509_props": {"subject": "CN=web"}}))
        .unwrap();
    let token = emulator
        .issue_token(&identity, "https://vault.azure.net", now(), now() + 3600)
        .unwrap();
    let http = http(&emulator);
    let base = emulator.vault_url(VAULT);
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = http
            .request(method, format!("{base}{path}?api-version=7.4"))
            .bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let body = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            };
            (status, body)
        }
    };

    let (status, deleted) = call(reqwest::Method::DELETE, "/certificates/web", None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted["recoveryId"],
        format!("{base}/deletedcertificates/web").as_str()
    );
    assert_eq!(
        deleted["attributes"]["recoveryLevel"],
        "Recoverable+Purgeable"
    );
    let (status, body) = call(reqwest::Method::GET, "/certificates/web", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "CertificateNotFound");
    assert_eq!(
        call(reqwest::Method::GET, "/secrets/web", None).await.0,
        404
    );
    let (status, read) = call(reqwest::Method::GET, "/deletedcertificates/web", None).await;
    assert_eq!(status, 200);
    assert_eq!(read["x5t"], deleted["x5t"]);
    assert_eq!(read["deletedDate"], deleted["deletedDate"]);
    let (status, listed) = call(reqwest::Method::GET, "/deletedcertificates", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        listed["value"][0]["recoveryId"],
        format!("{base}/deletedcertificates/web").as_str()
    );

    // The name is taken while the certificate is deleted.
    let (status, body) = call(
        reqwest::Method::POST,
        "/certificates/web/create",
        Some(json!({"policy": {"x509_props": {"subject": "CN=web"}}})),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        body,
        json!({"error": {"code": "Conflict", "message": "Certificate web is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the certificate can only be recovered or purged.", "innererror": {"code": "ObjectIsDeletedButRecoverable"}}})
    );

    // Recover: the certificate and its secret are back.
    let (status, recovered) = call(
        reqwest::Method::POST,
        "/deletedcertificates/web/recover",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(recovered["x5t"], deleted["x5t"]);
    assert_eq!(
        call(reqwest::Method::GET, "/secrets/web", None).await.0,
        200
    );
    let (status, body) = call(reqwest::Method::GET, "/deletedcertificates/web", None).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": {"code": "CertificateNotFound", "message": "Deleted Certificate not found: web"}})
    );

    // Delete and purge: gone for good, and the name is free again.
    assert_eq!(
        call(reqwest::Method::DELETE, "/certificates/web", None)
            .await
            .0,
        200
    );
    let (status, body) = call(reqwest::Method::DELETE, "/deletedcertificates/web", None).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(
        call(reqwest::Method::GET, "/deletedcertificates/web", None)
            .await
            .0,
        404
    );
    let (status, body) = call(
        reqwest::Method::POST,
        "/certificates/web/create",
        Some(json!({"policy": {"x509_props": {"subject": "CN=web"}}})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
}

/// "Key Vault Certificate User" reads certificates and their secrets (the PFX an agent installs)
/// and may change nothing, as the built-in role does.

#[tokio::test]
async fn the_certificate_user_role_reads_certificates_and_their_secrets() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    let identity = emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator
        .assign_roles(VAULT, &identity.object_id, &["Key Vault Certificate User"])
        .unwrap();
    emulator
        .create_certificate(VAULT, "web", &json!({"x509_props": {"subject": "CN=web"}}))
        .unwrap();
    let token = emulator
        .issue_token(&identity, "https://vault.azure.net", now(), now() + 3600)
        .unwrap();
    let http = http(&emulator);
    let base = emulator.vault_url(VAULT);
    for (method, path, expected) in [
        (reqwest::Method::GET, "/certificates/web", 200),
        (reqwest::Method::GET, "/certificates", 200),
        (reqwest::Method::GET, "/secrets/web", 200),
        (reqwest::Method::GET, "/secrets", 200),
        (reqwest::Method::DELETE, "/certificates/web", 403),
        (reqwest::Method::PUT, "/secrets/other", 403),
    ] {
        let response = http
            .request(method.clone(), format!("{base}{path}?api-version=7.4"))
            .bearer_auth(&token)
            .json(&json!({"value": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "{method} {path}");
    }
}
