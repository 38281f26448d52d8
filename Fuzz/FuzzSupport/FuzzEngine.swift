import FilterHost
import Filters
import MeshAPI
import NIOCore
import NIOEmbedded

/// The engine the HTTP fuzz targets talk to: one cleartext listener whose routes all answer
/// locally (no upstream to connect to), behind the header-mutation filter and a Lua filter
/// that reads headers and buffers bodies. One event loop for every input, so the Lua VM and
/// the loop's state are made once, as on a proxy's loop.
public final class FuzzEngine {
    public let loop = EmbeddedEventLoop()
    private let downstream: DetachedDownstream

    public init() {
        do {
            let snapshot = try ProxySnapshot.build(try BootstrapLoader.parse(Self.bootstrap), version: 1,
                                                   registry: FilterCatalog.registry)
            downstream = try DetachedDownstream(snapshot: snapshot, listener: "main", eventLoop: loop)
        } catch {
            fatalError("fuzz engine config: \(error)")
        }
    }

    /// A new downstream connection that receives `bytes`, `chunk` bytes per read (all at
    /// once when 0), then has every timeout pass and closes.
    public func serve(_ bytes: UnsafeBufferPointer<UInt8>, chunk: Int) {
        let channel = EmbeddedChannel(loop: loop)
        do {
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40000)).wait()
            try downstream.accept(channel)
        } catch {
            fatalError("fuzz connection setup: \(error)")
        }
        feed(bytes, chunk: chunk, into: channel)
        loop.advanceTime(by: .seconds(3600))
        drain(channel)
        _ = try? channel.finish()
        loop.run()
    }

    static let bootstrap = """
        listeners:
          - name: main
            address: 127.0.0.1
            port: 8080
            routeConfig: rc
            httpFilters:
              - name: meshd.header_mutation
                config: {request: {set: {x-fuzz: "1"}, remove: [x-drop]}, response: {add: {x-proxied-by: meshd}}}
              - name: meshd.lua
                config:
                  inlineCode: |
                    function envoy_on_request(h)
                      local hd = h:headers()
                      if hd:get("x-respond") then h:respond({[":status"] = "403"}, "refused") return end
                      if hd:get(":method") == "POST" then
                        local b = h:body()
                        if b then hd:add("x-length", tostring(b:length())) end
                      end
                      for k, v in pairs(hd) do if #k > 200 then hd:remove(k) end end
                    end
                    function envoy_on_response(h) h:headers():add("x-lua", "1") end
        routeConfigs:
          - name: rc
            virtualHosts:
              - name: items
                domains: ["items.test", "*.items.test"]
                routes:
                  - name: item
                    match: {safeRegex: "/items/[0-9]+"}
                    directResponse: {status: 200, body: "item"}
              - name: all
                domains: ["*"]
                routes:
                  - name: canary
                    match: {prefix: "/", headers: [{name: x-canary, exact: "1"}]}
                    directResponse: {status: 201}
                  - name: default
                    match: {prefix: "/"}
                    directResponse: {status: 200, body: "hello"}
        """
}

/// Writes `bytes` into the channel `chunk` bytes at a time (all at once when 0), reading
/// what it answers so outbound buffers stay small; stops when the channel closes.
public func feed(_ bytes: UnsafeBufferPointer<UInt8>, chunk: Int, into channel: EmbeddedChannel) {
    var offset = 0
    let step = chunk == 0 ? max(bytes.count, 1) : chunk
    while offset < bytes.count, channel.isActive {
        let end = min(offset + step, bytes.count)
        var buffer = channel.allocator.buffer(capacity: end - offset)
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[offset..<end]))
        do {
            try channel.writeInbound(buffer)
        } catch {
            break
        }
        drain(channel)
        offset = end
    }
    drain(channel)
}

/// Throws away what the channel wrote and passed on, whatever its type.
public func drain(_ channel: EmbeddedChannel) {
    for _ in 0..<10_000 {
        do {
            guard try channel.readOutbound(as: IOData.self) != nil else { break }
        } catch {
            continue  // not IOData: removed all the same
        }
    }
    for _ in 0..<10_000 {
        do {
            guard try channel.readInbound(as: ByteBuffer.self) != nil else { break }
        } catch {
            continue
        }
    }
}
