"""joblib side of bench/joblib.ts: joblib.dump and joblib.load of a dict
{'features': float64 array, 'name': 'x'}, timed here with time.perf_counter()
and printed as one line of JSON (interpreter start-up and imports are not
counted).

Run by bench/joblib.ts with Debian's /usr/bin/python3 (the python3 first on
PATH may lack numpy). Not meant to be run by hand, but it can be:

    /usr/bin/python3 bench/joblib_interop.py --versions
    # the reference files memjob loads: FILE uncompressed, ZFILE with compress=3
    /usr/bin/python3 bench/joblib_interop.py --write FILE ZFILE N NZ
    # memjob's files, loaded by joblib (in memory and with mmap_mode='r'), checked
    /usr/bin/python3 bench/joblib_interop.py --check FILE ZFILE N NZ
    # one timed round: dumps into the 0700 folder DIR, loads of FILE and ZFILE
    /usr/bin/python3 bench/joblib_interop.py --round FILE ZFILE N NZ DIR OPENS WARMUP

Every array holds x[i] = 1 + i * 0.5, as on the Node side, and every load is
checked at its first, middle and last element.
"""
import json
import os
import sys
import time


def expected(i):
    return 1.0 + i * 0.5


def make(np, n):
    # Built in place (no temporary), untimed.
    a = np.arange(n, dtype=np.float64)
    a *= 0.5
    a += 1.0
    return {"features": a, "name": "x"}


def check(label, value, n):
    """The dict as written on either side: two keys, 'name' 'x', 'features' a float64 (n,) array."""
    if not isinstance(value, dict) or sorted(value) != ["features", "name"] or value["name"] != "x":
        sys.exit(f"joblib_interop.py: {label} returned {type(value).__name__} with keys {sorted(value) if isinstance(value, dict) else '-'}, expected a dict of 'features' and 'name': 'x'")
    array = value["features"]
    if array.shape != (n,) or str(array.dtype) != "float64":
        sys.exit(f"joblib_interop.py: {label} returned shape {array.shape} dtype {array.dtype}, expected ({n},) float64")
    for i in (0, n // 2, n - 1):
        if float(array[i]) != expected(i):
            sys.exit(f"joblib_interop.py: {label} element {i} is {float(array[i])!r}, expected {expected(i)!r}")


def timed(step):
    start = time.perf_counter()
    value = step()
    return time.perf_counter() - start, value


def fresh(path):
    # Every write lands on fresh tmpfs pages, as memjob's do.
    if os.path.exists(path):
        os.remove(path)
    return path


def one_round(joblib, np, path, zpath, n, nz, folder, opens, warmup):
    out = {}
    d = make(np, n)
    target = fresh(os.path.join(folder, "joblib-round.pkl"))
    out["dump_s"], _ = timed(lambda: joblib.dump(d, target))
    os.remove(target)

    # The source stays alive during the loads, as on the Node side.
    out["load_s"], b = timed(lambda: joblib.load(path))
    check("joblib.load", b, n)
    del b  # freed at once (reference count), before the mapped loads

    # Open -> element 0 read, as loadJoblibSync(f, { mmapMode: 'r' }).get('features').get(0) in Node.
    mmap_ms = []
    for k in range(warmup + opens):
        start = time.perf_counter()
        m = joblib.load(path, mmap_mode="r")
        first = m["features"][0]
        elapsed = time.perf_counter() - start
        if float(first) != expected(0):
            sys.exit(f"joblib_interop.py: mapped element 0 is {float(first)!r}, expected {expected(0)!r}")
        if k == 0:
            check("joblib.load(mmap_mode='r')", m, n)
        if k >= warmup:
            mmap_ms.append(elapsed * 1e3)
        del m
    out["mmap_ms"] = mmap_ms
    del d

    dz = make(np, nz)
    ztarget = fresh(os.path.join(folder, "joblib-round.pkl.z3"))
    out["zdump_s"], _ = timed(lambda: joblib.dump(dz, ztarget, compress=3))
    os.remove(ztarget)
    out["zload_s"], bz = timed(lambda: joblib.load(zpath))
    check("joblib.load of the compressed file", bz, nz)
    return out


def main():
    import joblib
    import numpy as np

    if sys.argv[1:] == ["--versions"]:
        print(json.dumps({"python": sys.version.split()[0], "joblib": joblib.__version__, "numpy": np.__version__}))
        return
    command, path, zpath, n, nz = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    if command == "--write":
        joblib.dump(make(np, n), fresh(path))
        joblib.dump(make(np, nz), fresh(zpath), compress=3)
        check("joblib.load of its own file", joblib.load(path), n)
        print(json.dumps({"bytes": os.path.getsize(path), "zbytes": os.path.getsize(zpath)}))
    elif command == "--check":
        check("joblib.load of memjob's file", joblib.load(path), n)
        check("joblib.load(mmap_mode='r') of memjob's file", joblib.load(path, mmap_mode="r"), n)
        if not isinstance(joblib.load(path, mmap_mode="r")["features"], np.memmap):
            sys.exit("joblib_interop.py: joblib.load(mmap_mode='r') of memjob's file did not map its array")
        check("joblib.load of memjob's compressed file", joblib.load(zpath), nz)
        print(json.dumps({"ok": True}))
    elif command == "--round":
        folder, opens, warmup = sys.argv[6], int(sys.argv[7]), int(sys.argv[8])
        print(json.dumps(one_round(joblib, np, path, zpath, n, nz, folder, opens, warmup)))
    else:
        sys.exit(f"joblib_interop.py: expected --versions, --write, --check or --round, received {command!r}")


if __name__ == "__main__":
    main()
