--[[
canary-cookie.lua — send users who opted in (by cookie) to the canary.

When the request carries the cookie `canary=always` (name and value configurable), the
plugin sets `x-canary: 1` on the request and calls clearRouteCache(), so a route that
matches on that header picks the canary cluster. Without the cookie, an `x-canary`
header sent by the client is removed (only the plugin decides who is a canary); turn
that off with `stripClientHeader: false`.

pluginConfig (all optional):
  cookie: canary          # cookie name
  value: always           # cookie value that opts in
  header: x-canary        # request header the routes match on
  headerValue: "1"
  stripClientHeader: true

Example attachment, with the route that uses the header (first match wins):
  listeners:
    - name: main
      ...
      httpFilters:
        - name: meshd.lua
          config: {name: canary-cookie, inlineCode: "<contents of this file>"}
  routeConfigs:
    - name: main
      virtualHosts:
        - name: app
          domains: ["*"]
          routes:
            - name: canary
              match: {prefix: /, headers: [{name: x-canary, exact: "1"}]}
              route: {cluster: app-canary}
            - name: stable
              match: {prefix: /}
              route: {cluster: app}
]]

local compiled

local function config(handle)
  if not compiled then
    local ctx = handle:filterContext()
    compiled = {
      cookie = ctx.cookie or "canary",
      value = ctx.value or "always",
      header = (ctx.header or "x-canary"):lower(),
      headerValue = tostring(ctx.headerValue or "1"),
      strip = ctx.stripClientHeader ~= false,
    }
  end
  return compiled
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- True when one of the request's cookies is name=value. Several Cookie headers come
-- joined with "," (HTTP/2 sends one per cookie), so both ";" and "," separate.
local function hasCookie(headers, name, value)
  local all = headers:get("cookie")
  if not all then return false end
  for pair in all:gmatch("[^;,]+") do
    local eq = pair:find("=", 1, true)
    if eq and trim(pair:sub(1, eq - 1)) == name and trim(pair:sub(eq + 1)) == value then
      return true
    end
  end
  return false
end

function envoy_on_request(handle)
  local c = config(handle)
  local headers = handle:headers()
  if hasCookie(headers, c.cookie, c.value) then
    headers:replace(c.header, c.headerValue)
    handle:clearRouteCache()
    handle:streamInfo():dynamicMetadata():set("meshd.canary", "selected", "true")
  elseif c.strip and headers:get(c.header) then
    headers:remove(c.header)
    handle:clearRouteCache()
  end
end
