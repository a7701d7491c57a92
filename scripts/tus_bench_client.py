#!/usr/bin/env python3
"""A minimal tus 1.0 client for benchmarks (stdlib only): one keep-alive
connection, fixed-size PATCHes sent from the file with sendfile(2), so the
client (which shares the machine's cores with the server it measures) spends
as little CPU as a client can: no copy through user space. Every server in
the benchmark gets the same client.

  tus_bench_client.py upload URL FILE CHUNK_MIB [STOP_FRACTION]
      -> prints "<seconds> <upload-url>" (stops early at STOP_FRACTION of the file);
         with BENCH_START_DIR set, starts only once the file `go` is there
  tus_bench_client.py resume UPLOAD_URL FILE CHUNK_MIB
      -> HEAD, then one PATCH of CHUNK_MIB from the reported offset;
         prints "<milliseconds for HEAD+PATCH> <offset>"
  tus_bench_client.py parallel URL FILE N CHUNK_MIB       (final created first: in place)
  tus_bench_client.py parallel-late URL FILE N CHUNK_MIB  (final created last: copied)
      -> the file in N partial uploads (tus concatenation), one thread and
         one connection each, then the final upload listing them; waits
         until the final's Upload-Offset is its length (the server fills it
         from the partials); prints "<seconds> <final-upload-url>"
  tus_bench_client.py lister URL STOP_FILE
      -> GET URL on one keep-alive connection, again and again, until
         STOP_FILE exists (and at least 20 times); prints "<requests> <p50 ms> <p99 ms> <max ms>"

A query string of URL (e.g. `?account=UUID`) is sent with every request.
"""
import http.client
import os
import sys
import threading
import time
import urllib.parse


def conn_for(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, blocksize=1 << 20), u


def patch(c, path, f, offset, n, base=0):
    c.putrequest("PATCH", path, skip_accept_encoding=True)
    for k, v in (("Tus-Resumable", "1.0.0"), ("Upload-Offset", str(offset)),
                 ("Content-Type", "application/offset+octet-stream"),
                 ("Content-Length", str(n))):
        c.putheader(k, v)
    c.endheaders()
    sent = c.sock.sendfile(f, base + offset, n)
    if sent != n:
        sys.exit(f"PATCH at {offset}: sent {sent} of {n} bytes")
    r = c.getresponse()
    r.read()
    if r.status != 204:
        sys.exit(f"PATCH at {offset}: HTTP {r.status}")
    return int(r.getheader("Upload-Offset"))


def with_query(path, u):
    return f"{path}?{u.query}" if u.query else path


def create(c, url, u, length, concat=None):
    """POST an upload; returns its URL (with URL's query string)."""
    h = {"Tus-Resumable": "1.0.0", "Content-Length": "0"}
    if length is not None:
        h["Upload-Length"] = str(length)
    if concat:
        h["Upload-Concat"] = concat
    c.request("POST", with_query(u.path, u), headers=h)
    r = c.getresponse()
    body = r.read()
    if r.status != 201:
        sys.exit(f"POST: HTTP {r.status} {body[:300]!r}")
    loc = urllib.parse.urljoin(url, r.getheader("Location"))
    return with_query(loc, u)


def send_range(c, loc, f, base, size, chunk, end=None):
    """PATCH bytes [base, base + size) of f as an upload of length size."""
    lu = urllib.parse.urlsplit(loc)
    lpath = with_query(lu.path, lu)
    off, end = 0, size if end is None else end
    while off < end:
        patch_at(c, lpath, f, base, off, min(chunk, end - off, size - off))
        off = min(off + chunk, end, size)


def patch_at(c, path, f, base, offset, n):
    got = patch(c, path, f, offset, n, base)
    if got != offset + n:
        sys.exit(f"PATCH at {offset}: server at {got}")


