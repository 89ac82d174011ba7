"""Whether this machine has a usable CUDA GPU, asked of the driver without any framework."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def cuda_device_count() -> int:
    """The number of CUDA devices the driver sees; 0 without a driver or a GPU."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value
