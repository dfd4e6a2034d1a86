//! Bank file formats: payment files out, result files in.

pub mod xml_results;
