"""Counting instructions of one region of a Python process with callgrind.

The process runs under `valgrind --tool=callgrind --instr-atstart=no` (see
`callgrind_prefix`), so interpreter start-up, imports and warm-up run uninstrumented (fast);
`measured()` switches instrumentation on around the region, zeroes the counters, and dumps
them when the region ends. `read_total` reads that dump. Callgrind's client requests are
C macros, so a few lines of C are compiled into .cache/ on first use (needs a C compiler and
valgrind's headers, both part of the valgrind/build-essential packages).
"""
import ctypes
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "callgrind-shim"
SHIM_C = r"""
#include <valgrind/callgrind.h>
int cg_running(void) { return RUNNING_ON_VALGRIND; }
void cg_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void cg_stop(void) { CALLGRIND_DUMP_STATS_AT("measured"); CALLGRIND_STOP_INSTRUMENTATION; }
"""


def shim():
    so = CACHE / "libcgshim.so"
    if not so.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        src = CACHE / "cgshim.c"
        src.write_text(SHIM_C)
        tmp = so.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", str(tmp), str(src)], check=True)
        tmp.replace(so)
    return ctypes.CDLL(str(so))


@contextmanager
def measured():
    lib = shim()
    if not lib.cg_running():
        raise RuntimeError("measured() needs the process to run under callgrind_prefix()")
    lib.cg_start()
    try:
        yield
    finally:
        lib.cg_stop()


def callgrind_prefix(out_file):
    # Dumps go to out_file.1, out_file.2, ...; the one at exit (nothing: instrumentation is
    # off by then) to out_file itself.
    shim()  # compile before the child needs it
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_file}", "-q"]


def read_total(out_file):
    """Instructions in the `measured()` dump(s) of a run."""
    out_file = Path(out_file)
    total = 0
    dumps = sorted(out_file.parent.glob(out_file.name + ".*"))
    if not dumps:
        raise RuntimeError(f"no callgrind dump next to {out_file}")
    for dump in dumps:
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("summary:") or line.startswith("totals:"):
                total += int(line.split()[1])
                break
    return total
