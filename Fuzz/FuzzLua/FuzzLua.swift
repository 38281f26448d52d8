import LuaRuntime
import MeshAPI
import PluginTesting

// The Lua <-> Swift boundary: the input is a program of API calls that a fixed plugin
// (`interpreter`) reads from the request body and runs in envoy_on_request, then again from
// the response body in envoy_on_response — header map get/add/replace/remove/iterate with
// arbitrary names and values, body reads and rewrites, dynamic metadata, route metadata,
// meshd.json, meshd.shared, logging, respond(), trailers, and now and then a runaway loop or
// an allocation spree the limits must stop. Each call sits in a pcall: a Lua error is fine,
// a crash, a hang (libFuzzer -timeout) or unbounded growth (-rss_limit_mb) is a finding.
// One runner (one VM) serves every input, as one event loop's VM serves every request.

nonisolated(unsafe) private let runner: PluginTestRunner = {
    var config = PluginTestConfig()
    config.limits = LuaLimits(instructions: 200_000, memoryBytes: 2 << 20, maxRunMs: 200,
                              maxDynamicMetadataBytes: 4096, sharedDicts: ["fuzz": 2048])
    config.pluginConfig = .object(["mode": .string("fuzz"), "list": .array([.number(1), .null, .bool(true)])])
    config.routeMetadata = .object(["meshd.lua": .object(["key": .string("value")])])
    config.bufferLimitBytes = 64 << 10
    do {
        return try PluginTestRunner(source: interpreter, name: "fuzz", config: config)
    } catch {
        fatalError("fuzz plugin: \(error)")
    }
}()

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    guard size > 0 else { return 0 }
    // Two body chunks, split where the first byte says.
    let program = UnsafeBufferPointer(start: data + 1, count: size - 1)
    let split = min(Int(data[0]), program.count)
    let first = String(decoding: UnsafeBufferPointer(rebasing: program[..<split]), as: UTF8.self)
    let second = String(decoding: UnsafeBufferPointer(rebasing: program[split...]), as: UTF8.self)
    var request = PluginTestRequest()
    request.method = "POST"
    request.path = "/fuzz?q=1"
    request.headers = [("content-type", "application/octet-stream"), ("x-multi", "a"), ("x-multi", "b")]
    request.body = [first, second].filter { !$0.isEmpty }
    if data[0] & 1 == 1 { request.trailers = [("x-trailer", "t")] }
    var response = PluginTestResponse()
    response.headers = [("content-type", "text/plain")]
    response.body = request.body
    do {
        _ = try runner.run(request: request, response: response)
    } catch {
        fatalError("plugin run: \(error)")
    }
    return 0
}

private let interpreter = #"""
local prog, pos = "", 0
local function byte() pos = pos + 1; return prog:byte(pos) or 0 end
local function str()
  local n = byte() % 40
  local s = prog:sub(pos + 1, pos + n)
  pos = pos + n
  return s
end
local function num()
  local b = byte()
  if b < 200 then return b - 100 end
  local specials = {0.5, -0.0, 1e300, -1e308, 2^53, 2^63, math.maxinteger, math.mininteger, 0/0, 1/0, -1/0}
  return specials[b % #specials + 1]
end
local names = {"x-a", "X-A", "x-multi", ":path", ":method", ":status", ":authority", "content-length",
  "host", "te", "connection", "transfer-encoding", "", " ", "x\r\ninjected", "content-type", "\0"}
local function name()
  local b = byte()
  if b < 200 then return names[b % #names + 1] end
  return str()
end
local function any(depth)
  depth = depth or 0
  local t = byte() % 9
  if t == 0 then return str()
  elseif t == 1 then return num()
  elseif t == 2 then return byte() % 2 == 0
  elseif t == 3 then return nil
  elseif t == 4 then return meshd.json.null
  elseif t == 5 and depth < 6 then
    local a = {}
    for i = 1, byte() % 5 do a[i] = any(depth + 1) end
    return a
  elseif t == 6 and depth < 6 then
    local o = {}
    for _ = 1, byte() % 5 do o[str()] = any(depth + 1) end
    return o
  elseif t == 7 then return print
  else return string.rep(str(), byte() * 8) end
end

local function step(h, hd, op)
  if op == 0 then hd:get(name())
  elseif op == 1 then hd:add(name(), any())
  elseif op == 2 then hd:replace(name(), any())
  elseif op == 3 then hd:remove(name())
  elseif op == 4 then hd:getNumValues(name()); hd:getAtIndex(name(), num())
  elseif op == 5 then for k, v in pairs(hd) do if byte() % 3 == 0 then hd:add(k, v) end end
  elseif op == 6 then local b = h:body(); if b then b:setBytes(any()) end
  elseif op == 7 then local b = h:body(); if b then b:getBytes(num(), num()) end
  elseif op == 8 then local b = h:body(); if b then b:length() end
  elseif op == 9 then meshd.json.decode(str())
  elseif op == 10 then meshd.json.encode(any())
  elseif op == 11 then h:streamInfo():dynamicMetadata():set(str(), str(), any())
  elseif op == 12 then h:streamInfo():dynamicMetadata():get(str())
  elseif op == 13 then for k, v in pairs(h:streamInfo():dynamicMetadata()) do meshd.json.encode(v) end
  elseif op == 14 then meshd.shared("fuzz"):set(str(), any(), num())
  elseif op == 15 then meshd.shared("fuzz"):get(str())
  elseif op == 16 then meshd.shared("fuzz"):incr(str(), num(), num(), num())
  elseif op == 17 then meshd.shared("fuzz"):delete(str())
  elseif op == 18 then meshd.shared(str())
  elseif op == 19 then if byte() % 8 == 0 then h:respond({[":status"] = tostring(num()), [name()] = str()}, any()) end
  elseif op == 20 then h:logInfo(any())
  elseif op == 21 then h:metadata():get(str())
  elseif op == 22 then local s = h:streamInfo(); s:protocol(); s:routeName(); s:downstreamRemoteAddress(); s:requestedServerName()
  elseif op == 23 then local t = h:trailers(); if t then t:add(name(), str()) end
  elseif op == 24 then h:bodyChunks()
  elseif op == 25 then h:timestamp(); h:timestampString(byte() % 2 == 0 and "MILLISECOND" or "MICROSECOND")
  elseif op == 26 then h:route(); h:virtualHost()
  elseif op == 27 then h:clearRouteCache()
  elseif op == 28 then h:streamInfo():filterState():get(str())
  elseif op == 29 then h:connection():ssl()
  elseif op == 30 then
    -- Runaway code: the instruction, time and memory limits stop it.
    local k = byte() % 3
    if k == 0 then while true do end
    elseif k == 1 then local t = {}; while true do t[#t + 1] = string.rep("x", 4096) end
    else local s = "x"; while true do s = s .. s end end
  end
end

local function run(h)
  local hd = h:headers()
  local b = h:body()
  prog = b and b:getBytes(0, b:length()) or ""
  pos = 0
  local steps = 0
  while pos < #prog and steps < 256 do
    steps = steps + 1
    local op = byte() % 32
    pcall(step, h, hd, op)
  end
end

function envoy_on_request(h) run(h) end
function envoy_on_response(h) run(h) end
"""#
