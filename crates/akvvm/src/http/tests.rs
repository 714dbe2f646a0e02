//! The HTTP client's unit tests: options, host overrides, retry policies.

use super::*;

#[test]
fn capped_retry_pauses_never_exceed_the_cap_nor_a_retry_after_the_deadline() {
    let policy = RetryPolicy::key_vault().capped(Duration::from_secs(1));
    assert_eq!(policy.max_delay, Duration::from_secs(1));
    assert_eq!(policy.initial_delay, Duration::from_millis(250));
    // A throttled vault is not retried for Key Vault's five minutes when the polling
    // interval is shorter: the fault matrix's 429 storms (fault_matrix::throttling) froze
    // the status and every other certificate that long when it was.
    assert_eq!(policy.deadline, Some(MIN_CAPPED_DEADLINE));
    let minute = RetryPolicy::key_vault().capped(Duration::from_secs(60));
    assert_eq!(minute.deadline, Some(Duration::from_secs(60)));
    let long = RetryPolicy::key_vault().capped(Duration::from_secs(3600));
    assert_eq!(long, RetryPolicy::key_vault());

    // Every backoff pause stays within the cap, whatever the retry.
    let mut rng = rand::rng();
    for retry in 1..=12 {
        for _ in 0..50 {
            assert!(policy.jittered_backoff(retry, &mut rng) <= Duration::from_secs(1));
            assert!(policy.throttle_delay(retry, None, &mut rng) <= Duration::from_secs(1));
        }
    }
    // A server's Retry-After is honoured past the cap only while the pause fits in the capped
    // deadline; a longer one ends the check (the certificate's own backoff takes over) instead
    // of holding it, and the cycle, for as long as the server asked.
    let seconds = Duration::from_secs;
    assert_eq!(
        policy.next_delay(1, Some(seconds(5)), seconds(1)),
        Some(seconds(5))
    );
    assert_eq!(policy.next_delay(1, Some(seconds(30)), seconds(0)), None);
    assert_eq!(policy.next_delay(1, Some(seconds(5)), seconds(6)), None);
    let throttled = policy.throttle_delay(1, Some(seconds(30)), &mut rng);
    assert!(throttled >= seconds(30), "{throttled:?}");
    assert!(!policy.retries_throttling(1, throttled, seconds(0)));
    let short = policy.throttle_delay(1, Some(seconds(2)), &mut rng);
    assert!(short >= seconds(2) && short <= seconds(3), "{short:?}");
    assert!(policy.retries_throttling(1, short, seconds(0)));
    for (attempt, elapsed) in [(1, 0), (3, 4), (6, 9)] {
        for retry_after in [None, Some(seconds(2)), Some(seconds(9)), Some(seconds(600))] {
            if let Some(pause) = policy.next_delay(attempt, retry_after, seconds(elapsed)) {
                assert!(
                    seconds(elapsed) + pause <= MIN_CAPPED_DEADLINE,
                    "attempt {attempt} after {elapsed} s, Retry-After {retry_after:?}: {pause:?}"
                );
            }
        }
    }
}

#[test]
fn throttling_waits_retry_after_plus_a_growing_jitter_and_is_not_given_up_early() {
    let policy = RetryPolicy::key_vault();
    let mut rng = rand::rng();
    let second = Duration::from_secs(1);
    let delays: Vec<Duration> = (0..200)
        .map(|_| policy.throttle_delay(1, Some(second), &mut rng))
        .collect();
    assert!(delays.iter().all(|d| *d >= second && *d <= 2 * second));
    let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
    assert!(
        distinct.len() > 100,
        "clients told the same Retry-After must spread"
    );
    for _ in 0..100 {
        assert!(policy.throttle_delay(4, Some(second), &mut rng) <= 9 * second);
        assert!(policy.throttle_delay(4, None, &mut rng) <= 8 * second);
        // The ceiling stops at about one throttling window, and Retry-After stays a minimum.
        let long = policy.throttle_delay(7, Some(second), &mut rng);
        assert!(long >= second && long <= second + THROTTLE_JITTER_MAX);
    }
    let late: Vec<Duration> = (0..200)
        .map(|_| policy.throttle_delay(7, None, &mut rng))
        .collect();
    assert!(
        late.iter().any(|d| *d > THROTTLE_JITTER_MAX / 2),
        "still spread over the whole window"
    );
    // Past max_attempts, until the deadline.
    assert!(policy.retries_throttling(50, second, Duration::from_secs(100)));
    assert!(!policy.retries_throttling(50, second, Duration::from_secs(300)));
    assert!(!RetryPolicy::entra().retries_throttling(4, second, Duration::ZERO));
}
use reqwest::header::HeaderValue;

