//! Mounting bpffs when it is missing, as Cilium does: a fresh machine (or a
//! container) may lack the mount at /sys/fs/bpf that systemd usually makes.
//! Only the default location is mounted; a pin path elsewhere must already
//! be on bpffs ([`crate::pin::check`] says so).

use std::{ffi::CString, path::Path};

use anyhow::bail;

/// Where bpffs is mounted when it is missing.
pub const BPFFS: &str = "/sys/fs/bpf";

/// Mounts bpffs on /sys/fs/bpf when `pin_dir` is below it and it is not
/// mounted yet. Returns true if it mounted.
pub fn ensure_mounted(pin_dir: &Path) -> anyhow::Result<bool> {
    let root = Path::new(BPFFS);
    if !pin_dir.starts_with(root) || !root.is_dir() || crate::pin::is_bpffs(root) {
        return Ok(false);
    }
    let source = CString::new("bpf").expect("no NUL");
    let target = CString::new(BPFFS).expect("no NUL");
    let mode = CString::new("mode=0700").expect("no NUL");
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    #[allow(unsafe_code, reason = "mount(2) has no safe wrapper in std")]
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            source.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            mode.as_ptr().cast(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        bail!(
            "bpffs is not mounted on {BPFFS} and mounting it failed ({err}); mount it with \
             `mount -t bpf bpf {BPFFS}` (systemd's sys-fs-bpf.mount does at boot) or give the \
             agent CAP_SYS_ADMIN"
        );
    }
    log::info!("mounted bpffs on {BPFFS} (it was missing)");
    Ok(true)
}
