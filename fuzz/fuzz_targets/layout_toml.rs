//! Bank-format layouts (`bank-formats/*.toml`): any text is a valid layout or refused,
//! without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = disburse::formats::spec::Layout::from_toml_str(text);
    }
});
