#!/usr/bin/env python3
# A bare thread pool spawning `true` for the three shapes, dependencies honoured.
import subprocess, sys, time, threading
from concurrent.futures import ThreadPoolExecutor
def run(deps, slots=16):
    n = len(deps); left = [len(d) for d in deps]; down = [[] for _ in range(n)]
    for i, d in enumerate(deps):
        for j in d: down[j].append(i)
    done = threading.Event(); lock = threading.Lock(); finished = [0]
    pool = ThreadPoolExecutor(slots)
    def task(i):
        subprocess.run(["true"])
        ready = []
        with lock:
            finished[0] += 1
            for k in down[i]:
                left[k] -= 1
                if left[k] == 0: ready.append(k)
            if finished[0] == n: done.set()
        for k in ready: pool.submit(task, k)
    t0 = time.perf_counter()
    for i in range(n):
        if left[i] == 0: pool.submit(task, i)
    done.wait(); t = time.perf_counter() - t0; pool.shutdown(); return t
chain = [[]] + [[i] for i in range(49)]
fan = [[]] + [[0]] * 200 + [list(range(1, 201))]
layered = []
for l in range(10):
    for j in range(100):
        layered.append([] if l == 0 else [(l-1)*100 + j, (l-1)*100 + (j+1) % 100])
for name, deps in [("chain-50", chain), ("fanout-200", fan), ("layered-1000", layered)]:
    print(name, f"{run(deps):.3f}")
