//! The README must stay true: its settings example is valid, and its commands exist.

use std::path::Path;

use assert_cmd::Command;

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The fenced blocks of the given language, in order.
fn blocks(text: &str, language: &str) -> Vec<String> {
    let fence = format!("```{language}\n");
    text.split(fence.as_str())
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_settings_example_in_the_readme_is_valid() {
    let examples = blocks(&readme(), "json");
    assert!(!examples.is_empty(), "the README has no JSON example");
    let dir = tempfile::tempdir().unwrap();
    for (i, example) in examples.iter().enumerate() {
        let file = dir.path().join(format!("readme-{i}.json"));
        std::fs::write(&file, example).unwrap();
        Command::cargo_bin("akvvm")
            .unwrap()
            .arg("validate")
            .arg(&file)
            .assert()
            .code(0)
            .stdout(predicates::str::contains(
                "result: valid (0 errors, 0 warnings)",
            ));
    }
}

#[test]
fn every_akvvm_subcommand_the_readme_names_exists() {
    let text = readme();
    let mut named: Vec<&str> = text
        .split("`akvvm ")
        .skip(1)
        .filter_map(|rest| rest.split([' ', '`', '\\']).next())
        .filter(|word| word.chars().all(|c| c.is_ascii_lowercase()) && !word.is_empty())
        .collect();
    named.sort_unstable();
    named.dedup();
    assert!(
        named.contains(&"run") && named.contains(&"validate"),
        "{named:?}"
    );
    for subcommand in named {
        Command::cargo_bin("akvvm")
            .unwrap()
            .args([subcommand, "--help"])
            .assert()
            .success();
    }
}
