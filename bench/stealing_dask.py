"""Dask's side of bench/stealing-bench.ts: the same two scenarios, one JSON line out.

joining: one worker process (one thread) holds the inputs of 100 tasks of
100 ms; a second worker starts 1 s after they are submitted.
uneven: the durations given (ms, as JSON), as independent tasks on 2
workers of one thread.
"""
import json
import os
import sys
import threading
import time

from distributed import Client, LocalCluster


def value(i):
    return i


def sleepy(_x, ms):
    time.sleep(ms / 1000)
    return os.getpid()


def joining():
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        inputs = [client.submit(value, i, pure=False) for i in range(100)]
        client.gather(inputs)
        t0 = time.perf_counter()
        work = [client.submit(sleepy, x, 100, pure=False) for x in inputs]
        threading.Timer(1.0, lambda: cluster.scale(2)).start()
        pids = client.gather(work)
        seconds = time.perf_counter() - t0
        counts = {}
        for p in pids:
            counts[p] = counts.get(p, 0) + 1
        return seconds, sorted(counts.values(), reverse=True)


def uneven(durations):
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        client.gather([client.submit(sleepy, i, 20, pure=False) for i in range(4)])
        t0 = time.perf_counter()
        client.gather([client.submit(sleepy, i, ms, pure=False) for i, ms in enumerate(durations)])
        return time.perf_counter() - t0


if __name__ == "__main__":
    durations = json.loads(sys.argv[1])
    j, split = joining()
    u = uneven(durations)
    print(json.dumps({"joining": j, "joiningSplit": split, "uneven": u}))
