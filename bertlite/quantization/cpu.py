"""What the CPU can do, for the reduce_range decision.

int8 kernels on x86 CPUs without VNNI multiply uint8 by int8 and add pairs in 16-bit registers that saturate
(`vpmaddubsw`): 255 * 127 * 2 overflows int16. Seven-bit values cannot overflow. CPUs with VNNI (AVX512-VNNI,
AVX-VNNI, AMX) accumulate in 32 bits, so full 8 bits are safe there and halve the rounding error.
"""

from __future__ import annotations

import functools
import platform

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@functools.lru_cache(maxsize=1)
def cpu_has_vnni() -> bool | None:
    """True/False from /proc/cpuinfo on Linux x86; None when it cannot be told."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(flag in flags for flag in VNNI_FLAGS)
    except OSError:
        return None
    return None


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def auto_reduce_range() -> bool:
    """7-bit only where overflow is possible: x86 without (known) VNNI. ARM kernels accumulate in 32 bits."""
    if not is_x86():
        return False
    return cpu_has_vnni() is not True
