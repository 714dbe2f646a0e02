//! The challenge and the accepted audience follow the vault host's DNS suffix, and the
//! official SDK works against `*.vault.localhost`.

use super::*;

#[tokio::test]
async fn the_challenge_and_the_audience_follow_the_vault_hosts_suffix() {
    let (emulator, _) = start().await;
    emulator.set_secret(VAULT, "db", value("s3cret")).unwrap();
    let client = http(&emulator, &[VAULT]);
    let tenant = emulator.default_tenant();
    for (suffix, resource) in CLOUDS {
        let url = format!(
            "{}/secrets/db?api-version=7.4",
            emulator.vault_url_in(VAULT, suffix)
        );
        let challenge = client.get(&url).send().await.unwrap();
        assert_eq!(challenge.status(), 401, "{suffix}");
        assert_eq!(
            challenge.headers()["www-authenticate"],
            format!(
                "Bearer authorization=\"https://login.windows.net/{tenant}\", resource=\"{resource}\""
            )
            .as_str()
        );

        let own = imds_token(&emulator, resource).await;
        let ok = client.get(&url).bearer_auth(&own).send().await.unwrap();
        assert_eq!(ok.status(), 200, "{suffix}");

        // A token for another cloud's Key Vault is refused.
        let other = if *resource == "https://vault.azure.net" {
            "https://vault.azure.cn"
        } else {
            "https://vault.azure.net"
        };
        let foreign = imds_token(&emulator, other).await;
        let refused = client.get(&url).bearer_auth(&foreign).send().await.unwrap();
        assert_eq!(refused.status(), 401, "{suffix}");
        assert!(refused.headers().contains_key("www-authenticate"));
        assert_eq!(
            refused.json::<Value>().await.unwrap(),
            json!({"error": {"code": "Unauthorized", "message": format!("AKV10022: Invalid audience. Expected {resource}, found: {other}.")}})
        );
    }
}

#[tokio::test]
async fn the_official_sdk_works_against_vault_localhost() {
    let (emulator, _) = start().await;
    emulator.set_secret(VAULT, "db", value("s3cret")).unwrap();
    let secret = sdk(&emulator, VAULT, ".vault.localhost")
        .get_secret("db", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(
        secret.value.as_deref() == Some("s3cret"),
        "the value differs"
    );
    assert!(
        secret
            .id
            .as_deref()
            .unwrap()
            .starts_with(&emulator.vault_url_in(VAULT, ".vault.localhost"))
    );
}
