#!/usr/bin/env node
/*
 * Drives imgapi's tus `concatenation` extension with the real, unchanged
 * tus-js-client (pinned in tests/tus/package-lock.json) and its
 * `parallelUploads` option: the file is cut into N partial uploads sent at
 * once (`Upload-Concat: partial`), then one final upload is created from
 * them (`Upload-Concat: final;...`).
 *
 * Usage: IMGAPI_URL=http://127.0.0.1:PORT FILE=/path/to/file node tus_parallel.js
 *
 * For N = 2, 3 and 4: the upload succeeds; the final's HEAD answers
 * `Upload-Concat: final;...` listing N partials, Upload-Offset ==
 * Upload-Length == the file size; its /info is complete with the whole
 * file's sha1 and md5; the partials are gone (404).
 *
 * Prints "ok N - ..." / "not ok N - ..." per check; exit code 0 only if
 * every check passed (and 1 after 60 s at the latest).
 */
'use strict';

const crypto = require('crypto');
const fs = require('fs');

const tus = require('tus-js-client');

const BASE = (process.env.IMGAPI_URL || '').replace(/\/+$/, '');
const FILE = process.env.FILE;
let n = 0;
let failures = 0;

function check(cond, msg, detail) {
  n++;
  if (cond) {
    console.log(`ok ${n} - ${msg}`);
  } else {
    failures++;
    console.log(`not ok ${n} - ${msg}${detail === undefined ? '' : ` (${detail})`}`);
  }
  return !!cond;
}

function upload(buf, parallel) {
  return new Promise((resolve, reject) => {
    const up = new tus.Upload(buf, {
      endpoint: `${BASE}/uploads`,
      chunkSize: 256 * 1024,
      parallelUploads: parallel,
      retryDelays: [0, 200, 500],
      metadata: { filename: `parallel-${parallel}.bin` },
      onSuccess: () => resolve(up),
      onError: reject,
    });
    up.start();
  });
}

async function main() {
  const buf = fs.readFileSync(FILE);
  const sha1 = crypto.createHash('sha1').update(buf).digest('hex');
  const md5 = crypto.createHash('md5').update(buf).digest('base64');
  for (const parallel of [2, 3, 4]) {
    const label = `parallelUploads: ${parallel}`;
    let up;
    try {
      up = await upload(buf, parallel);
    } catch (e) {
      check(false, `${label}: upload succeeds`, String(e));
      continue;
    }
    check(true, `${label}: upload succeeds`);
    const h = await fetch(up.url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
    const concat = h.headers.get('upload-concat') || '';
    check(h.status === 200, `${label}: HEAD final -> 200`, `got ${h.status}`);
    const listed = concat.startsWith('final;') ? concat.slice(6).trim().split(/\s+/) : [];
    check(listed.length === parallel, `${label}: Upload-Concat lists ${parallel} partials`, concat);
    check(
      h.headers.get('upload-offset') === String(buf.length) &&
        h.headers.get('upload-length') === String(buf.length),
      `${label}: Upload-Offset == Upload-Length == ${buf.length}`,
      `${h.headers.get('upload-offset')} / ${h.headers.get('upload-length')}`,
    );
    const r = await fetch(`${up.url}/info`);
    const info = await r.json();
    check(info.state === 'complete', `${label}: info.state complete`, JSON.stringify(info));
    check(info.sha1 === sha1, `${label}: info.sha1 is the file's`, info.sha1);
    check(info.content_md5 === md5, `${label}: info.content_md5 is the file's`, info.content_md5);
    for (const p of listed) {
      const g = await fetch(`${BASE}${p}/info`);
      check(g.status === 404, `${label}: partial ${p} is gone once the final is complete`, `got ${g.status}`);
    }
  }
}

setTimeout(() => {
  console.log(`not ok ${n + 1} - timed out`);
  process.exit(1);
}, 60 * 1000).unref();

main().then(
  () => process.exit(failures === 0 ? 0 : 1),
  (e) => {
    console.log(`not ok ${n + 1} - ${e && e.stack}`);
    process.exit(1);
  },
);
