//! Roster CSV import (CONTRACTS §2.1): any bytes, in any of the three encodings, are
//! read and validated without a panic; the first byte picks the encoding.
#![no_main]
use disburse::imports::decode::InputEncoding;
use disburse::imports::records::{parse_roster_row, ROSTER_COLUMNS};
use disburse::imports::scan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let encoding = match first % 3 {
        0 => InputEncoding::Utf8,
        1 => InputEncoding::Gbk,
        _ => InputEncoding::Gb18030,
    };
    let _ = scan(rest, encoding, ROSTER_COLUMNS, parse_roster_row, |_, _| {
        Ok(())
    });
});
