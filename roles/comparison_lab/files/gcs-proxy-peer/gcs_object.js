// The GCS object a request path names, URL-encoded for the JSON API's media download
// (/storage/v1/b/BUCKET/o/NAME?alt=media), where a slash in NAME must be %2F.
// r.uri is nginx's normalized, decoded path: dot segments are resolved and double slashes merged
// before this runs, so a request cannot step outside the bucket. A path ending in / names its
// index.html, as a static website does. An empty result (no valid UTF-8 name) is answered 400.
function object(r) {
    var name = r.uri.slice(1);
    if (name === '' || name.charAt(name.length - 1) === '/') {
        name += 'index.html';
    }
    try {
        return encodeURIComponent(name);
    } catch (e) {
        return '';
    }
}

export default {object};
