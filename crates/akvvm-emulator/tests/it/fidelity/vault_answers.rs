//! Key Vault's answers: the certificate policy read and updated member by member, the
//! headers of every answer, and the 403s of a vault's network rules.

use super::*;

#[tokio::test]
async fn the_certificate_policy_is_read_and_updated_member_by_member() {
    let (emulator, _) = start().await;
    emulator
        .assign_roles(VAULT, "system", &["Key Vault Certificates Officer"])
        .unwrap();
    let policy = json!({"key_props": {"kty": "EC", "crv": "P-384"}, "x509_props": {"subject": "CN=web", "validity_months": 6}});
    emulator.create_certificate(VAULT, "web", &policy).unwrap();
    let client = http(&emulator, &[VAULT]);
    let token = imds_token(&emulator, "https://vault.azure.net").await;
    let url = |name: &str| {
        format!(
            "{}/certificates/{name}/policy?api-version=7.4",
            emulator.vault_url(VAULT)
        )
    };
    let patch = async |name: &str, body: Value| {
        json_answer(client.patch(url(name)).bearer_auth(&token).json(&body)).await
    };

    // "Set specified members in the certificate policy. Leave others as null." (the REST spec's
    // UpdateCertificatePolicy).
    let (status, updated) = patch(
        "web",
        json!({"x509_props": {"subject": "CN=renewed"}, "lifetime_actions": [{"trigger": {"days_before_expiry": 30}, "action": {"action_type": "EmailContacts"}}]}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["id"],
        format!("{}/certificates/web/policy", emulator.vault_url(VAULT))
    );
    assert_eq!(updated["x509_props"]["subject"], "CN=renewed");
    assert_eq!(updated["x509_props"]["validity_months"], 6);
    assert_eq!(updated["key_props"]["crv"], "P-384");
    assert_eq!(
        updated["lifetime_actions"],
        json!([{"trigger": {"days_before_expiry": 30}, "action": {"action_type": "EmailContacts"}}])
    );
    assert!(updated["attributes"]["updated"].as_i64() >= updated["attributes"]["created"].as_i64());
    let (_, read) = json_answer(client.get(url("web")).bearer_auth(&token)).await;
    assert_eq!(read, updated);
    // The next version follows it.
    emulator.rotate_certificate(VAULT, "web").unwrap();
    let (_, bundle) = json_answer(
        client
            .get(format!(
                "{}/certificates/web?api-version=7.4",
                emulator.vault_url(VAULT)
            ))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(bundle["policy"]["x509_props"]["subject"], "CN=renewed");
    // `policy` in a certificate's PATCH changes it the same way.
    let (status, bundle) = json_answer(
        client
            .patch(format!(
                "{}/certificates/web?api-version=7.4",
                emulator.vault_url(VAULT)
            ))
            .bearer_auth(&token)
            .json(&json!({"policy": {"x509_props": {"validity_months": 12}}})),
    )
    .await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["policy"]["x509_props"]["validity_months"], 12);
    assert_eq!(bundle["policy"]["x509_props"]["subject"], "CN=renewed");

    let (status, body) = patch(
        "web",
        json!({"key_props": {"kty": "RSA", "key_size": 1000}}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("BadParameter"))
    );
    let (status, body) = patch("no-such-cert", json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("CertificateNotFound"))
    );
}

