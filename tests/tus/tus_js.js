#!/usr/bin/env node
/*
 * Drives the imgapi tus 1.0.0 endpoint (/uploads) with the real, unchanged
 * tus-js-client (the version pinned in tests/tus/package-lock.json).
 *
 * Usage: IMGAPI_URL=http://127.0.0.1:PORT FILE=/path/to/file node tus_js.js
 *
 * FILE should be a few MiB (the Rust test writes ~5 MiB): the scenarios
 * upload it in 1 MiB chunks and interrupt some uploads after two chunks.
 *
 * Scenarios:
 *   A  plain chunked upload from an fs.ReadStream
 *   B  upload aborted after 2 chunks (upload.abort()), resumed by a NEW
 *      tus.Upload given `uploadUrl`
 *   C  creation-with-upload (uploadDataDuringCreation) from a Buffer
 *   D  upload aborted in the middle of its 3rd chunk (connection dropped),
 *      resumed by a NEW tus.Upload via findPreviousUploads() /
 *      resumeFromPreviousUpload() with tus-js-client's FileUrlStorage
 *   E  termination: upload.abort(true) sends DELETE; the URL is then gone
 *   F  overridePatchMethod: chunks sent as POST + X-HTTP-Method-Override
 *
 * Prints one line per check ("ok N - ..." / "not ok N - ..."). A failing
 * check does not stop the other scenarios. Exit code 0 only if every check
 * passed; 1 otherwise (and after 60 s at the latest).
 */
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const tus = require('tus-js-client');

const MiB = 1024 * 1024;
const CHUNK = MiB;
const TIMEOUT_MS = 60 * 1000;
const RETRY_DELAYS = [0, 200, 500];

const BASE = (process.env.IMGAPI_URL || '').replace(/\/+$/, '');
const FILE = process.env.FILE;

let checkNum = 0;
let failures = 0;
let tmpDir = null;

function cleanup() {
  if (tmpDir) {
    try {
      fs.rmSync(tmpDir, { recursive: true, force: true });
    } catch (e) {
      // best effort
    }
    tmpDir = null;
  }
}

function finish(code) {
  cleanup();
  process.exit(code);
}

function pass(msg) {
  checkNum++;
  console.log(`ok ${checkNum} - ${msg}`);
}

function fail(msg) {
  checkNum++;
  failures++;
  console.log(`not ok ${checkNum} - ${msg}`);
}

/** One check: prints ok/not ok; returns the condition. */
function check(cond, msg, detail) {
  if (cond) {
    pass(msg);
  } else {
    fail(detail === undefined ? msg : `${msg} (${detail})`);
  }
  return !!cond;
}

function describeErr(err) {
  if (!err) return String(err);
  let s = `${err.name || 'Error'}: ${err.message}`;
  // tus.DetailedError carries the request and the response.
  if (err.originalResponse) {
    try {
      s += ` [response ${err.originalResponse.getStatus()}: ${err.originalResponse.getBody()}]`;
    } catch (e) {
      // ignore
    }
  }
  return s;
}

function sha1Hex(buf) {
  return crypto.createHash('sha1').update(buf).digest('hex');
}

function md5B64(buf) {
  return crypto.createHash('md5').update(buf).digest('base64');
}

