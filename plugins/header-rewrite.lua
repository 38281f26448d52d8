--[[
header-rewrite.lua — set, add and remove request and response headers.

For each direction the edits run in this order: remove, then set (replace, or add when
absent), then add (append another value). Names are case-insensitive. On the request
side the pseudo-headers :path, :authority and :method may be set too (not removed or
added). A value is a string (numbers and booleans are turned into text); under `add`, a
list adds one value per item.

pluginConfig:
  request:
    remove: [x-debug, x-internal-token]   # header names
    set:    {x-env: prod, ":authority": backend.internal}
    add:    {x-via: [meshd, edge]}
  response:
    remove: [server-timing]
    set:    {cache-control: no-store}
    add:    {x-served-by: meshd}

Example attachment (static bootstrap; `inlineCode` holds this file's text):
  listeners:
    - name: main
      ...
      httpFilters:
        - name: meshd.lua
          config:
            name: header-rewrite
            inlineCode: |
              <contents of plugins/header-rewrite.lua>
            pluginConfig:
              request: {set: {x-env: prod}, remove: [x-debug]}
              response: {set: {cache-control: no-store}}

Try it offline:
  meshd plugin test plugins/header-rewrite.lua --request req.yaml --config cfg.yaml
]]

-- The config, checked and normalised once per VM (filterContext() is the same table
-- for the life of the plugin version).
local compiled

local function text(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return math.tointeger(v) and tostring(math.tointeger(v)) or tostring(v) end
  if t == "boolean" then return tostring(v) end
  return nil
end

local function compileSide(side, where)
  local out = { remove = {}, set = {}, add = {} }
  if side == nil then return out end
  if type(side) ~= "table" then error(where .. " must be a map of remove/set/add", 0) end
  for key in pairs(side) do
    if key ~= "remove" and key ~= "set" and key ~= "add" then
      error(where .. "." .. tostring(key) .. ": unknown (expected remove, set, add)", 0)
    end
  end
  for i, name in ipairs(side.remove or {}) do
    if type(name) ~= "string" then error(where .. ".remove[" .. i .. "] must be a header name", 0) end
    out.remove[#out.remove + 1] = name:lower()
  end
  for name, value in pairs(side.set or {}) do
    local v = text(value)
    if v == nil then error(where .. ".set." .. tostring(name) .. " must be a string", 0) end
    out.set[#out.set + 1] = { name:lower(), v }
  end
  for name, value in pairs(side.add or {}) do
    local values = type(value) == "table" and value or { value }
    for _, item in ipairs(values) do
      local v = text(item)
      if v == nil then error(where .. ".add." .. tostring(name) .. " must be a string or a list of strings", 0) end
      out.add[#out.add + 1] = { name:lower(), v }
    end
  end
  -- pairs() order is arbitrary: sort so every VM applies the edits the same way.
  table.sort(out.set, function(a, b) return a[1] < b[1] end)
  table.sort(out.add, function(a, b) return a[1] < b[1] end)
  return out
end

local function config(handle)
  if not compiled then
    local ctx = handle:filterContext()
    compiled = {
      request = compileSide(ctx.request, "pluginConfig.request"),
      response = compileSide(ctx.response, "pluginConfig.response"),
    }
  end
  return compiled
end

local function apply(headers, edits)
  for _, name in ipairs(edits.remove) do headers:remove(name) end
  for _, kv in ipairs(edits.set) do headers:replace(kv[1], kv[2]) end
  for _, kv in ipairs(edits.add) do headers:add(kv[1], kv[2]) end
end

function envoy_on_request(handle)
  apply(handle:headers(), config(handle).request)
end

function envoy_on_response(handle)
  apply(handle:headers(), config(handle).response)
end