#[test]
fn host_override_accepts_ip_port_and_bare_ip() {
    let with_port = HostOverride::parse("MyVault.vault.azure.net", "127.0.0.1:8443").unwrap();
    assert_eq!(with_port.host(), "myvault.vault.azure.net");
    assert_eq!(with_port.addr(), "127.0.0.1:8443".parse().unwrap());
    let bare = HostOverride::parse("v.vault.azure.net", "10.1.2.3").unwrap();
    assert_eq!(bare.addr(), "10.1.2.3:0".parse().unwrap());
    let v6 = HostOverride::parse("v.vault.azure.net", "[::1]:9443").unwrap();
    assert_eq!(v6.addr(), "[::1]:9443".parse().unwrap());
}

#[test]
fn options_from_settings_take_roots_and_resolve() {
    let mut resolve = std::collections::BTreeMap::new();
    resolve.insert(
        "myvault.vault.azure.net".to_owned(),
        crate::settings::ResolveTarget::Socket("127.0.0.1:8443".parse().unwrap()),
    );
    resolve.insert(
        "other.vault.azure.net".to_owned(),
        crate::settings::ResolveTarget::Ip("10.0.0.5".parse().unwrap()),
    );
    let agent = crate::settings::AgentOptions {
        ca_certificates: vec![PathBuf::from("/etc/akvvm/proxy-ca.pem")],
        resolve,
        request_timeout: Duration::from_secs(7),
        ..crate::settings::AgentOptions::default()
    };
    let options = HttpOptions::from_settings(&agent);
    assert_eq!(options.extra_ca_files, agent.ca_certificates);
    assert_eq!(options.request_timeout, Duration::from_secs(7));
    assert_eq!(
        options.host_overrides,
        vec![
            HostOverride::parse("myvault.vault.azure.net", "127.0.0.1:8443").unwrap(),
            HostOverride::parse("other.vault.azure.net", "10.0.0.5").unwrap(),
        ]
    );
    assert_eq!(options.proxy, ProxyMode::FromEnvironment);
}

#[test]
fn host_override_rejects_names_and_garbage() {
    let err = HostOverride::parse("v.vault.azure.net", "localhost:8443").unwrap_err();
    assert_eq!(err.code(), "http.host_override_invalid");
    assert!(err.to_string().contains("127.0.0.1:8443"), "{err}");
    assert!(HostOverride::parse("bad host", "127.0.0.1").is_err());
}

#[test]
fn ca_file_without_certificate_is_rejected_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roots.pem");
    std::fs::write(&path, "not a certificate").unwrap();
    let options = HttpOptions {
        extra_ca_files: vec![path.clone()],
        ..HttpOptions::default()
    };
    let err = build_client(&options).unwrap_err();
    assert_eq!(err.code(), "http.ca_root_invalid");
    assert!(err.to_string().contains(&path.display().to_string()));
    let missing = HttpOptions {
        extra_ca_files: vec![dir.path().join("missing.pem")],
        ..HttpOptions::default()
    };
    assert_eq!(
        build_client(&missing).unwrap_err().code(),
        "http.ca_root_unreadable"
    );
}

#[test]
fn status_sets_of_the_named_policies() {
    let imds = RetryPolicy::imds();
    for status in [404, 410, 429, 500, 503, 504] {
        assert!(imds.retries_status(status), "{status}");
    }
    for status in [200, 400, 401, 403] {
        assert!(!imds.retries_status(status), "{status}");
    }
    let kv = RetryPolicy::key_vault();
    for status in [429, 500, 502, 503] {
        assert!(kv.retries_status(status), "{status}");
    }
    for status in [400, 401, 403, 404, 410] {
        assert!(!kv.retries_status(status), "{status}");
    }
    assert!(!RetryPolicy::no_retry().retries_status(503));
}

