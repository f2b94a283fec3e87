-- The front nginx's cache refresh (lua-nginx-module), detached from client connections.
--
-- nginx's own stale-while-revalidate (proxy_cache_background_update) runs the revalidation as a subrequest of
-- the client request that found the entry expired, and nginx reads that client's next request on the same
-- connection only once the subrequest is done. While the mount hangs on GCS, every client that reuses its
-- connection (browsers, load balancers, CDNs) would wait the upstream timeout once per expired entry.
-- Here entries stay valid for nginx (a long backstop), and the log phase of a cache hit starts, at most once
-- per key and period, a timer that asks the mount whether the object changed (a conditional HEAD: a stat,
-- answered from gcsfuse's stat cache when fresh). Only a change is fetched again, through the front's refresh
-- server (proxy_cache_bypass), which stores the new answer. A failure keeps what the cache holds and is tried
-- again after the period. No client waits for any of it.
local M = {}

local settings = {}

-- nginx time ("10s", "1m", "500ms", "1h30m") in seconds.
local UNITS = {ms = 0.001, s = 1, m = 60, h = 3600, d = 86400, w = 604800}

function M.seconds(value)
    local total, rest = 0, value
    while rest ~= "" do
        local number, unit, tail = rest:match("^(%d+)(%a*)(.*)$")
        if not number or (unit ~= "" and not UNITS[unit]) then
            error("gcsfront: not an nginx time: " .. value)
        end
        total = total + tonumber(number) * (UNITS[unit ~= "" and unit or "s"])
        rest = tail
    end
    return total
end

-- Called from init_by_lua_block with the role's settings: the shared dict's name, the sockets, the
-- periods (nginx time) and the timeout of each refresh request.
function M.configure(options)
    settings.dict = ngx.shared[options.dict]
    settings.mount_socket = "unix:" .. options.mount_socket
    settings.refresh_socket = "unix:" .. options.refresh_socket
    settings.valid = M.seconds(options.valid)
    settings.not_found_valid = M.seconds(options.not_found_valid)
    settings.timeout_ms = M.seconds(options.timeout) * 1000
end

-- The status of a HEAD request over a unix socket (the rest of the answer is not needed), or nil and why.
local function head(socket_path, path, headers)
    local sock = ngx.socket.tcp()
    sock:settimeout(settings.timeout_ms)
    local ok, err = sock:connect(socket_path)
    if not ok then
        return nil, err
    end
    local request = {"HEAD ", path, " HTTP/1.0\r\nHost: gcsfront-refresh\r\n"}
    for name, value in pairs(headers) do
        request[#request + 1] = name .. ": " .. value .. "\r\n"
    end
    request[#request + 1] = "\r\n"
    ok, err = sock:send(table.concat(request))
    if not ok then
        sock:close()
        return nil, err
    end
    local line
    line, err = sock:receive("*l")
    sock:close()
    if not line then
        return nil, err
    end
    return tonumber(line:match("^HTTP/%d%.%d (%d%d%d)")), line
end

-- Whether the answer to a conditional HEAD means the cached entry no longer matches the bucket.
function M.changed(cached_status, had_validators, status)
    if status == 304 then
        return false
    end
    if had_validators then
        return true  -- the validators no longer match (or the object is gone)
    end
    return status ~= cached_status  -- a 404 (or a redirect) entry: only a different answer is a change
end

-- Whether the catalog says the entry's object changed (see gcsfront-catalog.lua's changed): nil when the entry
-- was not filled from the catalog or the catalog is not trusted.
local function catalog_changed(filled_with)
    if not filled_with then
        return nil
    end
    return require("gcsfront.catalog").changed(filled_with)
end

local function refresh(premature, key, path, cached_status, validators, filled_with, refill)
    if premature then
        return  -- nginx is reloading or stopping
    end
    local dict = settings.dict
    -- The object or its metadata changed in the catalog: fetched again, whatever the mount's stat cache says yet.
    -- So is an object whose hot copy is missing (the catalog server stores it on the way). Otherwise (no change,
    -- or the catalog cannot say) the mount is asked whether the bytes changed.
    local changed, detail = refill or catalog_changed(filled_with), nil
    if not changed then
        local status
        status, detail = head(settings.mount_socket, path, validators)
        if not status or status >= 500 then
            -- The mount or GCS is failing: the cache keeps serving what it holds; the next period tries again.
            ngx.log(ngx.INFO, "gcsfront: refreshing ", path, " failed, serving what the cache holds: ", detail)
        else
            changed = M.changed(cached_status, next(validators) ~= nil, status)
        end
    end
    if changed then
        local stored
        stored, detail = head(settings.refresh_socket, path, {})
        if not stored or stored >= 500 then
            ngx.log(ngx.WARN, "gcsfront: fetching ", path, " again failed (", refill and "its hot copy is missing"
                    or "it changed in the bucket", "): ", detail)
        end
    end
    dict:delete("running:" .. key)
end

-- log_by_lua: after a hit, refresh the entry once its period is over; after a fill, start the period.
function M.after_request()
    local cache_status = ngx.var.upstream_cache_status
    if cache_status == nil then
        return  -- not a cached location
    end
    local dict = settings.dict
    local key = ngx.var.uri
    local period = ngx.status == 404 and settings.not_found_valid or settings.valid
    if cache_status ~= "HIT" and cache_status ~= "STALE" and cache_status ~= "UPDATING" then
        if ngx.var.upstream_http_x_accel_expires == "0" then
            return  -- not cached (the catalog server's own 404 or redirect): nothing to refresh
        end
        dict:set("checked:" .. key, true, period)  -- just fetched from the mount
        return
    end
    if not dict:add("checked:" .. key, true, period) then
        return  -- checked within the period
    end
    -- One refresh per key at a time, even when the mount takes longer than a period to answer.
    if not dict:add("running:" .. key, true, settings.timeout_ms / 1000 * 2 + 1) then
        return
    end
    local validators = {}
    -- The mount's own validators: the catalog server (gcsfront-catalog.lua) replaces them in the answer with the
    -- object's, which the mount does not know, and keeps them in a header the front hides from clients.
    local etag, last_modified = (ngx.var.upstream_http_x_gcsfront_mount_validators or ""):match("^([^\t]*)\t(.+)$")
    if not last_modified then
        etag, last_modified = ngx.header["ETag"], ngx.header["Last-Modified"]
    end
    if etag and etag ~= "" then
        validators["If-None-Match"] = etag
    end
    if last_modified then
        validators["If-Modified-Since"] = last_modified
    end
    -- The path as the client sent it (escaped), without the query string: it normalizes to the same key (a
    -- directory's name asks the mount for its main page, as the catalog server does).
    local path = ngx.var.request_uri:match("^[^?]*")
    -- The screen looked for the object's hot copy and did not find it (deleted by the keeper, or not stored yet):
    -- when the cache holds the version the catalog lists (the copy's ETag), the refresh fetches it again, which
    -- stores the copy. Another version is left to the usual check: fetching it again would be set aside again
    -- (the mount has not caught up, or gcsfuse gives the file another time than the object's update time).
    local refill = ngx.status == 200 and (ngx.var.gcsfront_mirror_file or "") ~= ""
                   and ngx.header["ETag"] == ngx.var.gcsfront_mirror_etag
    local ok, err = ngx.timer.at(0, refresh, key, path, ngx.status, validators,
                                 ngx.var.upstream_http_x_gcsfront_object, refill)
    if not ok then
        dict:delete("running:" .. key)
        ngx.log(ngx.WARN, "gcsfront: cannot schedule the refresh of ", path, ": ", err)
    end
end

return M
