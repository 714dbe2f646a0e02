//! Generates the `akvvm` man pages (`clap_mangen`) and shell completions (`clap_complete`) from
//! the CLI's own definition, for `scripts/package`:
//!
//! ```sh
//! cargo run -p akvvm-cli --example gen-docs -- OUT_DIR
//! ```
//!
//! writes `OUT_DIR/man/akvvm.1`, one `akvvm-<command>.1` per subcommand (and
//! `akvvm-handler-<operation>.1`), and `OUT_DIR/completions/{akvvm.bash,_akvvm,akvvm.fish}`.
//!
//! It is an example of the `akvvm-cli` package, not a command of the shipped binary, so that
//! `clap_mangen` and `clap_complete` stay dev-dependencies and the `akvvm` that goes onto
//! machines carries neither. It compiles the CLI's modules from `src/` itself (the binary has
//! no library target); only `Cli`'s definition is used here, hence `dead_code` is allowed.
#![allow(dead_code)]
#![allow(clippy::print_stdout)]

#[path = "../src/commands/mod.rs"]
mod commands;
#[path = "../src/output.rs"]
mod output;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> anyhow::Result<()> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: gen-docs OUT_DIR (writes OUT_DIR/man and OUT_DIR/completions)")?;
    let command = commands::Cli::command();
    let man = out.join("man");
    std::fs::create_dir_all(&man).with_context(|| format!("failed to create {}", man.display()))?;
    write_man_pages(&command, &man)?;

    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)
        .with_context(|| format!("failed to create {}", completions.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = commands::Cli::command();
        let path = clap_complete::generate_to(shell, &mut command, "akvvm", &completions)
            .with_context(|| format!("failed to write the {shell} completions"))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Writes `akvvm.1` and one page per subcommand, recursively (`akvvm-handler-enable.1`).
fn write_man_pages(command: &clap::Command, dir: &Path) -> anyhow::Result<()> {
    // Subcommands get their full name (`akvvm-handler`) so that pages do not clash and
    // `man akvvm-handler` finds them; clap_mangen names the page after the command's name.
    let mut command = command.clone();
    command.build();
    write_pages(&command, "akvvm", dir)
}

fn write_pages(command: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<()> {
    // clap takes a `'static` name (its `string` feature is off); this short-lived generator
    // leaks the few page names.
    let page_name: &'static str = Box::leak(name.to_string().into_boxed_str());
    let named = command
        .clone()
        .name(page_name)
        .bin_name(name.replace('-', " "));
    let mut page = Vec::new();
    clap_mangen::Man::new(named)
        .render(&mut page)
        .with_context(|| format!("failed to render the man page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).with_context(|| format!("failed to write {}", path.display()))?;
    println!("{}", path.display());
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
