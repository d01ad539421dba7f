"""joblib side of bench/parallel.ts: joblib.Parallel(n_jobs=2) (loky, the
default backend) on the same workloads, timed here and printed as one line
of JSON.

Run by bench/parallel.ts with Debian's /usr/bin/python3 (the python3 first
on PATH may lack joblib). Not meant to be run by hand, but it can be:

    /usr/bin/python3 bench/parallel_joblib.py --versions
    /usr/bin/python3 bench/parallel_joblib.py seed 400      # sequential, first and second Parallel call
    /usr/bin/python3 bench/parallel_joblib.py noop 100000 3 # warm-up call, then 3 timed calls
    /usr/bin/python3 bench/parallel_joblib.py cold          # one cold start; run a new python for each
    /usr/bin/python3 bench/parallel_joblib.py reuse 268435456 3  # a 256 MiB array: first call, then again

Timings start after the imports, so interpreter start-up is never counted.
Every result is checked against its formula; a wrong one exits non-zero.
"""
import json
import sys
import time


def process(n):
    # Seed 000's function, line for line: the same work as the JS version.
    s = 0
    for i in range(100000):
        s += i * n
    return s


def noop(i):
    return i


# sum(i for i in range(100000)): process(n) must equal n * SEED_SUM.
SEED_SUM = 100000 * 99999 // 2


def fail(message):
    sys.exit(f"parallel_joblib.py: {message}")


def check_seed(label, results, n):
    if len(results) != n:
        fail(f"{label} returned {len(results)} results, expected {n}")
    for i, value in enumerate(results):
        if value != i * SEED_SUM:
            fail(f"{label} result {i} is {value!r}, expected {i * SEED_SUM!r}")


def seed(n):
    from joblib import Parallel, delayed

    start = time.perf_counter()
    sequential = [process(i) for i in range(n)]
    sequential_s = time.perf_counter() - start
    check_seed("sequential loop", sequential, n)

    # The first call starts loky's workers; the second finds them warm
    # (loky's executor is reused across Parallel calls with the same n_jobs).
    timings = []
    for label in ("first Parallel call", "second Parallel call"):
        start = time.perf_counter()
        results = Parallel(n_jobs=2)(delayed(process)(i) for i in range(n))
        timings.append(time.perf_counter() - start)
        check_seed(label, results, n)
    return {"sequential_s": sequential_s, "cold_s": timings[0], "warm_s": timings[1]}


def noop_rate(n, rounds):
    from joblib import Parallel, delayed

    def run(label):
        start = time.perf_counter()
        results = Parallel(n_jobs=2)(delayed(noop)(i) for i in range(n))
        elapsed = time.perf_counter() - start
        if results != list(range(n)):
            fail(f"{label}: the results are not 0 .. {n - 1} in order")
        return elapsed

    run("warm-up call")  # starts the workers, untimed, as on the Node side
    return {"seconds": [run(f"timed call {k + 1}") for k in range(rounds)]}


def cold():
    from joblib import Parallel, delayed

    start = time.perf_counter()
    results = Parallel(n_jobs=2)([delayed(noop)(41)])
    elapsed = time.perf_counter() - start
    if results != [41]:
        fail(f"cold start returned {results!r}, expected [41]")
    return {"seconds": elapsed}


def length(a):
    return len(a)


def reuse(nbytes, rounds):
    """One managed Parallel (a with block, as the issue's figure): a large
    array given to 2 tasks, the first call (dump) and then the same call
    again (joblib finds the same array's memmap)."""
    import numpy as np
    from joblib import Parallel, delayed

    array = np.ones(nbytes // 8)
    first, again = [], []
    for _ in range(rounds):
        with Parallel(n_jobs=2) as p:
            p([delayed(noop)(0), delayed(noop)(1)])  # workers started, untimed
            for times in (first, again):
                start = time.perf_counter()
                results = p([delayed(length)(array), delayed(length)(array)])
                times.append(time.perf_counter() - start)
                if results != [len(array)] * 2:
                    fail(f"reuse returned {results!r}")
    return {"first_s": first, "again_s": again}


def main():
    args = sys.argv[1:]
    if args == ["--versions"]:
        import joblib

        print(json.dumps({"python": sys.version.split()[0], "joblib": joblib.__version__}))
    elif len(args) == 2 and args[0] == "seed":
        print(json.dumps(seed(int(args[1]))))
    elif len(args) == 3 and args[0] == "noop":
        print(json.dumps(noop_rate(int(args[1]), int(args[2]))))
    elif len(args) == 3 and args[0] == "reuse":
        print(json.dumps(reuse(int(args[1]), int(args[2]))))
    elif args == ["cold"]:
        print(json.dumps(cold()))
    else:
        fail(f"unknown arguments {args!r}; see the docstring")


if __name__ == "__main__":
    main()