#[test]
fn backoff_ceiling_doubles_up_to_the_cap() {
    let policy = RetryPolicy {
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(700),
        ..RetryPolicy::key_vault()
    };
    let ceilings: Vec<u128> = (1..=6)
        .map(|n| policy.backoff_ceiling(n).as_millis())
        .collect();
    assert_eq!(ceilings, vec![100, 200, 400, 700, 700, 700]);
    assert_eq!(policy.backoff_ceiling(200), Duration::from_millis(700));
}

#[test]
fn full_jitter_stays_within_the_ceiling_and_varies() {
    let policy = RetryPolicy {
        initial_delay: Duration::from_millis(1000),
        max_delay: Duration::from_secs(10),
        ..RetryPolicy::key_vault()
    };
    let mut rng = rand::rng();
    let samples: Vec<Duration> = (0..200)
        .map(|_| policy.jittered_backoff(3, &mut rng))
        .collect();
    assert!(samples.iter().all(|d| *d <= Duration::from_secs(4)));
    let distinct: std::collections::BTreeSet<_> = samples.iter().collect();
    assert!(distinct.len() > 100, "full jitter must spread delays");
    assert!(samples.iter().any(|d| *d < Duration::from_secs(2)));
}

#[test]
fn next_delay_honours_retry_after_attempts_and_deadline() {
    let policy = RetryPolicy {
        max_attempts: 3,
        deadline: Some(Duration::from_secs(10)),
        ..RetryPolicy::key_vault()
    };
    assert_eq!(
        policy.next_delay(1, Some(Duration::from_secs(2)), Duration::ZERO),
        Some(Duration::from_secs(2))
    );
    assert_eq!(
        policy.next_delay(3, Some(Duration::from_secs(1)), Duration::ZERO),
        None
    );
    assert_eq!(
        policy.next_delay(1, Some(Duration::from_secs(9)), Duration::from_secs(2)),
        None,
        "a wait that ends past the deadline stops retrying"
    );
    let ignoring = RetryPolicy {
        honour_retry_after: false,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        ..policy
    };
    let delay = ignoring
        .next_delay(1, Some(Duration::from_secs(5)), Duration::ZERO)
        .unwrap();
    assert!(delay <= Duration::from_millis(10));
}

#[test]
fn retry_after_seconds_date_and_ms_headers() {
    let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);

    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
    assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
    headers.insert("x-ms-retry-after-ms", HeaderValue::from_static("250"));
    assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(250)));
}

#[test]
fn user_agent_names_the_version() {
    assert_eq!(USER_AGENT, format!("akvvm/{}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn the_guest_agents_proxy_is_used_unless_https_proxy_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("waagent.conf");
    std::fs::write(
        &conf,
        "# proxy\nHttpProxy.Host=proxy.corp.example\nHttpProxy.Port=3128\nOS.EnableRDMA=n\n",
    )
    .unwrap();
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    assert_eq!(
        super::proxy_mode(&conf, env(&[("NO_PROXY", "localhost,.internal")])),
        ProxyMode::Explicit {
            url: "http://proxy.corp.example:3128".into(),
            no_proxy: Some("localhost,.internal".into()),
        }
    );
    for set in ["HTTPS_PROXY", "https_proxy"] {
        let vars: &'static [(&'static str, &'static str)] = if set == "HTTPS_PROXY" {
            &[("HTTPS_PROXY", "http://other:8080")]
        } else {
            &[("https_proxy", "http://other:8080")]
        };
        assert_eq!(
            super::proxy_mode(&conf, env(vars)),
            ProxyMode::FromEnvironment
        );
    }
    assert_eq!(
        super::proxy_mode(&dir.path().join("absent.conf"), env(&[])),
        ProxyMode::FromEnvironment
    );
    assert_eq!(
        super::waagent_proxy("HttpProxy.Host=None\nHttpProxy.Port=None\n"),
        Ok(None)
    );
    assert!(
        super::waagent_proxy("HttpProxy.Host=proxy\n")
            .unwrap_err()
            .to_string()
            .contains("HttpProxy.Port is not set")
    );
    assert!(
        super::waagent_proxy("HttpProxy.Host=proxy\nHttpProxy.Port=http\n")
            .unwrap_err()
            .to_string()
            .contains("not a port number")
    );
}
