-- The front nginx's view of the bucket catalog (lua-nginx-module): which names exist and the headers GCS would
-- send with each (gcsfront-catalog lists the bucket through the JSON API and writes catalog.tsv; its format is
-- in catalog.go). The front screens each request with it (M.screen: names the bucket lacks never reach the cache
-- or the mount); what the cache lacks is fetched through the front's catalog server (M.route, M.headers), which
-- gives the answer the object's stored headers before the cache keeps it. No FUSE or GCS call per request.
--
-- Hot copies: an object whose bytes the catalog server fetched as the catalog lists them is also stored as a
-- plain file, named after its name and catalog entry (M.mirror_file), and the front serves it as the static
-- module serves a file on local disk, its stored headers from the catalog (M.screen): a proxy cache hit costs
-- about 1.7x the CPU of a plain file (docs/preset.md). A changed entry names another file, so a hot copy never
-- outlives its version; the entrypoint's keeper (gcsfront-catalog prune) deletes the copies the catalog no
-- longer names and keeps the rest within frontend_mirror_max_size_mb.
--
-- Worker 0 polls the catalog directory every second. A new catalog is loaded into the shared dict not in use,
-- yielding every few thousand names (no worker is blocked for the whole load), then swapped in with one write:
-- a request sees the old catalog or the new one, never a mix. The catalog is trusted while its "fresh" stamp is
-- at most two listing intervals old; otherwise every request goes to the mount, as without a catalog.
local M = {}

local FORMAT = "gcsfront-catalog 1"
local settings = {}
local loading = false

-- Fields of an object line after the name, in order (catalog.go).
local FIELDS = {"size", "etag", "last_modified", "content_type", "content_encoding", "cache_control",
                "content_disposition", "content_language"}
