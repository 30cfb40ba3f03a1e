//! The config file parser: TOML into `RawConfig`, then validation into `Settings`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pbn::{RawConfig, Settings};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(raw) = toml::from_str::<RawConfig>(text) else { return };
    drop(Settings::resolve(Some(raw), RawConfig::default(), RawConfig::default()));
});