const UPLOAD_URL_RE = /\/uploads\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** HEAD an upload URL as a tus client would. */
async function head(url) {
  const res = await fetch(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
  return {
    status: res.status,
    offset: res.headers.get('upload-offset'),
    length: res.headers.get('upload-length'),
    cacheControl: res.headers.get('cache-control'),
  };
}

/** GET {url}/info (imgapi's JSON view of an upload session). */
async function info(url) {
  const res = await fetch(`${url}/info`);
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch (e) {
    body = text;
  }
  return { status: res.status, body };
}

/** Checks that the server holds the whole file for `url`. */
async function verifyComplete(label, url, local) {
  const r = await info(url);
  if (!check(r.status === 200, `${label}: GET info -> 200`, `got ${r.status}: ${JSON.stringify(r.body)}`)) {
    return;
  }
  const b = r.body || {};
  check(b.state === 'complete', `${label}: info.state is "complete"`, `got ${JSON.stringify(b.state)}`);
  check(
    b.offset === local.size,
    `${label}: info.offset == ${local.size}`,
    `got ${JSON.stringify(b.offset)}`,
  );
  check(
    b.length === local.size,
    `${label}: info.length == ${local.size}`,
    `got ${JSON.stringify(b.length)}`,
  );
  check(b.sha1 === local.sha1, `${label}: info.sha1 == local sha1 ${local.sha1}`, `got ${JSON.stringify(b.sha1)}`);
  check(
    b.content_md5 === local.md5,
    `${label}: info.content_md5 == local md5 ${local.md5}`,
    `got ${JSON.stringify(b.content_md5)}`,
  );
}

/** Common options for every tus.Upload here. */
function baseOptions(extra) {
  return {
    endpoint: `${BASE}/uploads`,
    chunkSize: CHUNK,
    retryDelays: RETRY_DELAYS,
    ...extra,
  };
}

/**
 * Runs a tus.Upload to completion. `hooks` may add onChunkComplete /
 * onProgress / onBeforeRequest / onAfterResponse. Resolves with the upload,
 * rejects with the client's error.
 */
function runToCompletion(input, options) {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(input, {
      ...options,
      onSuccess: () => resolve(upload),
      onError: (err) => reject(err),
    });
    upload.start();
  });
}

/** A recorder of what tus-js-client actually sends. */
function requestLog() {
  const log = [];
  return {
    log,
    onBeforeRequest(req) {
      log.push({
        method: req.getMethod(),
        url: req.getURL(),
        offset: req.getHeader('Upload-Offset'),
        status: null,
        resOffset: null,
      });
    },
    onAfterResponse(req, res) {
      for (let i = log.length - 1; i >= 0; i--) {
        if (log[i].status === null && log[i].method === req.getMethod()) {
          log[i].status = res.getStatus();
          log[i].resOffset = res.getHeader('Upload-Offset');
          break;
        }
      }
    },
  };
}

function fmtLog(log) {
  return log
    .map((e) => `${e.method}${e.offset !== undefined ? `@${e.offset}` : ''}->${e.status}`)
    .join(' ');
}

async function scenarioA(local) {
  const L = 'A chunked upload';
  const rec = requestLog();
  const chunks = [];
  const upload = await runToCompletion(
    fs.createReadStream(FILE),
    baseOptions({
      uploadSize: local.size,
      metadata: { filename: `${local.name}.a` },
      onChunkComplete: (chunkSize, accepted) => chunks.push([chunkSize, accepted]),
      onBeforeRequest: rec.onBeforeRequest,
      onAfterResponse: rec.onAfterResponse,
    }),
  );
  pass(`${L}: tus-js-client reported success (${fmtLog(rec.log)})`);
  check(UPLOAD_URL_RE.test(upload.url), `${L}: upload URL looks like /uploads/<uuid>`, upload.url);
  check(upload.url.startsWith(BASE), `${L}: upload URL resolves against IMGAPI_URL`, upload.url);
  const expectChunks = Math.ceil(local.size / CHUNK);
  const patches = rec.log.filter((e) => e.method === 'PATCH');
  check(
    patches.length === expectChunks && chunks.length === expectChunks,
    `${L}: sent ${expectChunks} PATCHes of <= 1 MiB`,
    `PATCHes ${patches.length}, chunks ${JSON.stringify(chunks)}`,
  );
  check(
    chunks.every(([sz, acc], i) => sz === Math.min(CHUNK, local.size - i * CHUNK) && acc === Math.min((i + 1) * CHUNK, local.size)),
    `${L}: each PATCH answered with the expected Upload-Offset`,
    JSON.stringify(chunks),
  );
  await verifyComplete(L, upload.url, local);
}

/**
 * Starts an upload and aborts it at the moment `shouldAbort` says so.
 * Resolves with {url, accepted, log} after abort() has resolved.
 */
