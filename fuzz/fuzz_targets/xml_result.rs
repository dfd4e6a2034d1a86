//! pain.002 and camt.054 results (`xml_results`): any bytes are parsed or refused
//! without a panic, within the size and depth limits.
#![no_main]
use disburse::formats::xml_results::parse_xml_result;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_xml_result(data);
});
