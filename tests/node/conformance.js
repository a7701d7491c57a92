#!/usr/bin/env node
/*
 * Drives a running imgapi server with Triton's real Node.js IMGAPI client
 * (sdc-clients, lib/imgapi.js) in DC mode (no auth), and checks that what
 * the client gets back is what Triton consumers rely on.
 *
 * Usage: IMGAPI_URL=http://127.0.0.1:PORT [IMGAPI_SOURCE_URL=http://127.0.0.1:PORT2] node conformance.js
 * (with IMGAPI_SOURCE_URL, adminImportRemoteImageAndWait imports from it)
 *
 * Prints one line per check ("ok N - ..." / "not ok N - ..."). Stops at the
 * first failing check. Exit code 0 only if every check passed.
 */
'use strict';

var assert = require('assert');
var crypto = require('crypto');
var fs = require('fs');
var os = require('os');
var path = require('path');

var IMGAPI = require('sdc-clients/lib/imgapi');

var LUKE = '91ba0e64-2547-11e2-a972-df579e5fddb3';
var VADER = '86055c40-2547-11e2-8a6b-4bb37edc84ba';
var UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
var ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
var FILE_SIZE = 3 * 1024 * 1024 + 12345; // ~3 MiB, not a multiple of 64 KiB
var TIMEOUT_MS = 60 * 1000;

var url = process.env.IMGAPI_URL;
var tmpDir = null;
var client = null;
var checkNum = 0;
var current = '(startup)';

function cleanup() {
    if (tmpDir) {
        try {
            fs.rmSync(tmpDir, {recursive: true, force: true});
        } catch (e) {
            // best effort
        }
        tmpDir = null;
    }
}

function describeErr(err) {
    if (!err) {
        return String(err);
    }
    var parts = [];
    parts.push((err.name || 'Error') + ': ' + err.message);
    if (err.statusCode !== undefined) {
        parts.push('statusCode=' + err.statusCode);
    }
    if (err.restCode !== undefined) {
        parts.push('restCode=' + err.restCode);
    }
    if (err.code !== undefined) {
        parts.push('code=' + err.code);
    }
    if (err.body !== undefined) {
        try {
            parts.push('body=' + JSON.stringify(err.body));
        } catch (e) {
            // ignore
        }
    }
    return parts.join(' ');
}

function fail(what, err) {
    console.log('not ok ' + (checkNum + 1) + ' - ' + what);
    console.log('# ' + describeErr(err).split('\n').join('\n# '));
    if (err && err.stack) {
        console.log('# ' + err.stack.split('\n').join('\n# '));
    }
    console.log('# FAILED: ' + what);
    cleanup();
    process.exit(1);
}

// The client throws from inside stream handlers in some cases (e.g. a file
// download without Content-MD5): turn that into a failed check.
process.on('uncaughtException', function (err) {
    fail(current + ' [uncaught exception]', err);
});
process.on('unhandledRejection', function (err) {
    fail(current + ' [unhandled rejection]', err);
});

var timer = setTimeout(function () {
    fail(current + ' [overall timeout of ' + (TIMEOUT_MS / 1000) +
        ' s exceeded]', new Error('timeout'));
}, TIMEOUT_MS);
timer.unref();

function pass(what) {
    checkNum++;
    console.log('ok ' + checkNum + ' - ' + what);
}

/*
 * Run one check: `fn` is an async function that throws on failure.
 */
async function check(what, fn) {
    current = what;
    try {
        await fn();
    } catch (err) {
        fail(what, err);
    }
    pass(what);
}

/*
 * Call a client method with node-style callback and resolve with the
 * callback's arguments after `err` (as an array).
 */
function call(method) {
    var args = Array.prototype.slice.call(arguments, 1);
    return new Promise(function (resolve, reject) {
        args.push(function (err) {
            if (err) {
                reject(err);
            } else {
                resolve(Array.prototype.slice.call(arguments, 1));
            }
        });
        client[method].apply(client, args);
    });
}

/*
 * Call a client method that is expected to fail; resolve with the error.
 */
function callErr(method) {
    var args = Array.prototype.slice.call(arguments, 1);
    return new Promise(function (resolve, reject) {
        args.push(function (err, data) {
            if (err) {
                resolve(err);
            } else {
                reject(new Error(method + ' unexpectedly succeeded: ' +
                    JSON.stringify(data)));
            }
        });
        client[method].apply(client, args);
    });
}

function sha1File(p) {
    return crypto.createHash('sha1').update(fs.readFileSync(p)).digest('hex');
}

function uuids(images) {
    assert.ok(Array.isArray(images), 'listImages result is not an array');
    return images.map(function (i) { return i.uuid; });
}

function assertNotFound(err) {
    assert.strictEqual(err.statusCode, 404, describeErr(err));
    assert.strictEqual(err.restCode, 'ResourceNotFound', describeErr(err));
}

