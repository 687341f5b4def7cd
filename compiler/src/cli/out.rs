//! Standard output that a closed pipe cannot crash.
//!
//! `println!` panics when stdout is gone (`wardgate report x.ward | head -c1`:
//! Rust ignores SIGPIPE, so the write fails with EPIPE). Like `grep` and `rg`,
//! wardgate then stops quietly: the reader wanted no more. Commands print
//! through [`out!`](crate::cli::out) and [`outln!`](crate::cli::outln).

use std::io::{ErrorKind, Write};

use super::{EXIT_FAILURE, EXIT_OK};

/// Writes to stdout and flushes; on a closed pipe exits 0 at once, on any
/// other write error says so and exits 2.
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let result = stdout.write_fmt(args).and_then(|()| stdout.flush());
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(i32::from(EXIT_OK)),
        Err(e) => {
            // stderr may be gone too: ignore a failure to report one.
            let _ = writeln!(
                std::io::stderr(),
                "error: cannot write to stdout: {}",
                super::io_reason(&e)
            );
            std::process::exit(i32::from(EXIT_FAILURE));
        }
    }
}
