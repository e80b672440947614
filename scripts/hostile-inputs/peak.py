#!/usr/bin/env python3
"""Runs a command and samples, every 10 ms, the resident memory of it and of
its child processes (the document readers). Prints the peaks."""
import os, subprocess, sys, time

def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out

start = time.time()
proc = subprocess.Popen(sys.argv[1:])
peak_main = peak_child = peak_sum = 0
seen_children = set()
while proc.poll() is None:
    main = rss_kb(proc.pid)
    kids = children(proc.pid)
    seen_children.update(kids)
    kid = [rss_kb(k) for k in kids]
    peak_main = max(peak_main, main)
    peak_child = max([peak_child] + kid)
    peak_sum = max(peak_sum, main + sum(kid))
    time.sleep(0.01)
print(f"exit={proc.returncode} seconds={time.time()-start:.1f} readers_started={len(seen_children)} "
      f"peak_drain_MiB={peak_main/1024:.0f} peak_reader_MiB={peak_child/1024:.0f} peak_total_MiB={peak_sum/1024:.0f}",
      file=sys.stderr)