-- Stored metadata sent as it is, when the object has it (Content-Type otherwise stays nginx's guess from the name).
-- (An array: pairs() would stop LuaJIT's compiler on every request.)
local STORED_HEADERS = {{"content_type", "Content-Type"}, {"content_disposition", "Content-Disposition"},
                        {"content_language", "Content-Language"}}
local UNESCAPE = {["\\"] = "\\", t = "\t", n = "\n", r = "\r"}

function M.unescape(s)
    if not s:find("\\", 1, true) then
        return s
    end
    return (s:gsub("\\(.)", UNESCAPE))
end

-- A catalog value (the object line after its name) as a table of FIELDS.
function M.fields(value)
    local object, i = {}, 1
    for field in (value .. "\t"):gmatch("([^\t]*)\t") do
        if FIELDS[i] then
            object[FIELDS[i]] = M.unescape(field)
        end
        i = i + 1
    end
    return object
end

-- Called from init_by_lua_block: the two object dicts, the control dict, the catalog directory, the
-- Cache-Control sent when an object has none ("" for none), and the location that answers unknown names.
-- Hot copies (mirror, nil for none): the largest object copied, in bytes, and the file that the catalog server's
-- answers the catalog disagrees with are stored in (written aside, never served).
function M.configure(options)
    settings.mirror = options.mirror
    settings.objects = {a = ngx.shared[options.objects[1]], b = ngx.shared[options.objects[2]]}
    settings.control = ngx.shared[options.control]
    settings.dir = options.dir
    settings.cache_control = options.cache_control
    settings.unknown_location = options.unknown_location
end

local function read_fresh()
    local f = io.open(settings.dir .. "/fresh")
    if not f then
        return nil
    end
    local line = f:read("*l")
    f:close()
    local listed, hash, interval = (line or ""):match("^(%d+)\t(%x+)\t(%d+)$")
    return tonumber(listed), hash, tonumber(interval)
end

-- Loads catalog.tsv into the dict not in use and swaps it in. Returns the number of names, or nil and why.
local function load()
    local control = settings.control
    local spare = control:get("active") == "a" and "b" or "a"
    local dict = settings.objects[spare]
    dict:flush_all()
    dict:flush_expired()
    local f, err = io.open(settings.dir .. "/catalog.tsv")
    if not f then
        return nil, err
    end
    local header = f:read("*l") or ""
    local format, names, main_page, not_found = header:match("^([^\t]*)\t(%d+)\t([^\t]*)\t([^\t]*)$")
    if format ~= FORMAT then
        f:close()
        return nil, "catalog.tsv is not a " .. FORMAT .. " file"
    end
    local count = 0
    for line in f:lines() do
        local name, value = line:match("^([^\t]*)\t(.*)$")
        if not name then
            f:close()
            return nil, "catalog.tsv line " .. (count + 2) .. " has no fields"
        end
        local ok, set_err = dict:safe_set(M.unescape(name), value)
        if not ok then
            f:close()
            return nil, "the catalog does not fit in frontend_catalog_zone_mb (" .. set_err .. " after "
                        .. count .. " names)"
        end
        count = count + 1
        if count % 2000 == 0 then
            ngx.sleep(0)  -- let this worker serve its requests
        end
    end
    f:close()
    if count ~= tonumber(names) then
        return nil, "catalog.tsv holds " .. count .. " names, its header says " .. names
    end
    control:set("main_page", M.unescape(main_page))
    control:set("not_found", M.unescape(not_found))
    control:set("names", count)
    control:set("bytes", dict:capacity() - dict:free_space())
    control:set("active", spare)  -- the swap
    ngx.update_time()
    control:set("loaded_at", ngx.now())
    return count
end

local function poll(premature)
    if premature or loading then
        return
    end
    local control = settings.control
    local listed, hash, interval = read_fresh()
    if not listed then
        if control:get("trusted_until") ~= 0 then
            ngx.log(ngx.WARN, "gcsfront: no fresh catalog; every name is looked up through the mount")
        end
        control:set("trusted_until", 0)
        return
    end
    if hash ~= control:get("hash") then
        loading = true
        local began = ngx.now()
        local ok, count, err = pcall(load)
        loading = false
        if not ok or not count then
            control:set("trusted_until", 0)
            control:delete("hash")
            ngx.log(ngx.ERR, "gcsfront: loading the catalog failed: ", ok and err or count,
                    "; every name is looked up through the mount")
            return
        end
        control:set("hash", hash)
        ngx.update_time()
        ngx.log(ngx.NOTICE, "gcsfront: catalog of ", count, " names loaded in ", ngx.now() - began, "s (",
                control:get("bytes"), " bytes of shared memory)")
    end
    control:set("trusted_until", listed + 2 * interval)
end

-- init_worker_by_lua: worker 0 keeps the shared dicts in step with the catalog directory.
function M.start()
    if ngx.worker.id() == 0 then
        local ok, err = ngx.timer.every(1, poll)
        if not ok then
            ngx.log(ngx.ERR, "gcsfront: cannot start the catalog timer: ", err)
        end
        ngx.timer.at(0, poll)
    end
end

-- What each request needs of the control dict, read again once per event-loop tick (ngx.now() is the tick's
-- cached time) rather than three shared-memory reads per request.
local snapshot = {at = -1}

-- The active catalog and the main page suffix, or nil while the catalog is not trusted.
local function active()
    local now = ngx.now()
    if snapshot.at ~= now then
        local control = settings.control
        snapshot.at = now
        snapshot.trusted = (control:get("trusted_until") or 0) >= now
        snapshot.dict = settings.objects[control:get("active")]
        snapshot.loaded_at = control:get("loaded_at")
        snapshot.main_page = control:get("main_page") or ""
        snapshot.not_found = control:get("not_found") or ""
    end
    if not snapshot.trusted then
        return nil
    end
    return snapshot.dict, snapshot
end

-- Lookups of the front's screen, per worker: a shared-dict get takes the zone's lock and moves the entry in the
-- dict's LRU list; a Lua table lookup does neither. Measured with scripts/catalog-scale (loopback, one worker, the
-- same machine and hour): a warm request cost 1.07x-1.08x the worker CPU of the front without a catalog through
-- this table, 1.13x-1.15x with a dict get per request, whether the catalog held 10 or 1,000,000 names. The table
-- is emptied when another catalog is swapped in and when full (a flood of distinct names cannot grow it).
local LOOKUPS_MAX = 10000
local lookups, lookups_count, lookups_of = {}, 0, nil

-- The name's entry in the per-worker table: {value = its catalog value}, or false for a name the catalog lacks.
local function lookup(dict, state, name)
    if lookups_of ~= state.loaded_at or lookups_count >= LOOKUPS_MAX then
        lookups, lookups_count, lookups_of = {}, 0, state.loaded_at
    end
    local entry = lookups[name]
    if entry == nil then
        local value = dict:get(name)
        entry = value ~= nil and {value = value}
        lookups[name] = entry
        lookups_count = lookups_count + 1
    end
    return entry
end

-- Parsed objects, per worker: a hot object is split into its fields once, not on every request.
local parsed, parsed_count = {}, 0

local function object_of(value)
    local object = parsed[value]
    if not object then
        if parsed_count >= 10000 then
            parsed, parsed_count = {}, 0
        end
        object = M.fields(value)
        parsed[value] = object
        parsed_count = parsed_count + 1
    end
    return object
end

-- The hot copy's file of an object (its path under the copies' directory), or nil when the object is not copied:
-- a gzip object (nginx's gunzip serves it from the cache), one larger than the copies may hold, or one without an
-- update time (its Last-Modified comes from the file). The name hashes the object's name and catalog value, so
-- every change of the object or its metadata names another file; an object without a stored type keeps its
-- extension, from which nginx guesses the type as it would from the name.
function M.mirror_file(name, value, object)
    if tonumber(object.size) > settings.mirror.max_object_bytes or object.content_encoding ~= ""
            or object.last_modified == "" then
        return nil
    end
    local digest = ngx.md5(name .. "\n" .. value)
    local extension = object.content_type == "" and name:match("%.(%w+)$")
    return "/" .. digest:sub(1, 2) .. "/" .. digest .. (extension and "." .. extension or "")
end

-- Whether a conditional GET or HEAD of the object is answered 304 (RFC 9110: If-None-Match, when sent, decides).
function M.not_modified(object, if_none_match, if_modified_since)
    if if_none_match then
        for tag in if_none_match:gmatch("[^,%s]+") do
            if tag == "*" or tag == object.etag or tag == "W/" .. object.etag then
                return true
            end
        end
        return false
    end
    if if_modified_since and object.last_modified ~= "" then
        local since, modified = ngx.parse_http_time(if_modified_since), ngx.parse_http_time(object.last_modified)
        return since ~= nil and modified ~= nil and modified <= since
    end
    return false
end

-- An object of the catalog: true when the client has it, to be answered 304 here (nginx's own check, which runs
-- before any Lua header filter, would compare the mount's validators); else on to the cache and the mount.
local function known(value)
    ngx.var.gcsfront_object = value
    if ngx.var.gcsfront_conditional == "1" then
        local if_none_match, if_modified_since = ngx.var.http_if_none_match, ngx.var.http_if_modified_since
        if M.not_modified(object_of(value), if_none_match, if_modified_since) then
            return true
        end
        ngx.req.clear_header("If-None-Match")
        ngx.req.clear_header("If-Modified-Since")
    end
    return false
end

local function redirect_to_slash()
    local args = ngx.var.args
    return ngx.redirect(ngx.var.request_uri:match("^[^?]*") .. "/" .. (args and "?" .. args or ""), 301)
end

-- What the request's name is in the catalog: "object" and the object's name (a directory's main page for a name
-- ending in /), "redirect" (a directory without its slash), or "unknown". has(dict, state, name) says whether the
-- catalog holds a name (the front's per-worker table, or the dict itself).
local function resolve(dict, state, has)
    local name = ngx.var.uri:sub(2)
    local main_page = state.main_page
    if name == "" or name:sub(-1) == "/" then
        if main_page ~= "" and has(dict, state, name .. main_page) then
            return "object", name .. main_page
        end
    elseif has(dict, state, name) then
        return "object", name
    elseif main_page ~= "" and has(dict, state, name .. "/" .. main_page) then
        return "redirect"
    end
    return "unknown"
end

local function in_dict(dict, _state, name)
    return dict:get(name) ~= nil
end

-- What the front's location / sends with an object's hot copy, per worker entry: the file and the headers the
-- static module does not set (nil when the object has no hot copy).
local function hot_copy(name, entry)
    local copy = entry.copy
    if copy == nil then
        local object = object_of(entry.value)
        local file = M.mirror_file(name, entry.value, object)
        copy = file and {
            file = file,
            content_type = object.content_type ~= "" and object.content_type or nil,
            etag = object.etag,
            cache_control = object.cache_control ~= "" and object.cache_control or settings.cache_control,
            content_disposition = object.content_disposition,
            content_language = object.content_language,
        } or false
        entry.copy = copy
    end
    return copy or nil
end

-- rewrite_by_lua of the front's location /: an object of the catalog, or a directory with a main page, is served
-- from its hot copy when there is one (its file in $gcsfront_mirror_file, its headers in the variables that
-- location adds), else from the cache (and through the catalog server when the cache lacks it); a directory
-- without its slash is redirected; any other name is unknown (404, paced by the unknown-name location), so it
-- never takes a place in the cache's keys. A conditional request goes to the cache, which answers 304 with the
-- catalog's validators.
function M.screen()
    local dict, state = active()
    if not dict then
        return  -- the mount decides
    end
    local kind, object = resolve(dict, state, lookup)
    if kind == "redirect" then
        return redirect_to_slash()
    elseif kind == "unknown" then
        return ngx.exec(settings.unknown_location)
    end
    if not settings.mirror then
        return
    end
    local var = ngx.var
    if var.gcsfront_conditional == "1" then
        return
    end
    local copy = hot_copy(object, lookup(dict, state, object))
    if not copy then
        return
    end
    -- The static module keeps a type set before it (and a fill from the cache sets its own).
    if copy.content_type then
        ngx.header["Content-Type"] = copy.content_type
    end
    var.gcsfront_mirror_file = copy.file
    var.gcsfront_mirror_etag = copy.etag
    var.gcsfront_mirror_cache_control = copy.cache_control
    if copy.content_disposition ~= "" then
        var.gcsfront_mirror_content_disposition = copy.content_disposition
    end
    if copy.content_language ~= "" then
        var.gcsfront_mirror_content_language = copy.content_language
    end
end

-- rewrite_by_lua of the catalog server, which fills and refreshes the front's cache: an object of the catalog
-- goes on to the mount (its headers are set by M.headers; a directory's name becomes its main page's, which the
-- mount serves); a directory without its slash is redirected; any other name is unknown (404).
function M.route()
    local dict, state = active()
    if not dict then
        return  -- the mount decides
    end
    local kind, object = resolve(dict, state, in_dict)
    if kind == "object" then
        if object ~= ngx.var.uri:sub(2) then
            ngx.req.set_uri("/" .. object, false)
        end
        local value = dict:get(object)
        if value then  -- (a new catalog may have been swapped in since resolve: then the mount decides)
            if known(value) then
                return ngx.exit(ngx.HTTP_NOT_MODIFIED)
            end
            local file = settings.mirror and M.mirror_file(object, value, object_of(value))
            if file then
                -- The answer is also stored as the object's hot copy (M.headers may still set it aside).
                ngx.var.gcsfront_mirror_store = file
                return ngx.exec(settings.mirror.store_location)
            end
        end
    elseif kind == "redirect" then
        ngx.var.gcsfront_decided = "1"
        return redirect_to_slash()
    else
        return ngx.exec(settings.unknown_location)
    end
end

-- rewrite_by_lua of the not-found location: the page becomes the URI to fetch (and to cache under), or a plain 404.
function M.not_found_page()
    local dict, state = active()
    local page = state and state.not_found or ""
    local value = dict and page ~= "" and dict:get(page)
    if not value then
        return ngx.exit(ngx.HTTP_NOT_FOUND)
    end
    ngx.req.set_uri("/" .. page, false)
end

-- For the front's cache refresh: whether the object an entry was filled with (its X-Gcsfront-Object header,
-- "checksum name") has changed in the catalog since: true or false, or nil while the catalog is not trusted.
function M.changed(filled_with)
    local dict, state = active()
    if not dict then
        return nil
    end
    local checksum, name = filled_with:match("^(%d+) (.*)$")
    if not checksum then
        return true
    end
    local value = dict:get(ngx.unescape_uri(name))
    return not value or tostring(ngx.crc32_long(value)) ~= checksum
end

-- header_filter_by_lua of the catalog server: the object's stored headers replace what nginx guessed from the
-- name, and the front caches them with the answer. Two headers are for the front's cache refresh (the front
-- hides them from clients): X-Gcsfront-Object, the object the answer was made of ("checksum name": a changed
-- catalog entry is fetched again), and X-Gcsfront-Mount-Validators (ETag, tab, Last-Modified), the mount's own,
-- which the refresh asks the mount with.
function M.headers()
    local value = ngx.var.gcsfront_object
    if value == "" then
        -- A redirect of the catalog's own is not cached (the next catalog may differ) unless a refresh asked: the
        -- rule of the unknown-name location, $gcsfront_uncacheable.
        local uncacheable = ngx.var.gcsfront_decided == "1" and ngx.var.gcsfront_uncacheable or ""
        if uncacheable ~= "" then
            ngx.header["X-Accel-Expires"] = uncacheable
        end
        return
    end
    local status = ngx.status
    local object = object_of(value)
    local header = ngx.header
    if status ~= 200 and status ~= 206 and status ~= 304 and status ~= 404 then
        return
    end
    local cache_control = object.cache_control ~= "" and object.cache_control or settings.cache_control
    if cache_control ~= "" then
        header["Cache-Control"] = cache_control
    end
    if status == 304 then
        header["ETag"] = object.etag
        header["Last-Modified"] = object.last_modified ~= "" and object.last_modified or nil
        return
    end
    for i = 1, #STORED_HEADERS do
        local stored = object[STORED_HEADERS[i][1]]
        if stored ~= "" then
            header[STORED_HEADERS[i][2]] = stored
        end
    end
    if object.content_encoding ~= "" then
        -- The stored bytes as they are; nginx's gunzip decompresses them for a client that does not take gzip.
        header["Content-Encoding"] = object.content_encoding
        header["Vary"] = "Accept-Encoding"
    end
    if status == 404 then
        -- The not-found page: no validators, as GCS sends none with it (a 404 is never "not modified").
        header["ETag"] = nil
        header["Last-Modified"] = nil
        return
    end
    -- The object's validators only on its own bytes: gcsfuse gives a file the object's update time, so the
    -- answer's Last-Modified says which version the cache holds. While the catalog and the cache disagree (one
    -- has not caught up with a change yet), the mount's validators stay: an ETag always names the bytes sent.
    header["X-Gcsfront-Object"] = ngx.crc32_long(value) .. " " .. ngx.escape_uri(ngx.var.uri:sub(2))
    local mount_last_modified = header["Last-Modified"]
    if object.last_modified == "" or mount_last_modified ~= object.last_modified then
        if settings.mirror and ngx.var.gcsfront_mirror_store ~= "" then
            ngx.var.gcsfront_mirror_store = settings.mirror.discard  -- not the version the catalog lists
        end
        return
    end
    header["X-Gcsfront-Mount-Validators"] = (header["ETag"] or "") .. "\t" .. mount_last_modified
    header["ETag"] = object.etag
end

-- The catalog's state, for /healthz/catalog.
function M.status()
    local control = settings.control
    local trusted_until = control:get("trusted_until") or 0
    ngx.header["Content-Type"] = "application/json"
    ngx.say(string.format('{"trusted":%s,"names":%d,"bytes":%d,"trusted_for_s":%d,"sha256":"%s","loaded_at":%.3f}',
        tostring(trusted_until >= ngx.time()), control:get("names") or 0, control:get("bytes") or 0,
        math.max(0, trusted_until - ngx.time()), control:get("hash") or "", control:get("loaded_at") or 0))
end

return M
