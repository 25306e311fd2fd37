"""Samples a process's memory and connections while a benchmark runs, to find what makes a peak.

Every --interval seconds until the process exits (or --seconds pass): VmRSS and VmHWM
(/proc/PID/status), its split into anonymous and file pages (RssAnon, RssFile), threads, open
TCP sockets and unix sockets (/proc/PID/fd), and — when glibc's `malloc_info` is not reachable
from outside — the count of anonymous mappings of 64 MiB reservations (malloc arenas) from
/proc/PID/maps. Writes one JSON line per sample to --out, and prints a summary: the sample at
the highest VmRSS and the maximum of each column.
    $BOOTSTRAP_ENV_PYTHON bench/proc_sample.py --pid PID --out /tmp/samples.jsonl
    $BOOTSTRAP_ENV_PYTHON bench/proc_sample.py --match target/provider/aws-csi-provider --out ...
--match waits for a process whose argv[0] ends with the given path (e.g. the benchmark starts
it). Prints no secret: only /proc counters.
"""
import argparse
import json
import os
import time


def find(match, timeout):
    end = time.time() + timeout
    while time.time() < end:
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv0 = f.read().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if argv0.endswith(match):
                return int(pid)
        time.sleep(0.2)
    raise SystemExit(f"no process {match} within {timeout} s")


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0])
            elif k == "Threads":
                out[k] = int(v)
    return out


def sockets(pid):
    """(tcp, unix, other fds): socket inodes matched against /proc/PID/net/{tcp,tcp6,unix}."""
    inodes = set()
    fds = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        fds += 1
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    tcp = unix = 0
    for table, col in (("tcp", 9), ("tcp6", 9), ("unix", 6)):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > col and parts[col] in inodes:
                        if table == "unix":
                            unix += 1
                        else:
                            tcp += 1
        except OSError:
            pass
    return tcp, unix, fds


def arenas(pid):
    """Anonymous mappings sized like glibc's non-main arenas (reserved in 64 MiB heaps)."""
    n = 0
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            # an arena heap: a 64 MiB-aligned reservation, split into rw- and ---p parts
            if len(parts) == 5 and lo % (64 << 20) == 0 and parts[1].startswith("rw"):
                n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--match", help="wait for a process whose argv[0] ends with this")
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--seconds", type=float, default=3600)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    pid = a.pid or find(a.match, 600)
    start = time.time()
    best, peaks = None, {}
    with open(a.out, "w") as out:
        while time.time() - start < a.seconds:
            try:
                s = status(pid)
                s["tcp"], s["unix"], s["fds"] = sockets(pid)
                s["arenas"] = arenas(pid)
            except (OSError, StopIteration, ValueError):
                break
            s["t"] = round(time.time() - start, 2)
            out.write(json.dumps(s) + "\n")
            out.flush()
            if best is None or s.get("VmRSS", 0) > best.get("VmRSS", 0):
                best = s
            for k, v in s.items():
                peaks[k] = max(peaks.get(k, v), v)
            time.sleep(a.interval)
    print(f"pid {pid}: at the highest VmRSS: {json.dumps(best)}")
    print(f"pid {pid}: maxima: {json.dumps(peaks)}")


if __name__ == "__main__":
    main()
