//! Lists: the versions of an unknown name, short and empty pages carrying a `nextLink`,
//! and the order of versions.

use super::*;

#[tokio::test]
async fn the_versions_of_an_unknown_secret_are_an_empty_list() {
    let (emulator, _) = start().await;
    let token = imds_token(&emulator, "https://vault.azure.net").await;
    let response = http(&emulator, &[VAULT])
        .get(format!(
            "{}/secrets/never-set/versions?api-version=7.4",
            emulator.vault_url(VAULT)
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"value":[],"nextLink":null}"#
    );

    let versions: Vec<_> = sdk(&emulator, VAULT, ".vault.azure.net")
        .list_secret_properties_versions("never-set", None)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(versions.is_empty());
}

#[tokio::test]
async fn short_and_empty_pages_with_a_next_link_lose_no_item_in_the_sdk_pager() {
    let (emulator, _) = start().await;
    for i in 0..7 {
        emulator
            .set_secret(VAULT, &format!("s{i}"), value("v"))
            .unwrap();
        emulator.set_secret(VAULT, "many", value("v")).unwrap();
    }
    let client = sdk(&emulator, VAULT, ".vault.azure.net");
    // The SDK's first request goes without a token, for the challenge: not counted below.
    client.get_secret("many", None).await.unwrap();

    emulator.short_list_pages(VAULT, 2, 1);
    emulator.reset_counters();
    let listed = list_secrets(&client).await;
    assert_eq!(listed.len(), 8);
    // 8 items in pages of 2, each after an empty page: 8 answers.
    assert_eq!(emulator.request_count(VAULT, "/secrets"), 8);

    assert_eq!(list_versions(&client, "many", 5).await.len(), 7);

    // The first answer is an empty page that still links on; set through the HTTP admin API.
    let admin = http(&emulator, &[VAULT]);
    let set = admin
        .put(format!(
            "{}/_emulator/faults/{VAULT}",
            emulator.authority_host()
        ))
        .json(&json!({"listPaging": {"pageSize": 3, "emptyPages": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let token = imds_token(&emulator, "https://vault.azure.net").await;
    let first: Value = admin
        .get(format!(
            "{}/secrets?api-version=7.4",
            emulator.vault_url(VAULT)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["value"], json!([]));
    assert!(first["nextLink"].is_string());
    emulator.reset_counters();
    let listed = list_secrets(&client).await;
    assert_eq!(listed.len(), 8);
    // 3 pages of at most 3 items, each after two empty pages.
    assert_eq!(emulator.request_count(VAULT, "/secrets"), 9);

    emulator.clear_faults(VAULT);
    let listed = list_secrets(&client).await;
    assert_eq!(listed.len(), 8);
}

/// The version ids of a list answer's items, in the order listed.
fn listed_versions(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    ids.into_iter()
        .map(|id| id.rsplit('/').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn versions_are_listed_by_version_id_not_by_creation() {
    let (emulator, _) = start().await;
    emulator
        .assign_roles(VAULT, "system", &["Key Vault Certificates Officer"])
        .unwrap();
    // Eight random version ids: created in sorted order by chance once in 40,320 runs.
    let created: Vec<String> = (0..8)
        .map(|_| {
            emulator
                .set_secret(VAULT, "many", value("v"))
                .unwrap()
                .version
        })
        .collect();
    let mut by_id = created.clone();
    by_id.sort();

    // Through the official SDK's pager, three versions a page.
    let client = sdk(&emulator, VAULT, ".vault.azure.net");
    let listed = listed_versions(
        list_versions(&client, "many", 3)
            .await
            .into_iter()
            .map(|p| p.id.unwrap()),
    );
    assert_eq!(listed, by_id, "created in the order {created:?}");

    // Certificates the same way.
    let policy =
        json!({"key_props": {"kty": "EC", "crv": "P-256"}, "x509_props": {"subject": "CN=web"}});
    let mut created = vec![
        emulator
            .create_certificate(VAULT, "web", &policy)
            .unwrap()
            .version,
    ];
    for _ in 0..7 {
        created.push(emulator.rotate_certificate(VAULT, "web").unwrap().version);
    }
    let mut by_id = created.clone();
    by_id.sort();
    let token = imds_token(&emulator, "https://vault.azure.net").await;
    let (status, body) = json_answer(
        http(&emulator, &[VAULT])
            .get(format!(
                "{}/certificates/web/versions?api-version=7.4",
                emulator.vault_url(VAULT)
            ))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let listed = listed_versions(
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_owned()),
    );
    assert_eq!(listed, by_id, "created in the order {created:?}");
}
