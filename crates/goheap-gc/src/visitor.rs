//! The visitor that [`Trace::trace`](crate::Trace::trace) hands every
//! `Gc` handle to: it marks (collection), or counts the handles in or out
//! of the roots (`Gc::new`, `GcRefCell`'s mutable borrows).

use crate::mutator::RootLog;

/// What a visit does to the handles it meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VisitMode {
    /// Marking: each handle's object is reachable.
    Mark,
    /// Each handle becomes a root again (`GcRefCell::borrow_mut`).
    Root,
    /// Each handle stops counting as a root (`Gc::new`, the
    /// `GcRefCell` guard's drop).
    Unroot,
}

/// Where the visited handles go.
enum Sink<'a> {
    /// The collector's mark stack: objects marked now and still to scan.
    Mark(&'a mut crate::collector::MarkStack),
    /// The thread's root log, each handle counted +1 (`Root`) or −1.
    Log(&'a mut RootLog, VisitMode),
    /// The addresses, in order (tests of the tracing layer).
    #[cfg(test)]
    Record(&'a mut Vec<*const u8>),
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
    sink: Sink<'a>,
}

impl<'a> Visitor<'a> {
    /// A marking visitor pushing onto `stack`.
    pub(crate) fn marking(stack: &'a mut crate::collector::MarkStack) -> Visitor<'a> {
        Visitor {
            sink: Sink::Mark(stack),
        }
    }

    /// A visitor that counts each handle into (`Root`) or out of (`Unroot`)
    /// the roots, through `log`.
    pub(crate) fn counting(log: &'a mut RootLog, mode: VisitMode) -> Visitor<'a> {
        debug_assert!(mode != VisitMode::Mark);
        Visitor {
            sink: Sink::Log(log, mode),
        }
    }

    /// What this visit does to the handles it meets.
    pub(crate) fn mode(&self) -> VisitMode {
        match self.sink {
            Sink::Mark(_) => VisitMode::Mark,
            Sink::Log(_, m) => m,
            #[cfg(test)]
            Sink::Record(_) => VisitMode::Mark,
        }
    }

    /// Visits one handle, whose object's value is at `addr`.
    #[inline]
    pub(crate) fn visit_raw(&mut self, addr: *const u8) {
        match &mut self.sink {
            Sink::Mark(stack) => stack.mark(addr as usize),
            Sink::Log(log, VisitMode::Root) => log.push(addr as usize, 1),
            Sink::Log(log, _) => log.push(addr as usize, -1),
            #[cfg(test)]
            Sink::Record(seen) => seen.push(addr),
        }
    }
}

impl core::fmt::Debug for Visitor<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Visitor")
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

/// The addresses `value`'s `trace` visits, in order (tests only).
#[cfg(test)]
pub(crate) fn visited<T: ?Sized + crate::Trace>(value: &T) -> Vec<*const u8> {
    let mut seen = Vec::new();
    value.trace(&mut Visitor {
        sink: Sink::Record(&mut seen),
    });
    seen
}
