//! BPF arrays mapped into this process (`BPF_F_MMAPABLE`): the agent reads
//! and writes their values in place, where a syscall per value would be too
//! slow (the flow table, drained a half at a time) or not atomic (the
//! established-connection filter, which the program adds to concurrently).

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
};

use anyhow::Context as _;
use aya::maps::MapData;

/// The values of a BPF array of `T`, shared with the kernel.
pub struct Mapped<T> {
    values: NonNull<T>,
    entries: usize,
    /// Keeps the map's descriptor open while it is mapped.
    _map: Option<MapData>,
}

// SAFETY: the mapping is owned by this value; what is shared with the
// kernel is accessed through volatile or atomic operations only.
#[allow(unsafe_code, reason = "a shared mapping of a BPF array")]
unsafe impl<T> Send for Mapped<T> {}

impl<T> Mapped<T> {
    /// Maps the array `map` (named `name` in errors), keeping `map` open.
    ///
    /// # Errors
    /// The values are not `T`-sized, or the kernel refuses the mapping (the
    /// map was not created `BPF_F_MMAPABLE`).
    pub fn owned(map: MapData, name: &str) -> anyhow::Result<Self> {
        let mut mapped = Self::new(&map, name)?;
        mapped._map = Some(map);
        Ok(mapped)
    }

    /// Maps the array `map` (a mapping keeps the map alive by itself).
    ///
    /// # Errors
    /// As [`Mapped::owned`].
    pub fn new(map: &MapData, name: &str) -> anyhow::Result<Self> {
        let info = map.info()?;
        anyhow::ensure!(
            info.value_size() as usize == std::mem::size_of::<T>(),
            "`{name}` has {}-byte values, not {}",
            info.value_size(),
            std::mem::size_of::<T>()
        );
        // The kernel stores an array's values 8-byte aligned: a `T` of
        // another size would not sit at `index * size_of::<T>()`.
        anyhow::ensure!(
            std::mem::size_of::<T>().is_multiple_of(8),
            "`{name}`: {}-byte values are padded to 8 in the mapping",
            std::mem::size_of::<T>()
        );
        let entries = info.max_entries() as usize;
        // SAFETY: maps the array's values, shared with the kernel; the
        // length is the array's size; unmapped on drop.
        #[allow(unsafe_code, reason = "mmap(2) of a BPF array")]
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                entries * std::mem::size_of::<T>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("mapping `{name}`"));
        }
        let values =
            NonNull::new(ptr.cast::<T>()).ok_or_else(|| anyhow::anyhow!("mmap returned null"))?;
        Ok(Self {
            values,
            entries,
            _map: None,
        })
    }

    /// How many values the array has.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Never: BPF arrays have at least one entry.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The value at `index` (below [`Mapped::len`]), for volatile or atomic
    /// access: the kernel writes it concurrently.
    ///
    /// # Panics
    /// `index` is out of range.
    pub fn at(&self, index: usize) -> *mut T {
        assert!(index < self.entries, "index {index} of {}", self.entries);
        // SAFETY: in bounds of the mapping, checked above.
        #[allow(unsafe_code, reason = "pointer arithmetic within the mapping")]
        unsafe {
            self.values.as_ptr().add(index)
        }
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, with its length.
        #[allow(unsafe_code, reason = "munmap(2) of our own mapping")]
        unsafe {
            libc::munmap(
                self.values.as_ptr().cast(),
                self.entries * std::mem::size_of::<T>(),
            );
        }
    }
}
