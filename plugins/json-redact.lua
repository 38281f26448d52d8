--[[
json-redact.lua — hide sensitive fields in JSON responses.

For a response whose content-type names JSON, the plugin reads the whole body, decodes
it with meshd.json, replaces the value of every object field whose name is listed (at any
depth, inside arrays too; names compare case-insensitively) with "[redacted]", and
writes the body back (content-length follows). A body that is not JSON, or has none of
the fields, passes unchanged, byte for byte. A response larger than `maxBodyBytes` (by
its content-length) is not inspected.

Re-encoding does not keep the original layout: object keys come out in arbitrary order,
whitespace is dropped, and an empty array becomes {} (meshd.json cannot tell an empty
array from an empty object).

pluginConfig:
  fields: [password, ssn, token]        # required
  replacement: "[redacted]"             # default
  contentTypes: [json]                  # substrings of content-type to inspect (default [json])
  maxBodyBytes: 1048576                 # default; keep it within the listener's buffer limit

Example attachment:
  httpFilters:
    - name: meshd.lua
      config:
        name: json-redact
        inlineCode: |
          <contents of plugins/json-redact.lua>
        pluginConfig: {fields: [password, ssn, apiToken]}
]]

local json = meshd.json
local compiled

local function config(handle)
  if not compiled then
    local ctx = handle:filterContext()
    if type(ctx.fields) ~= "table" or #ctx.fields == 0 then
      error("pluginConfig.fields must list at least one field name", 0)
    end
    local c = {
      fields = {},
      replacement = ctx.replacement or "[redacted]",
      types = {},
      max = math.tointeger(ctx.maxBodyBytes) or 1048576,
    }
    for _, f in ipairs(ctx.fields) do c.fields[tostring(f):lower()] = true end
    for _, t in ipairs(ctx.contentTypes or { "json" }) do c.types[#c.types + 1] = tostring(t):lower() end
    compiled = c
  end
  return compiled
end

local function inspected(c, contentType)
  if not contentType then return false end
  contentType = contentType:lower()
  for _, t in ipairs(c.types) do
    if contentType:find(t, 1, true) then return true end
  end
  return false
end

-- Replaces listed fields in place; returns how many were replaced.
local function redact(c, value, depth)
  if type(value) ~= "table" or depth > 64 then return 0 end
  local n = 0
  for k, v in pairs(value) do
    if type(k) == "string" and c.fields[k:lower()] then
      value[k] = c.replacement
      n = n + 1
    else
      n = n + redact(c, v, depth + 1)
    end
  end
  return n
end

function envoy_on_response(handle)
  local c = config(handle)
  local headers = handle:headers()
  if not inspected(c, headers:get("content-type")) then return end
  local length = tonumber(headers:get("content-length"))
  if length and length > c.max then
    handle:logDebug("json-redact: body of " .. length .. " bytes not inspected")
    return
  end
  local body = handle:body()
  if not body or body:length() == 0 then return end
  local ok, doc = pcall(json.decode, body:getBytes(0, body:length()))
  if not ok then
    handle:logDebug("json-redact: body is not JSON, passed unchanged")
    return
  end
  local n = redact(c, doc, 1)
  if n > 0 then
    body:setBytes(json.encode(doc))
    handle:logDebug("json-redact: redacted " .. n .. " field(s)")
  end
end
