//! Entra ID in its own words: AADSTS700023, 700027 and 700024 for client assertions, and
//! AADSTS90002 from discovery for an unknown tenant.

use super::*;

/// The first line of an Entra error's description (the rest is trace id, correlation id and
/// timestamp).
fn aadsts(body: &Value) -> &str {
    body["error_description"]
        .as_str()
        .unwrap()
        .split("\r\n")
        .next()
        .unwrap()
}

#[tokio::test]
async fn entra_refuses_client_assertions_in_its_own_words() {
    let (emulator, _) = start().await;
    let tenant = emulator.default_tenant();
    // An app certificate with a known validity, which AADSTS700027 names.
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.not_before = time::macros::datetime!(2026-01-02 03:04:05 UTC);
    params.not_after = time::macros::datetime!(2030-06-07 08:09:10 UTC);
    let cert = params.self_signed(&key).unwrap();
    let mut app = emulator
        .register_app(AppSpec {
            display_name: Some("words".into()),
            certificate_pem: Some(cert.pem()),
            ..AppSpec::default()
        })
        .unwrap();
    app.private_key_pem = Some(key.serialize_pem());
    let url = token_url(&emulator, &tenant);
    let refused = async |jwt: &str| {
        let (status, body) = request_token(&emulator, &tenant, &app.client_id, jwt).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
        body
    };

    // Another audience: AADSTS700023.
    let body = refused(&assertion(
        &app,
        "RS256",
        "https://elsewhere/token",
        json!({}),
    ))
    .await;
    assert_eq!(body["error_codes"], json!([700023]));
    assert_eq!(
        aadsts(&body),
        "AADSTS700023: Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials."
    );

    // Claims changed after signing: the key is found, the signature fails, and Entra names the
    // key by its hex thumbprint and validity.
    let signed = assertion(&app, "RS256", &url, json!({}));
    let parts: Vec<&str> = signed.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(br#"{"aud":"x"}"#),
        parts[2]
    );
    let body = refused(&tampered).await;
    assert_eq!(body["error_codes"], json!([700027]));
    let client_id = &app.client_id;
    assert_eq!(
        aadsts(&body),
        format!(
            "AADSTS700027: Client assertion failed signature validation. [Reason - Key was found, but use of the key to verify the signature failed., Thumbprint of key used by client: '{}', Found key 'Start=01/02/2026 03:04:05, End=06/07/2030 08:09:10', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query request URL, such as 'https://graph.microsoft.com/beta/applications/{client_id}']",
            app.thumbprint
        )
    );

    // A key the app does not have: named the same way.
    let stranger = emulator.register_app(AppSpec::default()).unwrap();
    let mut borrowed = stranger.clone();
    borrowed.client_id = app.client_id.clone();
    let body = refused(&assertion(&borrowed, "RS256", &url, json!({}))).await;
    assert!(
        aadsts(&body).starts_with(&format!(
            "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}', Please visit",
            stranger.thumbprint
        )),
        "{body}"
    );

    // Expired: the times in ISO-8601, as Entra writes them.
    let body = refused(&assertion(
        &app,
        "RS256",
        &url,
        json!({"nbf": 1_577_836_800, "exp": 1_577_840_400}),
    ))
    .await;
    assert_eq!(body["error_codes"], json!([700024]));
    let line = aadsts(&body);
    let current = line
        .strip_prefix("AADSTS700024: Client assertion is not within its valid time range. Current time: ")
        .and_then(|rest| rest.strip_suffix(", assertion valid from 2020-01-01T00:00:00.0000000Z, expiry time of assertion 2020-01-01T01:00:00.0000000Z. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials ."))
        .unwrap_or_else(|| panic!("{line}"));
    let current =
        time::OffsetDateTime::parse(current, &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert!((time::OffsetDateTime::now_utc() - current).abs() < time::Duration::minutes(1));
    assert_eq!(current.nanosecond(), 0, "{line}");
}

#[tokio::test]
async fn discovery_for_an_unknown_tenant_fails_with_invalid_tenant() {
    let (emulator, _) = start().await;
    let client = http(&emulator, &[]);
    let discover = async |tenant: &str| {
        json_answer(client.get(format!(
            "{}/{tenant}/v2.0/.well-known/openid-configuration",
            emulator.authority_host()
        )))
        .await
    };

    let (status, body) = discover("no-such-tenant").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_tenant");
    assert_eq!(body["error_codes"], json!([90002]));
    assert_eq!(
        body["error_uri"],
        "https://login.microsoftonline.com/error?code=90002"
    );
    assert_eq!(
        aadsts(&body),
        "AADSTS90002: Tenant 'no-such-tenant' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "{field}: {body}");
    }

    // The tenants the local vault knows, and Entra's multi-tenant aliases.
    let tenant = emulator.default_tenant();
    let (status, body) = discover(&tenant).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["token_endpoint"],
        format!("{}/{tenant}/oauth2/v2.0/token", emulator.authority_host())
    );
    for alias in ["common", "organizations"] {
        assert_eq!(discover(alias).await.0, 200, "{alias}");
    }
}