function startAndAbort(input, options, shouldAbort) {
  return new Promise((resolve, reject) => {
    const rec = requestLog();
    let accepted = 0;
    let aborted = false;
    let upload = null;
    const doAbort = (why) => {
      if (aborted) return;
      aborted = true;
      upload.abort().then(
        () => resolve({ url: upload.url, accepted, why, log: rec.log }),
        (err) => reject(err),
      );
    };
    upload = new tus.Upload(input, {
      ...options,
      onBeforeRequest: rec.onBeforeRequest,
      onAfterResponse: rec.onAfterResponse,
      onChunkComplete: (chunkSize, bytesAccepted) => {
        accepted = bytesAccepted;
        const why = shouldAbort('chunk', bytesAccepted);
        if (why) doAbort(why);
      },
      onProgress: (bytesSent) => {
        const why = shouldAbort('progress', bytesSent);
        if (why) doAbort(why);
      },
      onSuccess: () => {
        if (!aborted) reject(new Error('upload finished before it could be aborted'));
      },
      onError: (err) => {
        if (!aborted) reject(err);
      },
    });
    upload.start();
  });
}

async function scenarioB(local) {
  const L = 'B abort+resume(uploadUrl)';
  const first = await startAndAbort(
    fs.createReadStream(FILE),
    baseOptions({ uploadSize: local.size, metadata: { filename: `${local.name}.b` } }),
    (kind, n) => (kind === 'chunk' && n >= 2 * CHUNK ? 'after 2 chunks' : null),
  );
  check(
    first.accepted === 2 * CHUNK,
    `${L}: first tus.Upload aborted after 2 chunks (${first.accepted} bytes acknowledged)`,
    fmtLog(first.log),
  );
  check(UPLOAD_URL_RE.test(first.url || ''), `${L}: first upload has a URL`, first.url);

  const h = await head(first.url);
  check(h.status === 200 || h.status === 204, `${L}: HEAD after abort -> 200/204`, `got ${h.status}`);
  const serverOffset = Number.parseInt(h.offset, 10);
  check(serverOffset === 2 * CHUNK, `${L}: HEAD Upload-Offset == ${2 * CHUNK}`, `got ${h.offset}`);
  check(h.length === String(local.size), `${L}: HEAD Upload-Length == ${local.size}`, `got ${h.length}`);
  check(/no-store/i.test(h.cacheControl || ''), `${L}: HEAD Cache-Control: no-store`, `got ${h.cacheControl}`);

  const mid = await info(first.url);
  check(
    mid.status === 200 && mid.body.state === 'uploading' && mid.body.offset === 2 * CHUNK,
    `${L}: info while interrupted: state uploading, offset ${2 * CHUNK}`,
    `got ${mid.status} ${JSON.stringify(mid.body)}`,
  );

  const rec = requestLog();
  let firstProgress = null;
  const second = await runToCompletion(
    fs.createReadStream(FILE),
    baseOptions({
      uploadSize: local.size,
      uploadUrl: first.url,
      metadata: { filename: `${local.name}.b` },
      onProgress: (sent) => {
        if (firstProgress === null) firstProgress = sent;
      },
      onBeforeRequest: rec.onBeforeRequest,
      onAfterResponse: rec.onAfterResponse,
    }),
  );
  pass(`${L}: second tus.Upload (uploadUrl) reported success (${fmtLog(rec.log)})`);
  check(second.url === first.url, `${L}: resumed the same URL`, `${second.url} vs ${first.url}`);
  check(!rec.log.some((e) => e.method === 'POST'), `${L}: resume created no new upload (no POST)`, fmtLog(rec.log));
  check(rec.log.length > 0 && rec.log[0].method === 'HEAD', `${L}: resume started with HEAD`, fmtLog(rec.log));
  const firstPatch = rec.log.find((e) => e.method === 'PATCH');
  check(
    firstPatch && Number(firstPatch.offset) === serverOffset && serverOffset > 0,
    `${L}: first resumed PATCH at Upload-Offset ${serverOffset} > 0`,
    fmtLog(rec.log),
  );
  check(
    firstProgress === serverOffset,
    `${L}: first onProgress value == server offset ${serverOffset}`,
    `got ${firstProgress}`,
  );
  check(
    rec.log.filter((e) => e.method === 'PATCH').length === Math.ceil((local.size - serverOffset) / CHUNK),
    `${L}: only the remaining bytes were sent`,
    fmtLog(rec.log),
  );
  await verifyComplete(L, second.url, local);
}

