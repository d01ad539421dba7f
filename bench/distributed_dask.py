"""dask side of bench/distributed.ts: joblib.Parallel on joblib's dask
backend (`with parallel_backend('dask')`), on a loopback
distributed.LocalCluster of 2 worker processes with 1 thread each, timed
here and printed as one line of JSON.

Run by bench/distributed.ts with Debian's /usr/bin/python3 (python3-distributed
2022.12 and joblib 1.2). It can be run by hand:

    /usr/bin/python3 bench/distributed_dask.py --versions
    /usr/bin/python3 bench/distributed_dask.py all NOOP ROUNDS SEED_TASKS BYTES CHUNKS LOCAL_DIR

`all` starts the cluster once (untimed), then times: NOOP no-op tasks
(after one untimed call); the seed function over SEED_TASKS inputs,
sequentially and on the cluster; and one BYTES float64 array given to CHUNKS
chunk-sum tasks (a new array each round, made before the timer). Each part
runs ROUNDS times. LOCAL_DIR is the workers' local_directory (the caller
removes it). Every result is checked against its formula; a wrong one exits
non-zero. Progress lines go to stderr, prefixed "bench distributed:".

Bytes moved per machine, in the array part, are dask's own accounting on
each worker: the bytes of the objects it received from the scheduler by
scatter (its update_data handler, counted by a wrapper installed with
client.run) plus those it fetched from other workers (the sum of "total" in
Worker.transfer_incoming_log), read before and after each call.
"""
import json
import logging
import signal
import sys
import time

PERIOD = 2**20
# sum(i for i in range(100000)): process(n) must equal n * SEED_SUM.
SEED_SUM = 100000 * 99999 // 2


def process(n):
    # Seed 000's function, line for line: the same work as the JS version.
    s = 0
    for i in range(100000):
        s += i * n
    return s


def noop(i):
    return i


def chunk_sum(a, offset, stride):
    # Every stride-th element from offset (numpy's strided sum: exact here, the values are small integers).
    from distributed import get_worker

    return float(a[offset::stride].sum()), get_worker().address


def expected_chunk(n, offset, stride, r):
    """Sum of (i % PERIOD) + r over i = offset, offset + stride, ... < n, for n a multiple of PERIOD and stride | PERIOD."""
    per_period = PERIOD // stride
    one = per_period * offset + stride * per_period * (per_period - 1) // 2
    return (n // PERIOD) * one + r * (n // stride)


def fail(message):
    sys.exit(f"distributed_dask.py: {message}")


def progress(message):
    print(f"bench distributed: dask: {message}", file=sys.stderr, flush=True)


def install_counter(dask_worker):
    """Counts the bytes this worker receives by scatter (runs on the worker)."""
    from dask.sizeof import sizeof

    if getattr(dask_worker, "_bench_scattered", None) is not None:
        return
    dask_worker._bench_scattered = 0
    original = dask_worker.handlers["update_data"]

    def update_data(data, **kwargs):
        dask_worker._bench_scattered += sum(sizeof(v) for v in data.values())
        return original(data=data, **kwargs)

    dask_worker.handlers["update_data"] = update_data


def received(dask_worker):
    peers = sum(entry["total"] for entry in dask_worker.transfer_incoming_log)
    return {"scattered": dask_worker._bench_scattered, "peers": peers}


def run_all(noop_n, rounds, seed_n, nbytes, chunks, local_dir):
    import numpy as np
    from distributed import Client, LocalCluster
    from joblib import Parallel, delayed, parallel_backend

    out = {}
    start = time.perf_counter()
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        local_directory=local_dir,
        silence_logs=logging.ERROR,
    ) as cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        out["start_s"] = time.perf_counter() - start
        client.run(install_counter)
        with parallel_backend("dask"):
            # 1. no-op tasks
            def noop_call(label):
                t = time.perf_counter()
                results = Parallel(n_jobs=-1)(delayed(noop)(i) for i in range(noop_n))
                elapsed = time.perf_counter() - t
                if results != list(range(noop_n)):
                    fail(f"{label}: the no-op results are not 0 .. {noop_n - 1} in order")
                return elapsed

            progress(f"no-op tasks ({noop_n}), warm-up call")
            noop_call("warm-up call")
            noop_s = []
            for r in range(rounds):
                progress(f"no-op tasks, round {r + 1}/{rounds}")
                noop_s.append(noop_call(f"round {r + 1}"))
            out["noop_s"] = noop_s

            # 2. seed workload: sequential loop against the cluster, alternating which goes first
            def check_seed(label, results):
                if len(results) != seed_n or any(v != i * SEED_SUM for i, v in enumerate(results)):
                    fail(f"{label}: a seed result differs from n * {SEED_SUM}")

            progress(f"seed workload ({seed_n} tasks), warm-up call")
            check_seed("warm-up call", Parallel(n_jobs=-1)(delayed(process)(i) for i in range(seed_n)))
            sequential_s, parallel_s = [], []
            for r in range(rounds):
                for step in (("sequential", "cluster") if r % 2 == 0 else ("cluster", "sequential")):
                    progress(f"seed workload, round {r + 1}/{rounds}, {step}")
                    t = time.perf_counter()
                    if step == "sequential":
                        results = [process(i) for i in range(seed_n)]
                        sequential_s.append(time.perf_counter() - t)
                    else:
                        results = Parallel(n_jobs=-1)(delayed(process)(i) for i in range(seed_n))
                        parallel_s.append(time.perf_counter() - t)
                    check_seed(step, results)
            out["seed"] = {"sequential_s": sequential_s, "parallel_s": parallel_s}

            # 3. one large array given to `chunks` chunk-sum tasks
            n = nbytes // 8
            big = []
            for r in range(rounds):
                array = (np.arange(n, dtype=np.float64) % PERIOD) + r
                before = client.run(received)
                progress(f"{nbytes // 2**20} MiB array to {chunks} tasks, round {r + 1}/{rounds}")
                t = time.perf_counter()
                results = Parallel(n_jobs=-1)(delayed(chunk_sum)(array, c, chunks) for c in range(chunks))
                elapsed = time.perf_counter() - t
                after = client.run(received)
                for c, (value, _) in enumerate(results):
                    if value != expected_chunk(n, c, chunks, r):
                        fail(f"chunk {c} summed to {value!r}, expected {expected_chunk(n, c, chunks, r)!r}")
                tasks = {}
                for _, address in results:
                    tasks[address] = tasks.get(address, 0) + 1
                workers = [
                    {
                        "address": address,
                        "tasks": tasks.get(address, 0),
                        "scattered": after[address]["scattered"] - before[address]["scattered"],
                        "peers": after[address]["peers"] - before[address]["peers"],
                    }
                    for address in sorted(after)
                ]
                big.append({"seconds": elapsed, "workers": workers})
                del array, results
            out["big"] = big
    return out


def main():
    # SIGTERM (bench/distributed.ts's teardown) leaves through the with blocks, so the cluster's processes are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = sys.argv[1:]
    if args == ["--versions"]:
        import dask
        import distributed
        import joblib
        import numpy

        print(json.dumps({"python": sys.version.split()[0], "joblib": joblib.__version__, "dask": dask.__version__, "distributed": distributed.__version__, "numpy": numpy.__version__}))
    elif len(args) == 7 and args[0] == "all":
        noop_n, rounds, seed_n, nbytes, chunks = (int(a) for a in args[1:6])
        print(json.dumps(run_all(noop_n, rounds, seed_n, nbytes, chunks, args[6])))
    else:
        fail(f"unknown arguments {args!r}; see the docstring")


if __name__ == "__main__":
    main()
