//! The `disburse` binary: a thin shell over `disburse::cli`.

/// mimalloc: a month allocates and frees millions of small strings; glibc's malloc
/// spent a fifth of a 100k-household bench consolidating free lists (perf), and kept
/// freed memory resident between stages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    one_malloc_arena_for_sqlite();
    disburse::cli::main()
}

/// SQLite's C code allocates through glibc's malloc, not mimalloc. glibc gives every
/// thread that allocates its own arena and keeps what that thread freed: run creation
/// sorts on two connections at once (its read-ahead), and the second sort's arena kept
/// ~40 MiB for the rest of the process, taking export's peak past 256 MiB at 1M
/// households (issue #7). One arena returns freed memory to one place (no slower here).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena_for_sqlite() {
    // SAFETY: `mallopt` only sets an allocator parameter; it is called first thing in
    // `main`, before any other thread exists, as glibc asks.
    #[allow(unsafe_code)]
    let accepted = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    debug_assert_eq!(accepted, 1, "glibc accepts M_ARENA_MAX");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena_for_sqlite() {}
