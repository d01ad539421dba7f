"""joblib side of bench/dump.ts: one repeat of joblib.dump, joblib.load and
joblib.load(mmap_mode='r'), timed here and printed as one line of JSON.

Run by bench/dump.ts with Debian's /usr/bin/python3 (the python3 first on
PATH may lack numpy). Not meant to be run by hand, but it can be:

    /usr/bin/python3 bench/joblib_dump.py --versions
    /usr/bin/python3 bench/joblib_dump.py /dev/shm/some-0700-folder/x.pkl 1048576 20 5

The array holds x[i] = 1 + i * 0.5, the same values as the memjob and fs
files, and every load is checked at its first, middle and last element.
"""
import json
import os
import sys
import time


def expected(i):
    return 1.0 + i * 0.5


def check(label, array, n):
    if array.shape != (n,) or str(array.dtype) != "float64":
        sys.exit(f"joblib_dump.py: {label} returned shape {array.shape} dtype {array.dtype}, expected ({n},) float64")
    for i in (0, n // 2, n - 1):
        if float(array[i]) != expected(i):
            sys.exit(f"joblib_dump.py: {label} element {i} is {float(array[i])!r}, expected {expected(i)!r}")


def main():
    import joblib
    import numpy as np

    if sys.argv[1:] == ["--versions"]:
        print(json.dumps({"python": sys.version.split()[0], "joblib": joblib.__version__, "numpy": np.__version__}))
        return
    path, n, opens, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

    # Built in place (no temporary), untimed. It stays alive during the
    # loads, as the source array does on the Node side.
    a = np.arange(n, dtype=np.float64)
    a *= 0.5
    a += 1.0

    if os.path.exists(path):
        os.remove(path)
    start = time.perf_counter()
    joblib.dump(a, path)
    dump_s = time.perf_counter() - start

    start = time.perf_counter()
    b = joblib.load(path)
    load_s = time.perf_counter() - start
    check("joblib.load", b, n)
    del b  # freed at once (reference count), before the mapped loads

    # Open -> element 0 read, as load(file, { mmapMode: 'r' }).x[0] on the Node side.
    mmap_ms = []
    for k in range(warmup + opens):
        start = time.perf_counter()
        m = joblib.load(path, mmap_mode="r")
        first = m[0]
        elapsed = time.perf_counter() - start
        if float(first) != expected(0):
            sys.exit(f"joblib_dump.py: mapped element 0 is {float(first)!r}, expected {expected(0)!r}")
        if k == 0:
            check("joblib.load(mmap_mode='r')", m, n)
        if k >= warmup:
            mmap_ms.append(elapsed * 1e3)
        del m

    os.remove(path)
    print(json.dumps({"dump_s": dump_s, "load_s": load_s, "mmap_ms": mmap_ms}))


if __name__ == "__main__":
    main()
