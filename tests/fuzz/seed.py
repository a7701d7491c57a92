"""Seed a fresh server so the fuzzer's requests reach real data.

The image uuids are the examples of docs/openapi.json's `{uuid}` path
parameter: an active public image with a file and an icon (also a dataset,
`fuzz-1.0.0.zfs`) and an unactivated one. One unfinished upload makes
`GET /uploads` (and the links from it) lead somewhere.
Usage: seed.py BASE_URL
"""

import json
import sys
import urllib.request

BASE = sys.argv[1].rstrip("/")
ACTIVE = "f0f0f0f0-0000-4000-8000-000000000001"
UNACTIVATED = "f0f0f0f0-0000-4000-8000-000000000002"
SDC = "ba28f844-8cb4-f141-882d-46d6251e6a9f"
VADER = "86055c40-2547-11e2-8a6b-4bb37edc84ba"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(100)


def call(method, path, body=None, headers=None, want=(200,)):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    h = dict(headers or {})
    if isinstance(body, dict):
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, text = r.status, r.read()
            loc = r.headers.get("Location")
    except urllib.error.HTTPError as e:
        status, text, loc = e.code, e.read(), None
    if status not in want:
        sys.exit(f"seed: {method} {path}: {status} {text[:500]!r}")
    return loc


def manifest(uuid, owner, name, public):
    return {"v": 2, "uuid": uuid, "owner": owner, "name": name, "version": "1.0.0",
            "type": "zone-dataset", "os": "smartos", "public": public}


call("POST", f"/images/{ACTIVE}?action=import", manifest(ACTIVE, SDC, "fuzz", True))
call("PUT", f"/images/{ACTIVE}/file?compression=none", bytes(range(256)) * 16,
     {"Content-Type": "application/octet-stream"})
call("POST", f"/images/{ACTIVE}?action=activate")
call("PUT", f"/images/{ACTIVE}/icon", PNG, {"Content-Type": "image/png"})
call("POST", f"/images/{UNACTIVATED}?action=import",
     manifest(UNACTIVATED, VADER, "fuzz-unactivated", False))
loc = call("POST", "/uploads", b"", {"Tus-Resumable": "1.0.0", "Upload-Length": "1000"},
           want=(201,))
call("PATCH", loc, bytes(100), {"Tus-Resumable": "1.0.0", "Upload-Offset": "0",
                                "Content-Type": "application/offset+octet-stream"},
     want=(204,))
print(f"seeded images {ACTIVE} (active), {UNACTIVATED} (unactivated) and upload {loc}")
