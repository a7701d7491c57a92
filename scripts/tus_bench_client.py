#!/usr/bin/env python3
"""A minimal tus 1.0 client for benchmarks (stdlib only): one keep-alive
connection, fixed-size PATCHes sent from the file with sendfile(2), so the
client (which shares the machine's cores with the server it measures) spends
as little CPU as a client can: no copy through user space. Every server in
the benchmark gets the same client.

  tus_bench_client.py upload URL FILE CHUNK_MIB [STOP_FRACTION]
      -> prints "<seconds> <upload-url>" (stops early at STOP_FRACTION of the file)
  tus_bench_client.py resume UPLOAD_URL FILE CHUNK_MIB
      -> HEAD, then one PATCH of CHUNK_MIB from the reported offset;
         prints "<milliseconds for HEAD+PATCH> <offset>"
"""
import http.client
import os
import sys
import time
import urllib.parse


def conn_for(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, blocksize=1 << 20), u


def patch(c, path, f, offset, n):
    c.putrequest("PATCH", path, skip_accept_encoding=True)
    for k, v in (("Tus-Resumable", "1.0.0"), ("Upload-Offset", str(offset)),
                 ("Content-Type", "application/offset+octet-stream"),
                 ("Content-Length", str(n))):
        c.putheader(k, v)
    c.endheaders()
    sent = c.sock.sendfile(f, offset, n)
    if sent != n:
        sys.exit(f"PATCH at {offset}: sent {sent} of {n} bytes")
    r = c.getresponse()
    r.read()
    if r.status != 204:
        sys.exit(f"PATCH at {offset}: HTTP {r.status}")
    return int(r.getheader("Upload-Offset"))


def upload(url, path, chunk, stop=1.0):
    size = os.path.getsize(path)
    c, u = conn_for(url)
    t0 = time.monotonic()
    c.request("POST", u.path, headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(size),
                                       "Content-Length": "0"})
    r = c.getresponse()
    r.read()
    if r.status != 201:
        sys.exit(f"POST: HTTP {r.status}")
    loc = urllib.parse.urljoin(url, r.getheader("Location"))
    lpath = urllib.parse.urlsplit(loc).path
    off, end = 0, int(size * stop)
    with open(path, "rb") as f:
        while off < end:
            off = patch(c, lpath, f, off, min(chunk, end - off, size - off))
    print(f"{time.monotonic() - t0:.3f} {loc}")


def resume(loc, path, chunk):
    size = os.path.getsize(path)
    c, u = conn_for(loc)
    t0 = time.monotonic()
    c.request("HEAD", u.path, headers={"Tus-Resumable": "1.0.0"})
    r = c.getresponse()
    r.read()
    off = int(r.getheader("Upload-Offset"))
    with open(path, "rb") as f:
        patch(c, u.path, f, off, min(chunk, size - off))
    print(f"{(time.monotonic() - t0) * 1000:.1f} {off}")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "upload":
        stop = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
        upload(sys.argv[2], sys.argv[3], int(sys.argv[4]) << 20, stop)
    elif mode == "resume":
        resume(sys.argv[2], sys.argv[3], int(sys.argv[4]) << 20)
    else:
        sys.exit(__doc__)