function hasAcl(img, acct) {
    return Array.isArray(img.acl) && img.acl.indexOf(acct) !== -1;
}

async function main() {
    if (!url) {
        fail('IMGAPI_URL is set', new Error('IMGAPI_URL is not set'));
    }
    client = new IMGAPI({url: url, retry: false});

    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgapi-conformance-'));
    var filePath = path.join(tmpDir, 'file.bin');
    var data = crypto.randomBytes(FILE_SIZE);
    fs.writeFileSync(filePath, data);
    var fileSha1 = crypto.createHash('sha1').update(data).digest('hex');

    var uuid;
    var img;

    // 1. Ping.
    await check('ping returns pong', async function () {
        var r = await call('ping');
        assert.strictEqual(r[0].ping, 'pong', JSON.stringify(r[0]));
    });

    // 2. CreateImage.
    await check('createImage as LUKE gives an unactivated image',
            async function () {
        var r = await call('createImage', {
            name: 'conformance-' + process.pid,
            version: '1.0.0',
            os: 'smartos',
            type: 'zone-dataset',
            owner: LUKE,
            public: false
        }, LUKE);
        img = r[0];
        assert.ok(UUID_RE.test(img.uuid), 'uuid: ' + JSON.stringify(img));
        assert.strictEqual(img.state, 'unactivated', JSON.stringify(img));
        assert.strictEqual(img.owner, LUKE, JSON.stringify(img));
        assert.strictEqual(img.public, false, JSON.stringify(img));
        assert.strictEqual(img.version, '1.0.0', JSON.stringify(img));
        uuid = img.uuid;
    });

    // 3. AddImageFile from a path (Content-Length).
    await check('addImageFile (path, ' + FILE_SIZE +
            ' bytes, sha1 given) records sha1 and size', async function () {
        var r = await call('addImageFile', {
            uuid: uuid,
            file: filePath,
            compression: 'none',
            sha1: fileSha1
        }, LUKE);
        img = r[0];
        assert.ok(Array.isArray(img.files) && img.files.length === 1,
            'files: ' + JSON.stringify(img));
        assert.strictEqual(img.files[0].sha1, fileSha1);
        assert.strictEqual(img.files[0].size, FILE_SIZE);
        assert.strictEqual(img.files[0].compression, 'none');
        assert.strictEqual(img.state, 'unactivated');
    });

    // 3b. AddImageFile from a stream without size (chunked) on a 2nd image.
    var uuid2;
    await check('addImageFile (stream without size, chunked) on a second ' +
            'image records sha1 and size', async function () {
        var r = await call('createImage', {
            name: 'conformance-chunked-' + process.pid,
            version: '1.0.0',
            os: 'smartos',
            type: 'zone-dataset',
            owner: LUKE,
            public: false
        }, LUKE);
        uuid2 = r[0].uuid;
        assert.ok(UUID_RE.test(uuid2), JSON.stringify(r[0]));
        var stream = fs.createReadStream(filePath);
        stream.pause();
        r = await call('addImageFile', {
            uuid: uuid2,
            file: stream,
            compression: 'none'
        }, LUKE);
        var img2 = r[0];
        var res = r[1];
        assert.ok(res && res.req, 'no response object');
        assert.strictEqual(res.req.getHeader('content-length'), undefined,
            'request unexpectedly carried Content-Length');
        assert.strictEqual(res.req.chunkedEncoding, true,
            'request was not sent with Transfer-Encoding: chunked');
        assert.ok(Array.isArray(img2.files) && img2.files.length === 1,
            'files: ' + JSON.stringify(img2));
        assert.strictEqual(img2.files[0].sha1, fileSha1);
        assert.strictEqual(img2.files[0].size, FILE_SIZE);
    });

    // 4. ActivateImage.
    await check('activateImage gives state active with published_at',
            async function () {
        var r = await call('activateImage', uuid, LUKE);
        img = r[0];
        assert.strictEqual(img.uuid, uuid);
        assert.strictEqual(img.state, 'active', JSON.stringify(img));
        assert.strictEqual(img.disabled, false, JSON.stringify(img));
        assert.ok(typeof (img.published_at) === 'string' &&
            ISO_RE.test(img.published_at),
            'published_at: ' + JSON.stringify(img.published_at));
    });

    // 5. GetImageFile (the client verifies Content-MD5 itself).
    await check('getImageFile downloads the same bytes (Content-MD5 ok)',
            async function () {
        var out = path.join(tmpDir, 'download.bin');
        var r = await call('getImageFile', uuid, out, LUKE);
        var res = r[0];
        assert.ok(res.headers['content-md5'], 'no content-md5 header');
        assert.strictEqual(fs.statSync(out).size, FILE_SIZE);
        assert.strictEqual(sha1File(out), fileSha1);
    });

    // 6. Visibility of a private image.
    await check('listImages({account: LUKE}) includes the private image',
            async function () {
        var r = await call('listImages', {account: LUKE});
        assert.ok(uuids(r[0]).indexOf(uuid) !== -1,
            'not listed: ' + JSON.stringify(uuids(r[0])));
    });
    await check('listImages({account: VADER}) excludes the private image',
            async function () {
        var r = await call('listImages', {account: VADER});
        assert.ok(uuids(r[0]).indexOf(uuid) === -1, 'VADER sees it');
    });
    await check('getImage(uuid, VADER) fails 404 ResourceNotFound',
            async function () {
        var err = await callErr('getImage', uuid, VADER);
        assertNotFound(err);
    });
    await check('getImage(uuid, LUKE) returns the image', async function () {
        var r = await call('getImage', uuid, LUKE);
        assert.strictEqual(r[0].uuid, uuid);
        assert.strictEqual(r[0].state, 'active');
    });

    // 7. ACL.
    await check('addImageAcl(uuid, [VADER], LUKE) adds VADER to acl',
            async function () {
        var r = await call('addImageAcl', uuid, [VADER], LUKE);
        assert.ok(hasAcl(r[0], VADER), 'acl: ' + JSON.stringify(r[0].acl));
    });
    await check('listImages({account: VADER}) includes the image via acl',
            async function () {
        var r = await call('listImages', {account: VADER});
        assert.ok(uuids(r[0]).indexOf(uuid) !== -1, 'VADER does not see it');
        r = await call('getImage', uuid, VADER);
        assert.strictEqual(r[0].uuid, uuid);
    });
    await check('removeImageAcl(uuid, [VADER], LUKE) removes VADER from acl',
            async function () {
        var r = await call('removeImageAcl', uuid, [VADER], LUKE);
        assert.ok(!hasAcl(r[0], VADER), 'acl: ' + JSON.stringify(r[0].acl));
    });
    await check('VADER can no longer see the image', async function () {
        var r = await call('listImages', {account: VADER});
        assert.ok(uuids(r[0]).indexOf(uuid) === -1, 'VADER still sees it');
        var err = await callErr('getImage', uuid, VADER);
        assertNotFound(err);
    });

    // 7b. CloneImage (sdc-clients cloneImage): VADER's own copy of the
    // image LUKE shares with it, refusals first.
    await check('cloneImage refusals: unknown account 404, owner and ' +
            'unshared 422 ImageNotShared, no account 422', async function () {
        var err = await callErr('cloneImage', uuid,
            'd3c2a1b0-0000-4000-8000-000000000000');
        assertNotFound(err);
        err = await callErr('cloneImage', uuid, LUKE);
        assert.strictEqual(err.statusCode, 422, describeErr(err));
        assert.strictEqual(err.restCode, 'ImageNotShared', describeErr(err));
        err = await callErr('cloneImage', uuid, VADER);
        // Not in the acl (any more): VADER cannot see the private image.
        assertNotFound(err);
        var raw = new IMGAPI({url: url, retry: false});
        err = await new Promise(function (resolve) {
            raw.client.post('/images/' + uuid + '/clone', function (e) {
                resolve(e);
            });
        });
        raw.close();
        assert.strictEqual(err.statusCode, 422, describeErr(err));
        assert.strictEqual(err.body.code, 'InvalidParameter', describeErr(err));
    });
    await check('cloneImage(uuid, VADER) once shared gives VADER its own ' +
            'active copy with the same file', async function () {
        await call('addImageAcl', uuid, [VADER], LUKE);
        var r = await call('cloneImage', uuid, VADER);
        var c = r[0];
        assert.ok(UUID_RE.test(c.uuid) && c.uuid !== uuid, JSON.stringify(c));
        assert.strictEqual(c.owner, VADER, JSON.stringify(c));
        assert.strictEqual(c.state, 'active', JSON.stringify(c));
        assert.ok(!c.acl || c.acl.length === 0, JSON.stringify(c));
        assert.strictEqual(c.name, img.name, JSON.stringify(c));
        assert.strictEqual(c.files[0].sha1, fileSha1);
        assert.strictEqual(c.files[0].size, FILE_SIZE);
        var out = path.join(tmpDir, 'clone.bin');
        await call('getImageFile', c.uuid, out, VADER);
        assert.strictEqual(sha1File(out), fileSha1);
        var err = await callErr('cloneImage', c.uuid, VADER);
        assert.strictEqual(err.restCode, 'ImageNotShared', describeErr(err));
        await call('deleteImage', c.uuid, VADER);
        await call('removeImageAcl', uuid, [VADER], LUKE);
    });

    // 8. Update, disable, enable.
    await check('updateImage(uuid, {description}) sets description',
            async function () {
        var r = await call('updateImage', uuid, {description: 'x'}, LUKE);
        assert.strictEqual(r[0].description, 'x', JSON.stringify(r[0]));
        r = await call('getImage', uuid, LUKE);
        assert.strictEqual(r[0].description, 'x', JSON.stringify(r[0]));
    });
    await check('disableImage gives state disabled', async function () {
        var r = await call('disableImage', uuid, LUKE);
        assert.strictEqual(r[0].state, 'disabled', JSON.stringify(r[0]));
        assert.strictEqual(r[0].disabled, true, JSON.stringify(r[0]));
    });
    await check('enableImage gives state active', async function () {
        var r = await call('enableImage', uuid, LUKE);
        assert.strictEqual(r[0].state, 'active', JSON.stringify(r[0]));
        assert.strictEqual(r[0].disabled, false, JSON.stringify(r[0]));
    });

    // 9. Error path: a non-owner updating a public image.
    await check('updateImage(uuid, {public: true}, LUKE) makes it public',
            async function () {
        var r = await call('updateImage', uuid, {public: true}, LUKE);
        assert.strictEqual(r[0].public, true, JSON.stringify(r[0]));
        r = await call('listImages', {account: VADER});
        assert.ok(uuids(r[0]).indexOf(uuid) !== -1,
            'VADER does not see the public image');
    });
    await check('updateImage by VADER fails 422 NotImageOwner',
            async function () {
        var err = await callErr('updateImage', uuid, {description: 'evil'},
            VADER);
        assert.strictEqual(err.statusCode, 422, describeErr(err));
        assert.strictEqual(err.restCode, 'NotImageOwner', describeErr(err));
        var r = await call('getImage', uuid, LUKE);
        assert.strictEqual(r[0].description, 'x', 'description changed');
    });

    // 10. Delete.
    await check('deleteImage then getImage fails 404 ResourceNotFound',
            async function () {
        await call('deleteImage', uuid, LUKE);
        var err = await callErr('getImage', uuid, LUKE);
        assertNotFound(err);
        err = await callErr('getImage', uuid);
        assertNotFound(err);
        // The raw (streaming) client reports the IMGAPI code in body.code.
        err = await callErr('getImageFile', uuid,
            path.join(tmpDir, 'deleted.bin'), LUKE);
        assert.strictEqual(err.statusCode, 404, describeErr(err));
        assert.strictEqual(err.body && err.body.code, 'ResourceNotFound',
            describeErr(err));
        // Clean up the chunked-upload image too.
        await call('deleteImage', uuid2, LUKE);
        err = await callErr('getImage', uuid2);
        assertNotFound(err);
    });

    // 11. AdminImportRemoteImage from a second server (IMGAPI_SOURCE_URL),
    // polled through the workflow-api header as Triton's tools do.
    var source = process.env.IMGAPI_SOURCE_URL;
    if (source) {
        await check('adminImportRemoteImageAndWait imports an image and ' +
                'its origin from another server', async function () {
            var src = new IMGAPI({url: source, retry: false});
            function on(method) {
                var args = Array.prototype.slice.call(arguments, 1);
                return new Promise(function (resolve, reject) {
                    args.push(function (err, x) {
                        if (err) {
                            reject(err);
                        } else {
                            resolve(x);
                        }
                    });
                    src[method].apply(src, args);
                });
            }
            var manifest = {version: '1.0.0', os: 'smartos',
                type: 'zone-dataset', owner: VADER, public: true};
            var base = await on('createImage', Object.assign(
                {name: 'import-base'}, manifest));
            await on('addImageFile', {uuid: base.uuid, file: filePath,
                compression: 'none'});
            await on('activateImage', base.uuid);
            var top = await on('createImage', Object.assign(
                {name: 'import-top', origin: base.uuid}, manifest));
            await on('addImageFile', {uuid: top.uuid, file: filePath,
                compression: 'none'});
            await on('activateImage', top.uuid);

            var r = await call('adminImportRemoteImageAndWait', top.uuid,
                source, {});
            var got = r[0];
            assert.strictEqual(got.uuid, top.uuid, JSON.stringify(got));
            assert.strictEqual(got.state, 'active', JSON.stringify(got));
            assert.strictEqual(got.origin, base.uuid, JSON.stringify(got));
            assert.strictEqual(got.files[0].sha1, fileSha1);
            r = await call('getImage', base.uuid);
            assert.strictEqual(r[0].state, 'active', JSON.stringify(r[0]));
            var err = await callErr('adminImportRemoteImage', top.uuid,
                source, {});
            assert.strictEqual(err.statusCode, 409, describeErr(err));
            src.close();
        });
    }

    client.close();
    cleanup();
    console.log('# sdc-clients conformance: all ' + checkNum +
        ' checks passed');
    process.exit(0);
}

main().catch(function (err) {
    fail(current, err);
});
