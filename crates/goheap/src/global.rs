//! The process-wide heap: the only statics of the allocator core besides
//! the thread-cache registry.

use crate::heap::Heap;
use crate::os::SystemOs;

static SYSTEM_OS: SystemOs = SystemOs;

/// The one page heap shared by every front-end in the process.
pub(crate) static HEAP: Heap = Heap::new(&SYSTEM_OS);
