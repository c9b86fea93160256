//! The visitor that [`Trace::trace`](crate::Trace::trace) hands every
//! `Gc` handle to.
//!
//! PLACEHOLDER: the collector replaces the inside of this module. For now a
//! visitor records the address of each handle's object into a buffer its
//! creator provides, which is what the tests of the tracing layer check.

/// What a visit does to the handles it meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(
    dead_code,
    reason = "placeholder: the collector reads the mode; the tracing layer only passes it on"
)]
pub(crate) enum VisitMode {
    /// Marking: each handle's object is reachable.
    Mark,
    /// Each handle becomes a root again (`GcRefCell::borrow_mut`).
    Root,
    /// Each handle stops counting as a root (`Gc::new`, the
    /// `GcRefCell` guard's drop).
    Unroot,
}

/// Receives the `Gc` handles a value owns, from [`Trace::trace`].
///
/// Code outside this crate cannot make one: it only gets `&mut Visitor`
/// inside `trace`, and passes it on to the `trace` of each field
/// (`Trace::trace(&self.field, v)`); only `Gc`'s own `Trace` impl hands a
/// handle to it.
///
/// [`Trace::trace`]: crate::Trace::trace
pub struct Visitor<'a> {
    mode: VisitMode,
    /// PLACEHOLDER: where the visited addresses go.
    seen: &'a mut Vec<*const u8>,
}

impl<'a> Visitor<'a> {
    /// A visitor in `mode` that appends each visited address to `seen`.
    #[allow(
        dead_code,
        reason = "placeholder: made by the tests until the collector exists"
    )]
    pub(crate) fn new(mode: VisitMode, seen: &'a mut Vec<*const u8>) -> Visitor<'a> {
        Visitor { mode, seen }
    }

    /// What this visit does to the handles it meets.
    #[allow(dead_code, reason = "placeholder: read by the collector")]
    pub(crate) fn mode(&self) -> VisitMode {
        self.mode
    }

    /// Visits one handle, whose object is at `addr`.
    pub(crate) fn visit_raw(&mut self, addr: *const u8) {
        self.seen.push(addr);
    }
}

impl core::fmt::Debug for Visitor<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Visitor")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The addresses `value`'s `trace` visits, in order (tests only).
#[cfg(test)]
pub(crate) fn visited<T: ?Sized + crate::Trace>(value: &T) -> Vec<*const u8> {
    let mut seen = Vec::new();
    value.trace(&mut Visitor::new(VisitMode::Mark, &mut seen));
    seen
}
