#!/usr/bin/env python3
"""GetImageFile against nginx (issue 26), driven by scripts/bench.sh download.

    download_bench.py MIB ROUNDS STREAMS IMGAPI_PID IMGAPI_URLS NGINX_PIDS NGINX_URLS

IMGAPI_URLS and NGINX_URLS are files with one URL per line, the same files
in the same order (line 1 is the file used for one stream and for the
streams of one file). NGINX_PIDS is a comma-separated list (master and
workers). curl is the client: one process per stream, body to /dev/null.

Per round, each scenario runs on imgapi and then nginx; the best round of
each is reported, and CPU per GiB is the server processes' utime+stime over
all rounds of the scenario divided by the GiB they served.
"""
import os
import resource
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_secs(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of stat(5); here after "comm"
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def clients_cpu():
    """CPU seconds of the curl clients that have ended."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def streams(urls, repeat=1):
    """Wall seconds and bytes to download every URL at once, one curl each,
    each `repeat` times in a row on its connection."""
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(["curl", "-sf", "-w", "%{size_download}\n"] + [u, "-o", "/dev/null"] * repeat,
                         stdout=subprocess.PIPE, text=True)
        for u in urls
    ]
    size = 0
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            sys.exit(f"curl failed ({p.returncode}) for one of {urls[0]}...")
        size += sum(int(x) for x in out.split())
    return time.monotonic() - t0, size


def main():
    mib, rounds, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    servers = {
        "imgapi": ([int(sys.argv[4])], open(sys.argv[5]).read().split()),
        "nginx": ([int(p) for p in sys.argv[6].split(",")], open(sys.argv[7]).read().split()),
    }
    # One stream downloads the file 8 times in a row: enough bytes for
    # the CPU figures (in clock ticks) to mean something.
    scenarios = [
        ("1 stream", lambda urls: urls[:1], 8),
        (f"{n} streams, one file", lambda urls: urls[:1] * n, 1),
        (f"{n} streams, {n} files", lambda urls: urls[:n], 1),
    ]
    best = {}
    cpu = {}
    both = {}
    for r in range(rounds):
        line = []
        for name, pick, repeat in scenarios:
            for server, (pids, urls) in servers.items():
                c0, k0 = cpu_secs(pids), clients_cpu()
                secs, size = streams(pick(urls), repeat)
                c1, k1 = cpu_secs(pids), clients_cpu()
                rate = size / secs / 2**30
                key = (name, server)
                best[key] = max(best.get(key, 0), rate)
                used, served = cpu.get(key, (0.0, 0))
                cpu[key] = (used + c1 - c0, served + size)
                both[key] = both.get(key, 0.0) + (c1 - c0) + (k1 - k0)
                line.append(f"{name} {server} {rate:.2f}")
        print(f"download: round {r + 1}: " + ", ".join(line) + " GiB/s", flush=True)
    imgapi_pid = servers["imgapi"][0][0]
    rss32 = hwm_mib(imgapi_pid)
    for name, _, _ in scenarios:
        i, x = best[(name, "imgapi")], best[(name, "nginx")]
        ci = cpu[(name, "imgapi")][0] / (cpu[(name, "imgapi")][1] / 2**30)
        cx = cpu[(name, "nginx")][0] / (cpu[(name, "nginx")][1] / 2**30)
        bi = both[(name, "imgapi")] / (cpu[(name, "imgapi")][1] / 2**30)
        bx = both[(name, "nginx")] / (cpu[(name, "nginx")][1] / 2**30)
        print(f"download: {name}, {mib} MiB: imgapi {i:.2f} GiB/s, nginx {x:.2f} GiB/s: "
              f"{i / x:.2f}x (goal >= 1.0) {'ok' if i >= x else 'MISSED'}; server CPU per GiB imgapi {ci:.3f} s, "
              f"nginx {cx:.3f} s: {ci / cx:.2f}x (goal <= 1.2) {'ok' if ci <= 1.2 * cx else 'MISSED'}; "
              f"server and curl together {bi:.3f} s against {bx:.3f} s: {bi / bx:.2f}x")
    many = int(os.environ.get("DL_MANY", "256"))
    secs, size = streams(servers["imgapi"][1][:1] * many)
    print(f"download: imgapi peak RSS {rss32:.1f} MiB after the runs of {n} streams, "
          f"{hwm_mib(imgapi_pid):.1f} MiB after {many} streams of one file "
          f"({size / secs / 2**30:.2f} GiB/s together)")


if __name__ == "__main__":
    main()
