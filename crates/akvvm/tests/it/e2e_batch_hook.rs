//! `akvvm.batchReload` (issue 9, item 3): run once per cycle after all of that cycle's installs,
//! only when the cycle installed something, besides the per-certificate hooks, with what was
//! installed in its environment. End to end against the local vault with a real `/bin/sh` hook.

use akvvm_testkit::harness::{Harness, PFX, cycle};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_batch_hook_runs_once_per_cycle_that_installed_something() {
    let h = Harness::start().await;
    h.vault("contoso");
    let web = h.certificate("contoso", "web", "RSA", PFX);
    let api = h.certificate("contoso", "api", "RSA", PFX);
    let log = h.dir.path().join("hooks.log");
    let mut json = h.settings_json(
        &["contoso"],
        vec![
            json!(Harness::url("contoso", "web")),
            json!(Harness::url("contoso", "api")),
        ],
    );
    let script = format!(
        "printf 'batch %s\\n%s\\n%s\\n%s\\n' \"$AKVVM_INSTALLED_COUNT\" \"$AKVVM_INSTALLED_URLS\" \
         \"$AKVVM_INSTALLED_VERSIONS\" \"$AKVVM_INSTALLED_LINK_PATHS\" >> '{}'",
        log.display()
    );
    json["akvvm"]["batchReload"] = json!({"command": ["/bin/sh", "-c", script], "timeoutInS": 10});
    json["akvvm"]["reload"] = json!({
        "command": ["/bin/sh", "-c", format!("echo \"single $AKVVM_URL\" >> '{}'", log.display())],
        "timeoutInS": 10,
    });
    let engine = h.engine(&json);
    assert!(cycle(&engine).await.complete());
    let store = h.store();
    let expected_first = format!(
        "single https://contoso.vault.azure.net/secrets/web\n\
         single https://contoso.vault.azure.net/secrets/api\n\
         batch 2\n\
         https://contoso.vault.azure.net/secrets/web\nhttps://contoso.vault.azure.net/secrets/api\n\
         {web}\n{api}\n\
         {}\n{}\n",
        store.join("contoso.web").display(),
        store.join("contoso.api").display()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    // The per-certificate hooks run as each install finishes (in either order); the batch hook
    // after all of them.
    let (singles, batch) = text.split_at(text.find("batch").expect("the batch hook ran"));
    let mut singles: Vec<&str> = singles.lines().collect();
    singles.sort_unstable();
    assert_eq!(
        singles,
        [
            "single https://contoso.vault.azure.net/secrets/api",
            "single https://contoso.vault.azure.net/secrets/web"
        ]
    );
    assert_eq!(
        batch,
        &expected_first[expected_first.find("batch").unwrap()..]
    );

    // A cycle that installs nothing: no hook at all.
    assert!(cycle(&engine).await.complete());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), text);

    // One new version: the batch hook lists it alone.
    let web2 = h.certificate("contoso", "web", "RSA", PFX);
    assert!(cycle(&engine).await.complete());
    let after = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        &after[text.len()..],
        format!(
            "single https://contoso.vault.azure.net/secrets/web\nbatch 1\n\
             https://contoso.vault.azure.net/secrets/web\n{web2}\n{}\n",
            store.join("contoso.web").display()
        )
    );
}
