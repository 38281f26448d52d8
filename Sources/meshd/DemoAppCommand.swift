import ArgumentParser
import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import NIOHTTP1
import NIOPosix

struct DemoAppCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-app",
        abstract: "A small HTTP/1.1 service for demos and tests.",
        discussion: """
        GET /                  JSON naming the service and echoing the request headers
        ANY /echo              the request body back
        POST /sink             reads the whole body, answers its length
        GET /bytes/N           N bytes, streamed with backpressure
        GET /status/CODE       an empty response with that status
        GET /delay/MS          answers after MS milliseconds
        GET /reset             closes the connection without answering

        With --calls reviews,details and --outbound HOST:PORT (its sidecar's outbound
        listener), GET / also calls each service through the mesh (Host: <service>,
        propagating end-user, cookie and tracing headers) and includes their answers.
        """
    )

    @Option(name: .long, help: "Port to listen on (127.0.0.1).")
    var port: Int

    @Option(name: .long, help: "Service name reported in responses.")
    var name: String = "demo"

    @Option(name: .long, help: "Address to listen on.")
    var address: String = "127.0.0.1"

    @Option(name: .long, help: "Services to call on GET /, comma-separated.")
    var calls: String = ""

    @Option(name: .long, help: "Outbound listener of this app's sidecar, HOST:PORT.")
    var outbound: String = "127.0.0.1:15001"

    func run() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let service = name
        let parts = outbound.split(separator: ":")
        let calling = DemoAppHandler.Calls(services: calls.split(separator: ",").map(String.init),
                                           outbound: (String(parts.first ?? "127.0.0.1"), Int(parts.last ?? "") ?? 15001))
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(DemoAppHandler(service: service, calls: calling))
                }
            }
            .bind(host: address, port: port).wait()
        print("demo-app \(service) listening on \(channel.localAddress!)")
        ProcessLogging.onTerminate { exitProcess(0) }
        dispatchMain()
    }
}
