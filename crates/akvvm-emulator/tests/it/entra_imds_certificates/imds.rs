//! IMDS errors, and tokens for other audiences.

use super::*;

#[tokio::test]
async fn imds_errors_and_tokens_for_other_audiences() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.add_vault(VAULT).unwrap();
    let management = "https://management.azure.com/";

    assert_eq!(
        sdk::json_answer(sdk::imds_request(&emulator, management)).await,
        (
            400,
            json!({"error": "invalid_request", "error_description": "Identity not found"})
        )
    );
    let no_header = reqwest::Client::new()
        .get(sdk::imds_token_url(&emulator, management))
        .send()
        .await
        .unwrap();
    assert_eq!(
        no_header.json::<Value>().await.unwrap()["error_description"],
        "Required metadata header not specified"
    );

    let identity = emulator
        .set_system_identity(IdentitySpec::default())
        .unwrap();
    emulator.assign_roles(VAULT, "system", &["get"]).unwrap();
    let (_, body) = sdk::json_answer(sdk::imds_request(&emulator, management)).await;
    assert_eq!(body["client_id"], identity.client_id.as_str());
    assert_eq!(body["resource"], "https://management.azure.com/");
    // A token for another audience is refused by Key Vault with the challenge.
    let response = http(&emulator)
        .get(format!(
            "{}/secrets/x?api-version=7.4",
            emulator.vault_url(VAULT)
        ))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("AKV10022: Invalid audience."),
        "{error}"
    );

    // Injected IMDS faults use IMDS's own error body.
    emulator.fail_next("imds", &[503]);
    let failed = sdk::imds_request(&emulator, management)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 503);
    assert_eq!(emulator.status_count("imds", 503), 1);
}
