//! `akvvm-emulator`: the local vault.

fn main() {}
