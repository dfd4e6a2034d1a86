//! Bank file formats: layouts as data (`bank-formats/*.toml`), strict encoding, the
//! payment-file renderers (delimited, fixed, ISO 20022 pain.001) and the parsers for
//! our own files (tabular in `parse`, pain.001 in `xml_read`) and the banks' result
//! files (tabular, and ISO 20022 in `xml_results`).
//!
//! PURE: no file, clock or network IO here. Callers read the layout TOML and the
//! files; this module turns text and bytes into typed values and back.
//!
//! **Invariant:** offsets, widths, padding, literals and record order live only in the
//! layout TOML; the code knows kinds (delimited, fixed, pain.001), never a bank.
//! **Invariant:** a `Layout` exists only if it passed validation at load.
//! **Invariant:** no value is ever truncated, replaced (`?`, U+FFFD) or written as an
//! entity to make it fit: it is an error naming the household (or batch) and field.
//! **Invariant:** header/trailer counts and totals are computed from the details when
//! rendering, and re-checked against the details when parsing; a parser never mutates.
//! **Invariant:** a file cut at any byte offset is refused whole; no parse panics.

pub mod encode;
pub mod parse;
pub mod render;
pub mod spec;
pub mod xml;
pub mod xml_read;
pub mod xml_results;

pub use encode::TargetEncoding;
pub use parse::{parse_payment_file, parse_result_file, FormatParseError, ParsedPaymentFile};
pub use render::{render_payment_file, FormatError, RenderedFile};
pub use spec::{load_builtin, Layout, LayoutError};

#[cfg(test)]
mod tests;
