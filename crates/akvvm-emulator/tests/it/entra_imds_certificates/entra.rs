//! Entra ID's client assertions (RS256 and PS256) checked against the registered
//! certificate, and their AADSTS errors.

use super::*;

#[tokio::test]
async fn entra_checks_client_assertions_against_the_registered_certificate() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    let tenant = emulator.default_tenant();
    let app = emulator
        .register_app(AppSpec {
            display_name: Some("paas".into()),
            ..AppSpec::default()
        })
        .unwrap();
    let url = token_url(&emulator, &tenant);

    let (status, body) = request_token(
        &emulator,
        &tenant,
        &app.client_id,
        &assertion(&app, "RS256", &url, json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);

    let (status, body) = request_token(
        &emulator,
        &tenant,
        &app.client_id,
        &assertion(&app, "PS256", &url, json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The app's own assertion with its claims changed after signing.
    let signed = assertion(&app, "RS256", &url, json!({}));
    let parts: Vec<&str> = signed.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["exp"] = json!(now() + 86_400);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    let (status, body) = request_token(&emulator, &tenant, &app.client_id, &tampered).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // Entra's layout: the message, then trace id, correlation id and timestamp lines.
    let description = body["error_description"].as_str().unwrap();
    let lines: Vec<&str> = description.split("\r\n").collect();
    // Entra's words with the key's thumbprint (the whole text: fidelity.rs).
    assert!(
        lines[0].starts_with(&format!("AADSTS700027: Client assertion failed signature validation. [Reason - Key was found, but use of the key to verify the signature failed., Thumbprint of key used by client: '{}', Found key 'Start=", app.thumbprint)),
        "{body}"
    );
    assert_eq!(
        lines[1],
        format!("Trace ID: {}", body["trace_id"].as_str().unwrap())
    );
    assert_eq!(
        lines[2],
        format!(
            "Correlation ID: {}",
            body["correlation_id"].as_str().unwrap()
        )
    );
    assert_eq!(
        lines[3],
        format!("Timestamp: {}", body["timestamp"].as_str().unwrap())
    );
    assert_eq!(lines.len(), 4, "{body}");

    let cases = [
        (
            assertion(&app, "RS256", "https://elsewhere/token", json!({})),
            401,
            "invalid_client",
            700023,
        ),
        (
            assertion(
                &app,
                "RS256",
                &url,
                json!({"nbf": now() - 4000, "exp": now() - 3000}),
            ),
            401,
            "invalid_client",
            700024,
        ),
        (
            assertion(&app, "RS256", &url, json!({"iss": "someone-else"})),
            401,
            "invalid_client",
            700021,
        ),
        ("not-a-jwt".to_owned(), 401, "invalid_client", 50027),
    ];
    for (jwt, want_status, want_error, want_code) in cases {
        let (status, body) = request_token(&emulator, &tenant, &app.client_id, &jwt).await;
        assert_eq!(
            (
                status,
                body["error"].as_str().unwrap(),
                body["error_codes"][0].as_u64().unwrap()
            ),
            (want_status, want_error, want_code),
            "{body}"
        );
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with(&format!("AADSTS{want_code}: "))
        );
    }
    let (status, body) = request_token(
        &emulator,
        &tenant,
        "unknown-app",
        &assertion(&app, "RS256", &url, json!({})),
    )
    .await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (400, Some(700016))
    );
    let (status, body) = request_token(
        &emulator,
        "no-such-tenant",
        &app.client_id,
        &assertion(&app, "RS256", &url, json!({})),
    )
    .await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (400, Some(90002))
    );

    // The whole bootstrap flow with the official SDK: challenge, assertion, token, secret.
    emulator
        .assign_roles(VAULT, "paas", &["Key Vault Secrets User"])
        .unwrap();
    emulator
        .set_secret(
            VAULT,
            "app-secret",
            SecretSpec {
                value: "for-the-app".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let credential = Arc::new(AppCredential {
        app,
        token_url: url,
        http: http(&emulator),
    });
    let secret = sdk(&emulator, credential)
        .get_secret("app-secret", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_value(secret.value.as_deref(), "for-the-app");
}