def ready_and_wait():
    """With BENCH_START_DIR set: say this client is ready (a file named by
    its pid) and wait for the file `go` there, so that many clients can
    start their uploads at once, their process start-up not counted."""
    d = os.environ.get("BENCH_START_DIR")
    if not d:
        return
    open(os.path.join(d, f"ready.{os.getpid()}"), "w").close()
    while not os.path.exists(os.path.join(d, "go")):
        time.sleep(0.005)


def upload(url, path, chunk, stop=1.0):
    size = os.path.getsize(path)
    c, u = conn_for(url)
    ready_and_wait()
    t0 = time.monotonic()
    loc = create(c, url, u, size)
    with open(path, "rb") as f:
        send_range(c, loc, f, 0, size, chunk, int(size * stop))
    print(f"{time.monotonic() - t0:.3f} {loc}")


def parallel(url, path, n, chunk, final_first=True):
    """N partial uploads sent at once, then their final complete. With
    final_first (what `imgapi publish --parallel` does) the partials and
    the final are created before any byte is sent, so the server writes
    each partial in place into the final; otherwise (tus-js-client's order)
    the final is created after the partials are done and filled by a copy."""
    size = os.path.getsize(path)
    u = urllib.parse.urlsplit(url)
    bounds = [size * i // n for i in range(n + 1)]
    locs, errors = [None] * n, []
    t0 = time.monotonic()

    def make_final():
        c, _ = conn_for(url)
        parts = " ".join(urllib.parse.urlsplit(loc).path for loc in locs)
        return create(c, url, u, None, f"final;{parts}")

    if final_first:
        c, _ = conn_for(url)
        for i in range(n):
            locs[i] = create(c, url, u, bounds[i + 1] - bounds[i], "partial")
        final = make_final()

    def part(i):
        try:
            c, _ = conn_for(url)
            if locs[i] is None:
                locs[i] = create(c, url, u, bounds[i + 1] - bounds[i], "partial")
            with open(path, "rb") as f:
                send_range(c, locs[i], f, bounds[i], bounds[i + 1] - bounds[i], chunk)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(f"partial {i}: {e!r}")

    threads = [threading.Thread(target=part, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("; ".join(errors))
    if not final_first:
        final = make_final()
    c, _ = conn_for(url)
    fu = urllib.parse.urlsplit(final)
    while True:
        c.request("HEAD", with_query(fu.path, fu), headers={"Tus-Resumable": "1.0.0"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit(f"HEAD final: HTTP {r.status}")
        if int(r.getheader("Upload-Offset")) == size:
            break
        time.sleep(0.02)
    print(f"{time.monotonic() - t0:.3f} {final}")


def lister(url, stop_file):
    c, u = conn_for(url)
    lat = []
    while len(lat) < 20 or not os.path.exists(stop_file):
        t = time.monotonic()
        c.request("GET", with_query(u.path, u))
        r = c.getresponse()
        r.read()
        if r.status != 200:
            sys.exit(f"GET: HTTP {r.status}")
        lat.append((time.monotonic() - t) * 1000)
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] if lat else 0.0  # noqa: E731
    print(f"{len(lat)} {q(0.5):.1f} {q(0.99):.1f} {q(1.0):.1f}")


def resume(loc, path, chunk):
    size = os.path.getsize(path)
    c, u = conn_for(loc)
    t0 = time.monotonic()
    c.request("HEAD", with_query(u.path, u), headers={"Tus-Resumable": "1.0.0"})
    r = c.getresponse()
    r.read()
    off = int(r.getheader("Upload-Offset"))
    with open(path, "rb") as f:
        patch(c, with_query(u.path, u), f, off, min(chunk, size - off))
    print(f"{(time.monotonic() - t0) * 1000:.1f} {off}")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "upload":
        stop = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
        upload(sys.argv[2], sys.argv[3], int(sys.argv[4]) << 20, stop)
    elif mode == "resume":
        resume(sys.argv[2], sys.argv[3], int(sys.argv[4]) << 20)
    elif mode in ("parallel", "parallel-late"):
        final_first = mode == "parallel"
        parallel(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]) << 20, final_first)
    elif mode == "lister":
        lister(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
