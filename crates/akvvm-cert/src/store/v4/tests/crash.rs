//! A failure and a crash (a panic at a checkpoint, so that no error handling runs) before each
//! step of a 4.x install, and what the store, and the next `Store::open_layout`, make of them.

use super::*;

/// Installs v1 and v2 in a new store, then v3 with `hook` at its checkpoints.
fn install_v3_with(
    hook: impl FnMut(Step) -> Result<(), StoreError> + 'static,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Result<Installed, StoreError>,
    bool,
) {
    let (root, store) = new_store();
    let path = store.path().to_path_buf();
    let bundles = bundles(3);
    store.install(&request("v1", &bundles[0])).unwrap();
    store.install(&request("v2", &bundles[1])).unwrap();
    set_hook(hook);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.install(&request("v3", &bundles[2]))
    }));
    clear_hook();
    let (result, crashed) = match outcome {
        Ok(result) => (result, false),
        Err(_) => (Err(StoreError::LinkOccupied { path: path.clone() }), true),
    };
    (root, path, result, crashed)
}

/// The version a crash or failure before `step` leaves once repaired: the new one from the
/// `.keyid` link's swap on (the `.pem` link had moved).
fn expected_after(step: Step) -> &'static str {
    match step {
        Step::PemFile | Step::KeyFile | Step::DirectoryAcl | Step::PemLink => "v2",
        _ => "v3",
    }
}

#[test]
fn a_crash_before_any_step_is_repaired_by_the_next_open() {
    for step in STEPS {
        let (_root, path, _, crashed) = install_v3_with(move |at| {
            if at == step {
                panic!("simulated crash before {at:?}");
            }
            Ok(())
        });
        assert!(crashed, "{step:?}");
        // What the crash left: a reader never sees a mismatched pair, only possibly links that
        // name two installs (between the swaps), which it waits out.
        let view = reader_view(&path).unwrap_or_else(|e| panic!("{step:?}: {e}"));
        if step == Step::KeyLink {
            assert_eq!(view.links, Links::Apart, "{step:?}");
        }
        let store = open_v4(&path);
        assert_settled(&path, expected_after(step));
        let current = store.current("mykv", "server-tls").unwrap().unwrap();
        assert_eq!(current.version, expected_after(step), "{step:?}");
        // The store goes on: the next install works and prunes to two versions.
        let bundle = &bundles(1)[0];
        store.install(&request("v4", bundle)).unwrap();
        assert_settled(&path, "v4");
        assert_eq!(
            store.versions("mykv", "server-tls").unwrap().len(),
            2,
            "{step:?}"
        );
        assert_eq!(names(&path).len(), 3 + 4, "{step:?}: {:?}", names(&path));
    }
}

#[test]
fn a_crash_between_the_swaps_of_a_first_install_is_finished_by_the_next_open() {
    let (_root, store) = new_store();
    let path = store.path().to_path_buf();
    set_hook(|at| {
        if at == Step::KeyLink {
            panic!("simulated crash before {at:?}");
        }
        Ok(())
    });
    let bundles = bundles(1);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.install(&request("v1", &bundles[0]))
    }));
    clear_hook();
    assert!(outcome.is_err());
    // A `.pem` link and no `.keyid` link yet: not installed for the agent, a wait for readers.
    assert_eq!(store.current("mykv", "server-tls").unwrap(), None);
    assert_eq!(reader_view(&path).unwrap().links, Links::Apart);
    drop(store);
    let store = open_v4(&path);
    assert_settled(&path, "v1");
    assert_eq!(
        store
            .current("mykv", "server-tls")
            .unwrap()
            .unwrap()
            .version,
        "v1"
    );
}

#[test]
fn a_pair_never_linked_goes_before_the_one_served_until_now() {
    // A crash before the links moved leaves v3's pair complete but never linked.
    let (_root, path, _, crashed) = install_v3_with(|at| {
        if at == Step::PemLink {
            panic!("simulated crash before {at:?}");
        }
        Ok(())
    });
    assert!(crashed);
    let store = open_v4(&path);
    assert_eq!(
        store.versions("mykv", "server-tls").unwrap(),
        ["v3", "v2", "v1"]
    );
    store.install(&request("v4", &bundles(1)[0])).unwrap();
    // v2, served until v4, stays as the previous version; v3 and v1 go.
    assert_eq!(store.versions("mykv", "server-tls").unwrap(), ["v4", "v2"]);
    assert_settled(&path, "v4");
}

#[test]
fn a_failure_at_any_step_leaves_a_consistent_store_without_reopening() {
    for step in STEPS {
        let (_root, path, result, crashed) = install_v3_with(move |at| {
            if at == step {
                return Err(StoreError::Write {
                    path: "injected".into(),
                    step: "an injected failure",
                    source: std::io::Error::other("injected"),
                });
            }
            Ok(())
        });
        assert!(!crashed);
        let error = result.unwrap_err();
        assert_eq!(error.code(), "store.write", "{step:?}");
        // The failed install repaired forward before returning its error.
        let expected = match step {
            Step::Prune | Step::Done => "v3",
            other => expected_after(other),
        };
        assert_settled(&path, expected);
    }
}
