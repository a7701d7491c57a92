#!/usr/bin/env python3
"""Drive the imgapi tus 1.0.0 endpoint (/uploads) with the real, unchanged
tuspy client (the version pinned in tests/tus/requirements.txt).

Usage: IMGAPI_URL=http://127.0.0.1:PORT FILE=/path/to/file python tuspy_upload.py

FILE should be a few MiB (the Rust test writes ~5 MiB), larger than 2 MiB.

Scenarios:
  A  chunked upload, 1 MiB chunks: ``uploader.upload()``
  B  a second uploader sends two chunks (``upload_chunk()`` twice) and is
     dropped; a NEW uploader made with ``url=`` the first one's URL reads
     the server's offset (HEAD) and ``upload()``s the rest
  C  chunked upload with ``upload_checksum=True`` (every PATCH carries
     ``Upload-Checksum: sha1 <base64>``)
  D  the AsyncUploader (aiohttp) variant of A

Each finished upload is checked through GET {url}/info (state, offset,
length, sha1, content_md5). Prints one line per check ("ok N - ..." /
"not ok N - ..."); a failing check does not stop the other scenarios. Exit
code 0 only if every check passed, 1 otherwise (and after 60 s at the
latest).
"""

import asyncio
import base64
import hashlib
import os
import re
import signal
import sys
import traceback

import requests
from tusclient import client

try:
    from importlib.metadata import version as _dist_version
except ImportError:  # pragma: no cover
    _dist_version = None

MiB = 1024 * 1024
CHUNK = MiB
TIMEOUT_S = 60
HTTP_TIMEOUT = 10

BASE = os.environ.get("IMGAPI_URL", "").rstrip("/")
FILE = os.environ.get("FILE")

UPLOAD_URL_RE = re.compile(
    r"/uploads/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)

_count = 0
_failures = 0


def _line(s):
    print(s, flush=True)


def ok(msg):
    global _count
    _count += 1
    _line("ok %d - %s" % (_count, msg))


def not_ok(msg):
    global _count, _failures
    _count += 1
    _failures += 1
    _line("not ok %d - %s" % (_count, msg))


def check(cond, msg, detail=None):
    if cond:
        ok(msg)
    else:
        not_ok(msg if detail is None else "%s (%s)" % (msg, detail))
    return bool(cond)


def describe(err):
    s = "%s: %s" % (type(err).__name__, err)
    # tuspy's TusCommunicationError / TusUploadFailed carry the response.
    status = getattr(err, "status_code", None)
    body = getattr(err, "response_content", None)
    if status is not None or body:
        s += " [response %s: %r]" % (status, body)
    return s


def info(url):
    r = requests.get(url + "/info", timeout=HTTP_TIMEOUT)
    try:
        body = r.json()
    except ValueError:
        body = r.text
    return r.status_code, body


def head(url):
    r = requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=HTTP_TIMEOUT)
    return r.status_code, r.headers


def verify_complete(label, url, local):
    status, b = info(url)
    if not check(status == 200, "%s: GET info -> 200" % label, "got %s: %s" % (status, b)):
        return
    check(b.get("state") == "complete", '%s: info.state is "complete"' % label,
          "got %r" % (b.get("state"),))
    check(b.get("offset") == local["size"], "%s: info.offset == %d" % (label, local["size"]),
          "got %r" % (b.get("offset"),))
    check(b.get("length") == local["size"], "%s: info.length == %d" % (label, local["size"]),
          "got %r" % (b.get("length"),))
    check(b.get("sha1") == local["sha1"], "%s: info.sha1 == local sha1 %s" % (label, local["sha1"]),
          "got %r" % (b.get("sha1"),))
    check(b.get("content_md5") == local["md5"],
          "%s: info.content_md5 == local md5 %s" % (label, local["md5"]),
          "got %r" % (b.get("content_md5"),))


def new_client():
    return client.TusClient(BASE + "/uploads")


