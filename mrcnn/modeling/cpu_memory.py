"""Keeping freed memory in the process, so that each image does not page in its maps again.

A CPU detect allocates and frees hundreds of megabytes of feature maps (an R-50 FPN's P2 map
at 800 x 1088 is 55 MB in float32). glibc's malloc serves every block over 32 MB with a fresh
``mmap`` and gives it back with ``munmap`` when it is freed, and returns the free top of its
heap to the system: the next image's maps are new pages again, and the kernel zeroes each one
on first touch. On a 2-core AMD EPYC (AVX-512) that was about 190,000 page faults and 0.6 s
of system time in each 2.8 s R-50 detect at 800 x 1066, against 2.3 s with the memory kept
(benchmarks/RESULTS.md, cpu_memory).

:func:`keep_freed_memory` raises glibc's two limits once per process, so that blocks up to
:data:`MMAP_THRESHOLD_BYTES` come from the heap and up to :data:`TRIM_THRESHOLD_BYTES` of its
free top is kept: after the first two or three images, the maps reuse pages the process
already has. The price is memory: between images the process keeps what its largest image
needed (the peak is the same: benchmarks/huge_image_memory.py). ``Config.CPU_KEEP_FREED_MEMORY
= False`` leaves malloc as it is. Only glibc has these settings (Linux with glibc); elsewhere
nothing changes.
"""

from __future__ import annotations

import ctypes
import logging
import platform

log = logging.getLogger(__name__)

#: mallopt's parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap rather than a fresh mmap: above every feature map
#: of an R-101 at 1024 x 1024 (67 MB); the few larger blocks (a whole huge photo) still get
#: their own mapping and are returned when freed.
MMAP_THRESHOLD_BYTES = 128 * 2**20
#: Free memory at the heap's top kept rather than returned to the system.
TRIM_THRESHOLD_BYTES = 256 * 2**20

_applied: bool | None = None  # the outcome, once tried in this process


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module text), once per process.

    Returns whether they are raised (False where the C library is not glibc, or it refused).
    """
    global _applied
    if _applied is None:
        _applied = _set_thresholds()
    return _applied


def _set_thresholds() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's name on every Linux it runs on
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    done = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and done
    if not done:
        log.debug("glibc refused the malloc thresholds: freed memory goes back to the system")
    return done
