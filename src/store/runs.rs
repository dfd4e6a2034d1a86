//! Runs and their lines (filled in with the payout engine).