def scenario_a(local):
    label = "A chunked upload"
    my_client = new_client()
    uploader = my_client.uploader(FILE, chunk_size=CHUNK,
                                  metadata={"filename": local["name"] + ".a"})
    offsets = []
    # upload() is the plain loop over upload_chunk(); observe each step's
    # acknowledged offset by wrapping the bound method (no client change).
    orig = uploader.upload_chunk

    def counting_upload_chunk():
        orig()
        offsets.append(uploader.offset)

    uploader.upload_chunk = counting_upload_chunk
    uploader.upload()
    ok("%s: uploader.upload() returned" % label)
    check(bool(uploader.url) and UPLOAD_URL_RE.search(uploader.url),
          "%s: upload URL looks like /uploads/<uuid>" % label, uploader.url)
    check(uploader.url.startswith(BASE), "%s: upload URL resolves against IMGAPI_URL" % label,
          uploader.url)
    n = -(-local["size"] // CHUNK)
    expect = [min((i + 1) * CHUNK, local["size"]) for i in range(n)]
    check(offsets == expect, "%s: %d PATCHes, each answered with the expected Upload-Offset"
          % (label, n), "got %s" % offsets)
    verify_complete(label, uploader.url, local)


def scenario_b(local):
    label = "B interrupt+resume(url=)"
    first = new_client().uploader(FILE, chunk_size=CHUNK,
                                  metadata={"filename": local["name"] + ".b"})
    first.upload_chunk()
    first.upload_chunk()
    check(first.offset == 2 * CHUNK,
          "%s: first uploader sent 2 chunks (offset %s)" % (label, first.offset))
    url = first.url
    check(bool(url) and UPLOAD_URL_RE.search(url), "%s: first uploader has a URL" % label, url)
    del first  # the first client is gone; only its URL survives

    status, headers = head(url)
    check(status in (200, 204) and headers.get("Upload-Offset") == str(2 * CHUNK),
          "%s: HEAD -> Upload-Offset %d" % (label, 2 * CHUNK),
          "got %s, Upload-Offset %r" % (status, headers.get("Upload-Offset")))
    status, b = info(url)
    check(status == 200 and b.get("state") == "uploading" and b.get("offset") == 2 * CHUNK,
          "%s: info while interrupted: state uploading, offset %d" % (label, 2 * CHUNK),
          "got %s %s" % (status, b))

    # A NEW client and uploader, given only the URL: tuspy HEADs it in the
    # constructor (get_offset) and starts from there.
    second = new_client().uploader(FILE, chunk_size=CHUNK, url=url,
                                   metadata={"filename": local["name"] + ".b"})
    initial = second.offset
    check(initial > 0 and initial == 2 * CHUNK,
          "%s: resumed uploader's initial offset %s > 0 (== %d)" % (label, initial, 2 * CHUNK))
    check(second.get_offset() == initial, "%s: get_offset() agrees (%d)" % (label, initial))
    patches = []
    orig = second.upload_chunk

    def counting_upload_chunk():
        patches.append(second.offset)
        orig()

    second.upload_chunk = counting_upload_chunk
    second.upload()
    ok("%s: resumed uploader.upload() returned" % label)
    check(second.url == url, "%s: resumed the same URL" % label, "%s vs %s" % (second.url, url))
    check(patches and patches[0] == initial,
          "%s: first resumed PATCH at Upload-Offset %d" % (label, initial), "got %s" % patches)
    check(len(patches) == -(-(local["size"] - initial) // CHUNK),
          "%s: only the remaining bytes were sent" % label, "PATCH offsets %s" % patches)
    verify_complete(label, url, local)


def scenario_c(local):
    label = "C upload_checksum=True"
    uploader = new_client().uploader(FILE, chunk_size=CHUNK, upload_checksum=True,
                                     metadata={"filename": local["name"] + ".c"})
    sent = []
    orig = uploader.upload_chunk

    def recording_upload_chunk():
        orig()
        sent.append(uploader.request._request_headers.get("upload-checksum"))

    uploader.upload_chunk = recording_upload_chunk
    uploader.upload()
    ok("%s: uploader.upload() returned" % label)
    check(sent and all(s and s.startswith("sha1 ") for s in sent),
          "%s: every PATCH carried Upload-Checksum: sha1 <base64>" % label, "got %s" % sent)
    verify_complete(label, uploader.url, local)


def scenario_d(local):
    label = "D AsyncUploader"
    uploader = new_client().async_uploader(FILE, chunk_size=CHUNK,
                                           metadata={"filename": local["name"] + ".d"})
    asyncio.run(uploader.upload())
    ok("%s: await uploader.upload() returned (offset %s)" % (label, uploader.offset))
    verify_complete(label, uploader.url, local)


def on_timeout(signum, frame):
    not_ok("timed out after %d s" % TIMEOUT_S)
    sys.stdout.flush()
    os._exit(1)


def main():
    if not BASE or not FILE:
        sys.stderr.write("usage: IMGAPI_URL=http://127.0.0.1:PORT FILE=/path/to/file "
                         "python tuspy_upload.py\n")
        return 2
    signal.signal(signal.SIGALRM, on_timeout)
    signal.alarm(TIMEOUT_S)

    with open(FILE, "rb") as f:
        data = f.read()
    local = {
        "size": len(data),
        "sha1": hashlib.sha1(data).hexdigest(),
        "md5": base64.b64encode(hashlib.md5(data).digest()).decode("ascii"),
        "name": os.path.basename(FILE),
    }
    if local["size"] <= 2 * CHUNK:
        sys.stderr.write("FILE must be larger than 2 MiB (got %d bytes)\n" % local["size"])
        return 2
    tuspy_version = _dist_version("tuspy") if _dist_version else "?"
    _line("# tuspy %s, python %s" % (tuspy_version, sys.version.split()[0]))
    _line("# %s/uploads, file %d bytes, sha1 %s" % (BASE, local["size"], local["sha1"]))

    for name, fn in (("A", scenario_a), ("B", scenario_b), ("C", scenario_c), ("D", scenario_d)):
        try:
            fn(local)
        except Exception as err:  # noqa: BLE001 - report and go on
            not_ok("scenario %s failed: %s" % (name, describe(err)))
            traceback.print_exc(file=sys.stderr)

    _line("# checks: %d ok, %d not ok" % (_count - _failures, _failures))
    return 0 if _failures == 0 and _count > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
