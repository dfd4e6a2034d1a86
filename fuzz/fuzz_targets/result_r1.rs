//! R1 result files (`bank-result-pipe-gbk`, CONTRACTS §3.4): any bytes are parsed or
//! refused without a panic.
#![no_main]
use disburse::formats::{load_builtin, parse_result_file, spec::find};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static LAYOUTS: OnceLock<Vec<disburse::formats::Layout>> = OnceLock::new();
    let layouts = LAYOUTS.get_or_init(load_builtin);
    let layout = find(layouts, "bank-result-pipe-gbk").expect("built-in layout");
    let _ = parse_result_file(layout, data);
});
