//! The `disburse` binary: a thin shell over `disburse::cli`.

/// mimalloc: a month allocates and frees millions of small strings; glibc's malloc
/// spent a fifth of a 100k-household bench consolidating free lists (perf), and kept
/// freed memory resident between stages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    disburse::cli::main()
}
