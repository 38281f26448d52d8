--[[
api-key.lua — API keys with a rate limit per key.

A request must carry a known key in `x-api-key` (or the configured header), else it is
answered 401 {"error":"missing or invalid api key"}. A pluginConfig it cannot use is
logged and every request answered 500 (it never fails open). Each key may make `requests`
requests per window of `windowSeconds` (fixed windows, counted across all event loops
with meshd.shared); past that the answer is 429 {"error":"rate limit exceeded"} with
`retry-after` (seconds until the window ends). Allowed requests go upstream with the
key's client name in `x-api-client` and without the key; their responses carry
`x-ratelimit-limit` and `x-ratelimit-remaining`.

The keys are loaded into the `meshd.shared("api-keys")` dictionary, under a prefix
derived from the key list, so a new plugin config (hot swap) never sees keys that it no
longer lists.

pluginConfig:
  header: x-api-key                # where the key is read (default x-api-key)
  keys:                            # key -> client name, or -> {client, requests, windowSeconds}
                                   # (client defaults to "key-" and a hash of the key)
    k-alice-7f3a: {client: alice, requests: 5, windowSeconds: 60}
    k-bob-91c2: bob                # the default rate limit applies
  rateLimit: {requests: 100, windowSeconds: 60}   # default per key; leave out for no limit
  clientHeader: x-api-client       # upstream header with the client name ("" for none)
  keepKey: false                   # true: forward the key header upstream too
  rateLimitHeaders: true           # x-ratelimit-* on responses

Example attachment:
  httpFilters:
    - name: meshd.lua
      config:
        name: api-key
        failStrategy: FAIL_CLOSE       # a broken config must not let requests through
        inlineCode: |
          <contents of plugins/api-key.lua>
        pluginConfig:
          keys: {k-alice-7f3a: alice}
          rateLimit: {requests: 10, windowSeconds: 1}
]]

local json = meshd.json
local keys = meshd.shared("api-keys")
local MD_NS = "meshd.api_key"
-- Loaded entries outlive their marker a little, so a reader never sees a marker without keys.
local LOAD_TTL = 3600

local compiled

-- FNV-1a (32 bits) of a string, as hex: a short, stable name for a key list.
local function fingerprint(s)
  local h = 0x811c9dc5
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 0x01000193) & 0xffffffff
  end
  return string.format("%08x", h)
end

local function positive(v, where)
  if v == nil then return nil end
  local n = math.tointeger(v)
  if not n or n < 1 then error(where .. " must be a positive integer", 0) end
  return n
end

local function compile(ctx)
  local c = {
    header = (ctx.header or "x-api-key"):lower(),
    clientHeader = ctx.clientHeader == nil and "x-api-client" or ctx.clientHeader,
    keepKey = ctx.keepKey == true,
    rateLimitHeaders = ctx.rateLimitHeaders ~= false,
    entries = {},
  }
  local default = ctx.rateLimit
  local defRequests, defWindow
  if default ~= nil then
    defRequests = positive(default.requests, "pluginConfig.rateLimit.requests")
    defWindow = positive(default.windowSeconds or 60, "pluginConfig.rateLimit.windowSeconds")
  end
  if type(ctx.keys) ~= "table" then error("pluginConfig.keys must be a map of key -> client", 0) end
  local parts = {}
  for key, v in pairs(ctx.keys) do
    local e
    if type(v) == "string" then
      e = { client = v }
    elseif type(v) == "table" then
      e = { client = v.client or ("key-" .. fingerprint(key)),
            requests = positive(v.requests, "pluginConfig.keys[" .. key .. "].requests"),
            window = positive(v.windowSeconds, "pluginConfig.keys[" .. key .. "].windowSeconds") }
    else
      error("pluginConfig.keys[" .. tostring(key) .. "] must be a client name or a map", 0)
    end
    e.requests = e.requests or defRequests
    e.window = e.window or defWindow or 60
    c.entries[#c.entries + 1] = { key = key, value = json.encode(e) }
    -- Not the JSON text: its key order differs from VM to VM.
    parts[#parts + 1] = table.concat({ key, e.client, tostring(e.requests), e.window }, "\0")
  end
  table.sort(parts)
  c.prefix = fingerprint(table.concat(parts, "\n")) .. ":"
  return c
end

-- Puts the keys in the shared dictionary unless this config's copy is there already.
local function load(c)
  local marker = c.prefix .. "loaded"
  if keys:get(marker) then return end
  for _, e in ipairs(c.entries) do keys:set(c.prefix .. "key:" .. e.key, e.value, LOAD_TTL + 60) end
  keys:set(marker, true, LOAD_TTL)
end

local function deny(handle, status, message, extra)
  local headers = { [":status"] = tostring(status), ["content-type"] = "application/json" }
  for k, v in pairs(extra or {}) do headers[k] = v end
  handle:respond(headers, json.encode({ error = message }))
end

function envoy_on_request(handle)
  if not compiled then
    local ok, result = pcall(compile, handle:filterContext())
    if not ok then
      -- An access check must not fail open, whatever failStrategy says.
      handle:logErr("api-key: bad pluginConfig: " .. tostring(result))
      return deny(handle, 500, "api-key plugin is misconfigured")
    end
    compiled = result
  end
  local c = compiled
  load(c)
  local headers = handle:headers()
  local key = headers:get(c.header)
  local entry = key and keys:get(c.prefix .. "key:" .. key)
  if not entry then
    handle:logDebug("api-key: " .. (key and "unknown" or "missing") .. " key")
    return deny(handle, 401, "missing or invalid api key")
  end
  entry = json.decode(entry)

  if entry.requests then
    local now = handle:timestamp() / 1000
    local window = entry.window
    local index = math.floor(now / window)
    local counter = c.prefix .. "rl:" .. key .. ":" .. index
    local used = keys:incr(counter, 1, 0, window + 1)
    if used > entry.requests then
      local retry = math.max(1, math.ceil((index + 1) * window - now))
      handle:logInfo("api-key: client " .. entry.client .. " is over its limit of " .. entry.requests ..
        " per " .. window .. "s")
      return deny(handle, 429, "rate limit exceeded", { ["retry-after"] = tostring(retry) })
    end
    if c.rateLimitHeaders then
      local md = handle:streamInfo():dynamicMetadata()
      md:set(MD_NS, "limit", tostring(entry.requests))
      md:set(MD_NS, "remaining", tostring(entry.requests - used))
    end
  end

  if not c.keepKey then headers:remove(c.header) end
  if c.clientHeader ~= "" then headers:replace(c.clientHeader, entry.client) end
  handle:streamInfo():dynamicMetadata():set(MD_NS, "client", entry.client)
end

function envoy_on_response(handle)
  local md = handle:streamInfo():dynamicMetadata():get(MD_NS)
  if md and md.limit then
    local headers = handle:headers()
    headers:replace("x-ratelimit-limit", md.limit)
    headers:replace("x-ratelimit-remaining", md.remaining)
  end
end
