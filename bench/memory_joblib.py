"""joblib side of bench/memory.ts: joblib.hash of a float64 array, and
joblib.Memory cached calls (mmap_mode='r') with a large and a small array
argument, timed here and printed as one line of JSON.

Run by bench/memory.ts with Debian's /usr/bin/python3:

    /usr/bin/python3 bench/memory_joblib.py /dev/shm/some-0700-folder 1073741824 3 200
"""
import json
import sys
import time


def main():
    import joblib
    import numpy as np

    if sys.argv[1:] == ["--versions"]:
        print(json.dumps({"python": sys.version.split()[0], "joblib": joblib.__version__, "numpy": np.__version__}))
        return
    folder, nbytes, repeats, small_calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    n = nbytes // 8
    big = np.arange(n, dtype=np.float64)
    big *= 0.5
    big += 1.0

    hash_s = []
    for _ in range(repeats):
        start = time.perf_counter()
        joblib.hash(big)
        hash_s.append(time.perf_counter() - start)

    memory = joblib.Memory(folder, mmap_mode="r", verbose=0)

    def double(a):
        return a * 2

    cached = memory.cache(double)
    cached(big)  # computed and stored, untimed
    big_s = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = cached(big)
        first = float(out[0])
        big_s.append(time.perf_counter() - start)
        if not isinstance(out, np.memmap) or first != 2.0:
            sys.exit(f"memory_joblib.py: the cached result is {type(out).__name__} with first element {first}, expected a memmap with 2.0")
        del out

    small = np.arange(1000, dtype=np.float64)

    def plus_one(a):
        return a + 1

    cached_small = memory.cache(plus_one)
    cached_small(small)
    small_ms = []
    for _ in range(small_calls):
        start = time.perf_counter()
        out = cached_small(small)
        small_ms.append((time.perf_counter() - start) * 1e3)
    if float(out[999]) != 1000.0:
        sys.exit("memory_joblib.py: the small cached result is wrong")
    memory.clear(warn=False)
    print(json.dumps({"hash_s": hash_s, "big_s": big_s, "small_ms": small_ms}))


if __name__ == "__main__":
    main()