async function scenarioC(local) {
  const L = 'C creation-with-upload';
  const rec = requestLog();
  const chunks = [];
  const upload = await runToCompletion(
    local.buf,
    baseOptions({
      uploadDataDuringCreation: true,
      metadata: { filename: `${local.name}.c` },
      onChunkComplete: (chunkSize, accepted) => chunks.push(accepted),
      onBeforeRequest: rec.onBeforeRequest,
      onAfterResponse: rec.onAfterResponse,
    }),
  );
  pass(`${L}: tus-js-client reported success (${fmtLog(rec.log)})`);
  const post = rec.log[0] || {};
  check(
    post.method === 'POST' && post.status === 201 && Number(post.resOffset) === CHUNK,
    `${L}: POST with the first chunk -> 201, Upload-Offset ${CHUNK}`,
    `got ${post.method} ${post.status} Upload-Offset ${post.resOffset}`,
  );
  check(
    rec.log.filter((e) => e.method === 'PATCH').length === Math.ceil(local.size / CHUNK) - 1,
    `${L}: the rest went in ${Math.ceil(local.size / CHUNK) - 1} PATCHes`,
    fmtLog(rec.log),
  );
  await verifyComplete(L, upload.url, local);
}

async function scenarioD(local) {
  const L = 'D drop mid-chunk+resume(findPreviousUploads)';
  const storagePath = path.join(tmpDir, 'tus-url-storage.json');
  const storage = new tus.FileUrlStorage(storagePath);
  const opts = () =>
    baseOptions({
      uploadSize: local.size,
      metadata: { filename: `${local.name}.d` },
      urlStorage: storage,
      storeFingerprintForResuming: true,
    });
  // Abort as soon as part of the 3rd chunk has gone out (the PATCH is cut
  // mid-body); if no progress event shows up mid-chunk (they are throttled),
  // abort right after the 3rd chunk instead.
  const first = await startAndAbort(fs.createReadStream(FILE), opts(), (kind, n) => {
    if (kind === 'progress' && n > 2 * CHUNK && n < 3 * CHUNK) return 'in the middle of chunk 3';
    if (kind === 'chunk' && n >= 3 * CHUNK) return 'after chunk 3';
    return null;
  });
  check(first.accepted >= 2 * CHUNK, `${L}: first tus.Upload aborted ${first.why}`, fmtLog(first.log));

  // Give the server a moment to notice the dropped connection.
  await new Promise((r) => setTimeout(r, 300));
  const h = await head(first.url);
  const serverOffset = Number.parseInt(h.offset, 10);
  check(
    (h.status === 200 || h.status === 204) && serverOffset >= 2 * CHUNK && serverOffset <= local.size,
    `${L}: HEAD after drop: offset ${h.offset} >= ${2 * CHUNK}`,
    `got ${h.status} offset ${h.offset}`,
  );

  const rec = requestLog();
  const upload = new tus.Upload(fs.createReadStream(FILE), {
    ...opts(),
    onBeforeRequest: rec.onBeforeRequest,
    onAfterResponse: rec.onAfterResponse,
  });
  const previous = await upload.findPreviousUploads();
  check(
    previous.length === 1 && previous[0].uploadUrl === first.url,
    `${L}: findPreviousUploads() found the interrupted upload`,
    JSON.stringify(previous),
  );
  if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0]);
  await new Promise((resolve, reject) => {
    upload.options.onSuccess = resolve;
    upload.options.onError = reject;
    upload.start();
  });
  pass(`${L}: resumed tus.Upload reported success (${fmtLog(rec.log)})`);
  check(upload.url === first.url, `${L}: resumed the same URL`, `${upload.url} vs ${first.url}`);
  check(!rec.log.some((e) => e.method === 'POST'), `${L}: resume created no new upload (no POST)`, fmtLog(rec.log));
  const firstPatch = rec.log.find((e) => e.method === 'PATCH');
  check(
    firstPatch && Number(firstPatch.offset) >= 2 * CHUNK,
    `${L}: first resumed PATCH at Upload-Offset ${firstPatch && firstPatch.offset} >= ${2 * CHUNK}`,
    fmtLog(rec.log),
  );
  await verifyComplete(L, upload.url, local);
}

