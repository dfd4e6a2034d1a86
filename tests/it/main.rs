//! The one integration-test binary (STYLE rule 12). Modules are added as areas land.
