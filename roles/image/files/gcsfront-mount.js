// The mount-serving nginx's content handler (njs): read a whole object through the mount before nginx answers.
//
// nginx's static module sends the status line and headers, then reads the body from the file. Through gcsfuse
// that read is where GCS is asked, so when GCS fails (down, refusing, 503s, a black hole) after the headers
// are out, the client gets a 200 with a body cut short. Reading the object first (into gcsfuse's file cache)
// turns that into a 503 before any byte is sent, and the static module then serves what was just read.
//
// Not read first: HEAD and conditional requests (the front's revalidations, answered 304 from a stat when
// unchanged), directories and names that do not open (the static module answers them: index, 301, 404).
// This handler blocks its worker for the read: a worker of this nginx is allowed to.
const fs = require('fs');

const CHUNK = 1048576;
// Open errors that mean "no such object": the static module answers them (404).
const NOT_THERE = ['ENOENT', 'ENOTDIR', 'ENAMETOOLONG'];

function unavailable(r, doing, e) {
    r.error('gcsfront: ' + doing + ' ' + r.uri + ' through the mount failed: ' + e.message);
    r.headersOut['Retry-After'] = '5';
    r.return(503);
}

function serve(r) {
    if (r.method !== 'GET' || r.headersIn['If-None-Match'] || r.headersIn['If-Modified-Since']) {
        r.internalRedirect('@object');
        return;
    }
    let fd;
    try {
        fd = fs.openSync(r.variables.request_filename);
    } catch (e) {
        if (NOT_THERE.indexOf(e.code) >= 0) {
            r.internalRedirect('@object');  // the static module's 404 (or a directory's index)
        } else {
            // EACCES: no live mount (the entrypoint makes the directory under it unreadable), or GCS refused
            // gcsfuse's credentials; EIO, ENOTCONN: GCS or gcsfuse failed.
            unavailable(r, 'opening', e);
        }
        return;
    }
    try {
        // Regular files only: a symlink object may point at a device (the static module refuses symlinks).
        if (fs.fstatSync(fd).isFile()) {
            const buffer = Buffer.alloc(CHUNK);
            while (fs.readSync(fd, buffer, 0, CHUNK, null) > 0) {
                // read on: only whether every byte arrives matters
            }
        }
    } catch (e) {
        fs.closeSync(fd);
        unavailable(r, 'reading', e);
        return;
    }
    fs.closeSync(fd);
    r.internalRedirect('@object');
}

export default {serve};
