--[[
log-sampler.lua — log a sample of requests: method, path, status and duration.

Each request is sampled with probability `rate` (0 logs nothing, 1 logs everything;
both are exact). For a sampled request the plugin writes one line at info level when the
response headers come back, e.g.

  sampled request method=GET path=/api/items status=200 duration_ms=3.2 request_id=6c1f…

The duration runs from the request headers reaching the plugin to the response headers
reaching it (so it includes the upstream's time to first byte). The line goes to the
proxy's log (stderr), tagged with the plugin name; the decision and start time travel in
dynamic metadata under `meshd.log_sampler`.

pluginConfig:
  rate: 0.1              # 0..1 (default 1)
  headers: [user-agent]  # request headers to add to the line (optional)

Example attachment:
  httpFilters:
    - name: meshd.lua
      config:
        name: log-sampler
        inlineCode: |
          <contents of plugins/log-sampler.lua>
        pluginConfig: {rate: 0.01, headers: [user-agent]}
]]

local NS = "meshd.log_sampler"
local compiled

local function config(handle)
  if not compiled then
    local ctx = handle:filterContext()
    local rate = ctx.rate == nil and 1 or tonumber(ctx.rate)
    if not rate or rate < 0 or rate > 1 then error("pluginConfig.rate must be a number from 0 to 1", 0) end
    local extra = {}
    for _, h in ipairs(ctx.headers or {}) do extra[#extra + 1] = tostring(h):lower() end
    compiled = { rate = rate, headers = extra }
  end
  return compiled
end

-- Values go in a key=value line: quote those with spaces or quotes.
local function field(v)
  if v:find('[%s"]') then return '"' .. v:gsub('"', '\\"') .. '"' end
  return v
end

function envoy_on_request(handle)
  local c = config(handle)
  -- math.random() is in [0, 1): rate 0 never samples, rate 1 always does.
  if c.rate == 0 or math.random() >= c.rate then return end
  local headers = handle:headers()
  local md = handle:streamInfo():dynamicMetadata()
  md:set(NS, "start_us", tostring(handle:timestamp(EnvoyTimestampResolution.MICROSECOND)))
  md:set(NS, "method", headers:get(":method") or "-")
  md:set(NS, "path", headers:get(":path") or "-")
  md:set(NS, "request_id", headers:get("x-request-id") or "-")
  for i, name in ipairs(c.headers) do md:set(NS, "h" .. i, headers:get(name) or "-") end
end

function envoy_on_response(handle)
  local s = handle:streamInfo():dynamicMetadata():get(NS)
  if not s or not s.start_us then return end
  local c = config(handle)
  local us = handle:timestamp(EnvoyTimestampResolution.MICROSECOND) - math.tointeger(tonumber(s.start_us))
  local parts = {
    "sampled request",
    "method=" .. field(s.method),
    "path=" .. field(s.path),
    "status=" .. (handle:headers():get(":status") or "-"),
    string.format("duration_ms=%.1f", us / 1000),
    "request_id=" .. field(s.request_id),
  }
  for i, name in ipairs(c.headers) do parts[#parts + 1] = name .. "=" .. field(s["h" .. i] or "-") end
  handle:logInfo(table.concat(parts, " "))
end
