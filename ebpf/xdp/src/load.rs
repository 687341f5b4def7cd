//! Word loads in one instruction from packet or map memory.
//!
//! Rust reads a `[u8; N]` field (or an unaligned word) byte by byte in BPF:
//! four or eight byte loads, shifts and ors per word. These helpers load a
//! whole word with one instruction instead. The kernel allows misaligned
//! loads from packets and map values (the verifier enforces alignment only
//! under `BPF_F_STRICT_ALIGNMENT`, which the loader never sets, or on
//! architectures without efficient unaligned access), and inline assembly
//! makes no alignment promise to the compiler. Values are in native (little-
//! endian) order: bytes `[a, b, c, d]` load as `u32::from_ne_bytes([a, b, c, d])`.

/// The 4 bytes at `base + offset`, in one load.
///
/// # Safety
/// `base + offset .. base + offset + 4` must be readable (within a checked
/// frame, or inside a map value or the stack).
#[inline(always)]
pub unsafe fn u32_at(base: *const u8, offset: usize) -> u32 {
    let word: u64;
    // SAFETY: the caller vouches for the bytes; a load with no side effect.
    unsafe {
        core::arch::asm!(
            "{w} = *(u32 *)({p} + 0)",
            w = lateout(reg) word,
            p = in(reg) base.add(offset),
            options(nostack, readonly),
        );
    }
    word as u32
}

/// The 8 bytes at `base + offset`, in one load.
///
/// # Safety
/// As for [`u32_at`], for 8 bytes.
#[inline(always)]
pub unsafe fn u64_at(base: *const u8, offset: usize) -> u64 {
    let word: u64;
    // SAFETY: the caller vouches for the bytes; a load with no side effect.
    unsafe {
        core::arch::asm!(
            "{w} = *(u64 *)({p} + 0)",
            w = lateout(reg) word,
            p = in(reg) base.add(offset),
            options(nostack, readonly),
        );
    }
    word
}
