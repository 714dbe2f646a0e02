//! IMDS as real IMDS answers: the token path with a trailing slash, AADSTS500011 for an
//! unknown resource, `X-Forwarded-For` refused, 404 and 410 while booting.

use super::*;

#[tokio::test]
async fn imds_accepts_the_token_path_with_a_trailing_slash() {
    let (emulator, identity) = start().await;
    let response = reqwest::Client::new()
        .get(format!(
            "{}/oauth2/token/?api-version=2018-02-01&resource=https://vault.azure.net",
            emulator.imds_url()
        ))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["client_id"], identity.client_id.as_str());
    assert_eq!(body["resource"], "https://vault.azure.net");
    assert!(body["access_token"].as_str().is_some_and(|t| t.len() > 20));
}

#[tokio::test]
async fn imds_refuses_a_resource_entra_id_does_not_know_with_aadsts500011() {
    let (emulator, identity) = start().await;
    let (status, body) = json_answer(imds_request(&emulator, "https://unknown.example.com")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_resource");
    assert_eq!(body["error_codes"], json!([500011]));
    assert_eq!(
        body["error_uri"],
        "https://login.microsoftonline.com/error?code=500011"
    );
    let description = body["error_description"].as_str().unwrap();
    let expected = format!(
        "AADSTS500011: The resource principal named https://unknown.example.com was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.\r\nTrace ID: ",
        identity.tenant_id
    );
    assert!(description.starts_with(&expected), "{description}");
    assert!(description.contains("\r\nCorrelation ID: "));
    assert!(description.contains("\r\nTimestamp: "));

    // Known resources, with or without the trailing slash, and every cloud's Key Vault.
    for resource in ["https://management.azure.com/", "https://vault.azure.net/"]
        .into_iter()
        .chain(CLOUDS.iter().map(|(_, r)| *r))
    {
        imds_token(&emulator, resource).await;
    }
}

#[tokio::test]
async fn imds_refuses_a_request_carrying_x_forwarded_for() {
    let (emulator, _) = start().await;
    let request =
        imds_request(&emulator, "https://vault.azure.net").header("X-Forwarded-For", "10.0.0.4");
    assert_eq!(
        json_answer(request).await,
        (
            400,
            json!({"error": "invalid_request", "error_description": "Request contains X-Forwarded-For header"})
        )
    );
}

async fn imds_status(emulator: &RunningEmulator) -> (u16, Value) {
    json_answer(imds_request(emulator, "https://vault.azure.net")).await
}

#[tokio::test]
async fn booting_imds_answers_404_then_410_then_tokens() {
    let (emulator, _) = start().await;
    let not_found =
        json!({"error": "not_found", "error_description": "IMDS endpoint is updating."});
    let gone = json!({"error": "service_unavailable", "error_description": "IMDS is going through updates; it will be available within 70 seconds."});

    emulator.imds_booting(2, 1);
    assert_eq!(imds_status(&emulator).await, (404, not_found.clone()));
    assert_eq!(imds_status(&emulator).await, (404, not_found.clone()));
    assert_eq!(imds_status(&emulator).await, (410, gone.clone()));
    assert_eq!(imds_status(&emulator).await.0, 200);

    // The same through the HTTP admin API.
    let admin = http(&emulator, &[]);
    let admin_url = format!("{}/_emulator/faults/imds", emulator.authority_host());
    let set = admin
        .put(&admin_url)
        .json(&json!({"booting": {"notFound": 1, "gone": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(
        set.json::<Value>().await.unwrap()["booting"],
        json!({"notFound": 1, "gone": 1})
    );
    assert_eq!(imds_status(&emulator).await, (404, not_found));
    assert_eq!(imds_status(&emulator).await, (410, gone));
    assert_eq!(imds_status(&emulator).await.0, 200);
    assert_eq!(emulator.status_count("imds", 404), 3);
    assert_eq!(emulator.status_count("imds", 410), 2);
}
