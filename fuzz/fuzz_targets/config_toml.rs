//! `disburse.toml`: any text is accepted or refused naming a key, without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = disburse::config::Config::from_toml_str(text);
    }
});