async function scenarioE(local) {
  const L = 'E termination';
  let terminated = null;
  const first = await new Promise((resolve, reject) => {
    let done = false;
    const upload = new tus.Upload(
      fs.createReadStream(FILE),
      baseOptions({
        uploadSize: local.size,
        metadata: { filename: `${local.name}.e` },
        onChunkComplete: () => {
          if (done) return;
          done = true;
          terminated = upload.abort(true); // DELETE
          resolve(upload);
        },
        onSuccess: () => reject(new Error('upload finished before it could be terminated')),
        onError: (err) => {
          if (!done) reject(err);
        },
      }),
    );
    upload.start();
  });
  try {
    await terminated;
    pass(`${L}: upload.abort(true) (DELETE) succeeded`);
  } catch (err) {
    fail(`${L}: upload.abort(true) (DELETE) failed: ${describeErr(err)}`);
  }
  const h = await head(first.url);
  check(h.status === 404 || h.status === 410, `${L}: HEAD after termination -> 404/410`, `got ${h.status}`);
}

async function scenarioF(local) {
  const L = 'F overridePatchMethod';
  const rec = requestLog();
  const upload = await runToCompletion(
    local.buf,
    baseOptions({
      overridePatchMethod: true, // POST + X-HTTP-Method-Override: PATCH
      metadata: { filename: `${local.name}.f` },
      onBeforeRequest: rec.onBeforeRequest,
      onAfterResponse: rec.onAfterResponse,
    }),
  );
  pass(`${L}: tus-js-client reported success (${fmtLog(rec.log)})`);
  check(
    !rec.log.some((e) => e.method === 'PATCH') && rec.log.filter((e) => e.method === 'POST').length === 1 + Math.ceil(local.size / CHUNK),
    `${L}: every chunk went as POST with X-HTTP-Method-Override: PATCH`,
    fmtLog(rec.log),
  );
  await verifyComplete(L, upload.url, local);
}

async function main() {
  if (!BASE || !FILE) {
    console.error('usage: IMGAPI_URL=http://127.0.0.1:PORT FILE=/path/to/file node tus_js.js');
    finish(2);
  }
  const buf = fs.readFileSync(FILE);
  const local = {
    buf,
    size: buf.length,
    sha1: sha1Hex(buf),
    md5: md5B64(buf),
    name: path.basename(FILE),
  };
  if (local.size <= 3 * CHUNK) {
    console.error(`FILE must be larger than 3 MiB (got ${local.size} bytes)`);
    finish(2);
  }
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgapi-tus-js-'));
  console.log(`# tus-js-client ${require('tus-js-client/package.json').version}, node ${process.version}`);
  console.log(`# ${BASE}/uploads, file ${local.size} bytes, sha1 ${local.sha1}`);

  for (const [name, fn] of [
    ['A', scenarioA],
    ['B', scenarioB],
    ['C', scenarioC],
    ['D', scenarioD],
    ['E', scenarioE],
    ['F', scenarioF],
  ]) {
    try {
      await fn(local);
    } catch (err) {
      fail(`scenario ${name} failed: ${describeErr(err)}`);
    }
  }

  console.log(`# checks: ${checkNum - failures} ok, ${failures} not ok`);
  finish(failures === 0 && checkNum > 0 ? 0 : 1);
}

setTimeout(() => {
  fail(`timed out after ${TIMEOUT_MS / 1000} s`);
  finish(1);
}, TIMEOUT_MS);

main().catch((err) => {
  fail(`unexpected error: ${describeErr(err)}`);
  finish(1);
});
