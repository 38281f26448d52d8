import LuaRuntime
import MeshAPI
import PluginTesting

// meshd.json: the input, as raw bytes, goes to meshd.json.decode inside a plugin. Text it
// accepts must encode, and the encoding must decode to an equal value (a round trip); any
// step that breaks that raises, which the run reports as a script error, and the target
// stops on it. Malformed input only has to fail cleanly.

nonisolated(unsafe) private let runner: PluginTestRunner = {
    var config = PluginTestConfig()
    config.limits = LuaLimits(memoryBytes: 16 << 20, maxRunMs: 1000)
    config.bufferLimitBytes = 1 << 20
    do {
        return try PluginTestRunner(source: roundTrip, name: "fuzz-json", config: config)
    } catch {
        fatalError("fuzz plugin: \(error)")
    }
}()

private let hexDigits = Array("0123456789abcdef".utf8)

func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input else { return 0 }
    // Hex on the way in: request bodies here are Strings, and the decoder must see raw bytes.
    var hex = [UInt8]()
    hex.reserveCapacity(size * 2)
    for b in UnsafeBufferPointer(start: data, count: size) {
        hex.append(hexDigits[Int(b >> 4)])
        hex.append(hexDigits[Int(b & 15)])
    }
    var request = PluginTestRequest()
    request.method = "POST"
    request.body = [String(decoding: hex, as: UTF8.self)]
    let result: PluginTestResult
    do {
        result = try runner.run(request: request)
    } catch {
        fatalError("plugin run: \(error)")
    }
    if let error = result.errors.first { fatalError("meshd.json round trip: \(error.message)") }
    return 0
}

private let roundTrip = #"""
local json = meshd.json
local function same(a, b, depth)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" or depth > 200 then return false end
  for k, v in pairs(a) do if not same(v, b[k], depth + 1) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
function envoy_on_request(h)
  local body = h:body()
  local hex = body and body:getBytes(0, body:length()) or ""
  local text = hex:gsub("..", function(x) return string.char(tonumber(x, 16)) end)
  local ok, value = pcall(json.decode, text)
  if not ok then return end
  local encoded = json.encode(value)
  local again = json.decode(encoded)
  if not same(value, again, 0) then error("decode(encode(v)) ~= v for " .. encoded) end
  if json.encode(again) ~= encoded and type(value) ~= "table" then error("encoding is not stable: " .. encoded) end
end
"""#
