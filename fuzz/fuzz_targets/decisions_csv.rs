//! Decisions CSV import (CONTRACTS §2.2): any bytes are validated without a panic.
#![no_main]
use disburse::imports::decode::InputEncoding;
use disburse::imports::records::{parse_decision_row, DECISION_COLUMNS};
use disburse::imports::scan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = scan(
        data,
        InputEncoding::Utf8,
        DECISION_COLUMNS,
        parse_decision_row,
        |_, _| Ok(()),
    );
});