#[tokio::test]
async fn answers_carry_key_vaults_headers_and_echo_the_client_request_id() {
    let (emulator, _) = start().await;
    emulator.set_secret(VAULT, "db", value("s3cret")).unwrap();
    let client = http(&emulator, &[VAULT, "policies"]);
    let token = imds_token(&emulator, "https://vault.azure.net").await;
    let url = format!("{}/secrets/db?api-version=7.4", emulator.vault_url(VAULT));
    let request_id = "b30a3070-3af8-40ac-8b41-9d3345b7a5a2";

    // The URL with the client request id (and the token), sent.
    let send = async |url: &str, token: Option<&str>| {
        let request = client.get(url).header("x-ms-client-request-id", request_id);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
        .await
        .unwrap()
    };
    let check = |response: &reqwest::Response| {
        let h = response.headers();
        let get = |name: &str| {
            h.get(name)
                .unwrap_or_else(|| panic!("{name} missing ({})", response.status()))
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(get("x-ms-client-request-id"), request_id);
        assert_eq!(get("cache-control"), "no-cache");
        assert_eq!(get("pragma"), "no-cache");
        assert_eq!(get("expires"), "-1");
        assert_eq!(
            get("strict-transport-security"),
            "max-age=31536000;includeSubDomains"
        );
        assert_eq!(get("x-content-type-options"), "nosniff");
        assert_eq!(
            get("x-ms-keyvault-network-info"),
            "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;"
        );
        assert!(!get("x-ms-keyvault-region").is_empty());
        assert!(
            get("x-ms-keyvault-service-version")
                .split('.')
                .all(|n| n.parse::<u32>().is_ok())
        );
        assert!(uuid::Uuid::parse_str(&get("x-ms-request-id")).is_ok());
    };

    // 401: no role assignment was consulted.
    let challenge = send(&url, None).await;
    assert_eq!(challenge.status(), 401);
    check(&challenge);
    assert!(
        !challenge
            .headers()
            .contains_key("x-ms-keyvault-rbac-assignment-id")
    );

    // 200 on an RBAC vault: the role assignment that allowed it, the same each time.
    let mut assignment = None;
    for _ in 0..2 {
        let ok = send(&url, Some(&token)).await;
        assert_eq!(ok.status(), 200);
        check(&ok);
        let id = ok.headers()["x-ms-keyvault-rbac-assignment-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 5);
        assert!(assignment.is_none() || assignment.as_ref() == Some(&id));
        assignment = Some(id);
    }

    // Injected faults answer with the headers too.
    emulator.fail_next(VAULT, &[503]);
    let failed = send(&url, Some(&token)).await;
    assert_eq!(failed.status(), 503);
    check(&failed);

    // An access-policy vault names no role assignment.
    emulator
        .create_vault("policies", None, AuthorizationModel::AccessPolicy)
        .unwrap();
    emulator
        .assign_roles("policies", "system", &["get"])
        .unwrap();
    emulator
        .set_secret("policies", "db", value("s3cret"))
        .unwrap();
    let policy_url = format!(
        "{}/secrets/db?api-version=7.4",
        emulator.vault_url("policies")
    );
    let policy = send(&policy_url, Some(&token)).await;
    assert_eq!(policy.status(), 200);
    check(&policy);
    assert!(
        !policy
            .headers()
            .contains_key("x-ms-keyvault-rbac-assignment-id")
    );
}

#[tokio::test]
async fn network_rules_refuse_with_key_vaults_firewall_and_private_link_403s() {
    let (emulator, identity) = start().await;
    emulator.set_secret(VAULT, "db", value("s3cret")).unwrap();
    let client = sdk(&emulator, VAULT, ".vault.azure.net");
    let who = format!(
        "Caller: appid={};oid={};iss=https://sts.windows.net/{}/\r\nVault: {VAULT};location=local",
        identity.client_id,
        identity.object_id,
        emulator.default_tenant()
    );

    let forbidden = |message: String, inner: &str| {
        let body = json!({"error": {"code": "Forbidden", "message": message, "innererror": {"code": inner}}});
        (403, body)
    };
    // The status and the body are compared, not the SDK's `error_code`: it reads the body's
    // code only when the message has no escapes, and Key Vault's 403 messages hold `\r\n`, so it
    // falls back to the status for them (with the local vault as with Key Vault).
    emulator.deny_network(VAULT, NetworkDenial::ForbiddenByFirewall);
    let err = client.get_secret("db", None).await.unwrap_err();
    assert_eq!(
        error_answer(&err),
        forbidden(
            format!(
                "Client address is not authorized and caller is not a trusted service.\r\nClient address: 127.0.0.1\r\n{who}"
            ),
            "ForbiddenByFirewall"
        )
    );
    // Whatever the caller's roles, and lists too.
    let listed = client
        .list_secret_properties(None)
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(
        error_answer(&listed).1["error"]["innererror"]["code"],
        "ForbiddenByFirewall"
    );
    // Without a token, the challenge still comes first: the 403 names the caller.
    let challenge = http(&emulator, &[VAULT])
        .get(format!(
            "{}/secrets/db?api-version=7.4",
            emulator.vault_url(VAULT)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), 401);

    // The private-link variant, set through the HTTP admin API.
    let set = http(&emulator, &[])
        .put(format!(
            "{}/_emulator/faults/{VAULT}",
            emulator.authority_host()
        ))
        .json(&json!({"networkDenial": "ForbiddenByConnection"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert_eq!(
        set.json::<Value>().await.unwrap()["networkDenial"],
        "ForbiddenByConnection"
    );
    let err = client.get_secret("db", None).await.unwrap_err();
    assert_eq!(
        error_answer(&err),
        forbidden(
            format!(
                "Public network access is disabled and request is not from a trusted service nor via an approved private link.\r\n{who}"
            ),
            "ForbiddenByConnection"
        )
    );

    emulator.clear_faults(VAULT);
    let secret = client
        .get_secret("db", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(
        secret.value.as_deref() == Some("s3cret"),
        "the value differs"
    );
}
