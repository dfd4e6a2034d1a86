//! The `disburse` binary: a thin shell over `disburse::cli`.

fn main() -> std::process::ExitCode {
    disburse::cli::main()
}
