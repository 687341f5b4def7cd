//! Reading drop and audit events from the program's ring buffer.

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use wardgate_common::{Event, maps};

/// The consumer side of the event ring buffer. It takes the map out of the
/// `Ebpf` (the ring is mapped into memory once and read without syscalls).
pub struct EventReader {
    ring: RingBuf<MapData>,
}

impl EventReader {
    pub fn new(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        let map = ebpf.take_map(maps::EVENTS).with_context(|| {
            format!(
                "the program has no map `{}` (or it was taken)",
                maps::EVENTS
            )
        })?;
        Ok(Self {
            ring: RingBuf::try_from(map)?,
        })
    }

    /// Takes every event waiting in the ring buffer.
    pub fn drain(&mut self) -> Vec<Event> {
        self.drain_max(usize::MAX)
    }

    /// Takes at most `max` of the events waiting in the ring buffer.
    pub fn drain_max(&mut self, max: usize) -> Vec<Event> {
        let mut events = Vec::new();
        while events.len() < max
            && let Some(item) = self.ring.next()
        {
            if item.len() >= size_of::<Event>() {
                // SAFETY: the program writes whole `Event`s (repr(C), integers
                // only, any bit pattern valid); the length was checked above.
                #[allow(unsafe_code, reason = "reading a POD record from the ring buffer")]
                let event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) };
                events.push(event);
            }
        }
        events
    }

    /// The ring buffer's file descriptor, for waiting on it (epoll, tokio `AsyncFd`).
    pub fn ring(&mut self) -> &mut RingBuf<MapData> {
        &mut self.ring
    }
}
