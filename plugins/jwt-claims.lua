--[[
jwt-claims.lua — verify an RS256 JWT and pass chosen claims upstream as headers.

The request must carry `authorization: Bearer <JWT>`. The token's signature is checked
with the configured RSA public key (RS256 only: any other `alg`, "none" included, is
refused), then `exp` (required unless `requireExp: false`), `nbf`, and optionally `iss`
and `aud`. A failure is answered 401 with `www-authenticate: Bearer` and a JSON body
{"error": "<reason>"}. On success the configured claims are copied to request headers;
those headers are always removed from the incoming request first, so a client cannot
forge them. The subject also goes to dynamic metadata (`meshd.jwt`, key `sub`). A
pluginConfig it cannot use is logged and every request answered 500 (never fails open).

pluginConfig:
  publicKey: MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA...   # base64 of the DER
      # SubjectPublicKeyInfo, e.g. `openssl rsa -in key.pem -pubout -outform DER | base64 -w0`
  claims: {sub: x-jwt-sub, email: x-jwt-email}   # claim -> request header (default {sub: x-jwt-sub})
  issuer: https://login.example.com   # optional: `iss` must equal it
  audience: orders-api                # optional: `aud` must equal it (or list it)
  requireExp: true                    # default true
  clockSkewSeconds: 60                # leeway for exp and nbf (default 0)
  forwardToken: true                  # false: remove the authorization header upstream

Claim values that are strings go as they are; numbers and booleans as text; objects and
arrays as JSON.

Example attachment:
  httpFilters:
    - name: meshd.lua
      config:
        name: jwt-claims
        failStrategy: FAIL_CLOSE
        inlineCode: |
          <contents of plugins/jwt-claims.lua>
        pluginConfig:
          publicKey: MIIBIjANBgkq...
          claims: {sub: x-jwt-sub, tenant: x-tenant}
]]

local json = meshd.json
local compiled
local publicKey  -- imported once per VM; it does not belong to any one request

-- Base64 (standard or URL-safe alphabet, padding optional) to bytes; nil if malformed.
local decodeTable = {}
do
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
  for i = 1, #alphabet do decodeTable[alphabet:byte(i)] = i - 1 end
  decodeTable[("+"):byte()] = 62
  decodeTable[("/"):byte()] = 63
  decodeTable[("-"):byte()] = 62
  decodeTable[("_"):byte()] = 63
end

local function base64Decode(s)
  s = s:gsub("=+$", "")
  if #s % 4 == 1 then return nil end
  local out = {}
  local bits, count = 0, 0
  for i = 1, #s do
    local v = decodeTable[s:byte(i)]
    if v == nil then return nil end
    bits = ((bits << 6) | v) & 0xffffff  -- only the last few bits matter
    count = count + 6
    if count >= 8 then
      count = count - 8
      out[#out + 1] = string.char((bits >> count) & 0xff)
    end
  end
  return table.concat(out)
end

local function compile(ctx)
  local der = type(ctx.publicKey) == "string" and base64Decode(ctx.publicKey:gsub("%s", ""))
  if not der or #der == 0 then error("pluginConfig.publicKey must be the base64 DER of an RSA public key", 0) end
  local c = {
    der = der,
    claims = {},
    issuer = ctx.issuer,
    audience = ctx.audience,
    requireExp = ctx.requireExp ~= false,
    skew = tonumber(ctx.clockSkewSeconds) or 0,
    forwardToken = ctx.forwardToken ~= false,
  }
  for claim, header in pairs(ctx.claims or { sub = "x-jwt-sub" }) do
    c.claims[#c.claims + 1] = { claim, tostring(header):lower() }
  end
  table.sort(c.claims, function(a, b) return a[1] < b[1] end)
  return c
end

local function claimText(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return math.tointeger(v) and tostring(math.tointeger(v)) or tostring(v) end
  if t == "boolean" then return tostring(v) end
  if t == "table" then return json.encode(v) end
  return nil
end

local function decodeJSON(part)
  local raw = base64Decode(part)
  if not raw then return nil end
  local ok, value = pcall(json.decode, raw)
  if ok and type(value) == "table" then return value end
  return nil
end

-- The token's claims, or nil and why it is refused.
local function verify(handle, c, token)
  local h64, p64, s64 = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
  if not h64 then return nil, "malformed token" end
  local header, claims, signature = decodeJSON(h64), decodeJSON(p64), base64Decode(s64)
  if not header or not claims or not signature then return nil, "malformed token" end
  if header.alg ~= "RS256" then return nil, "unsupported algorithm" end

  if not publicKey then publicKey = handle:importPublicKey(c.der, #c.der) end
  local signed = h64 .. "." .. p64
  local ok = handle:verifySignature("SHA256", publicKey, signature, #signature, signed, #signed)
  if not ok then return nil, "invalid signature" end

  local now = handle:timestamp() / 1000
  if claims.exp ~= nil then
    if type(claims.exp) ~= "number" then return nil, "invalid exp" end
    if now >= claims.exp + c.skew then return nil, "token expired" end
  elseif c.requireExp then
    return nil, "token has no exp"
  end
  if type(claims.nbf) == "number" and now + c.skew < claims.nbf then return nil, "token not yet valid" end
  if c.issuer and claims.iss ~= c.issuer then return nil, "wrong issuer" end
  if c.audience then
    local aud, found = claims.aud, false
    if type(aud) == "table" then
      for _, a in ipairs(aud) do if a == c.audience then found = true end end
    else
      found = aud == c.audience
    end
    if not found then return nil, "wrong audience" end
  end
  return claims
end

local function unauthorized(handle, reason)
  handle:respond({
    [":status"] = "401",
    ["content-type"] = "application/json",
    ["www-authenticate"] = 'Bearer error="invalid_token"',
  }, json.encode({ error = reason }))
end

function envoy_on_request(handle)
  if not compiled then
    local ok, result = pcall(compile, handle:filterContext())
    if not ok then
      -- An access check must not fail open, whatever failStrategy says.
      handle:logErr("jwt-claims: bad pluginConfig: " .. tostring(result))
      return handle:respond({[":status"] = "500", ["content-type"] = "application/json"},
        json.encode({ error = "jwt-claims plugin is misconfigured" }))
    end
    compiled = result
  end
  local c = compiled
  local headers = handle:headers()
  for _, pair in ipairs(c.claims) do headers:remove(pair[2]) end

  local auth = headers:get("authorization")
  local token = auth and auth:match("^[Bb]earer%s+(%S+)%s*$")
  if not token then return unauthorized(handle, "missing bearer token") end
  local claims, why = verify(handle, c, token)
  if not claims then
    handle:logDebug("jwt-claims: " .. why)
    return unauthorized(handle, why)
  end

  for _, pair in ipairs(c.claims) do
    local v = claimText(claims[pair[1]])
    if v then headers:replace(pair[2], v) end
  end
  if not c.forwardToken then headers:remove("authorization") end
  if type(claims.sub) == "string" then
    handle:streamInfo():dynamicMetadata():set("meshd.jwt", "sub", claims.sub)
  end
end
