import ArgumentParser
import Dispatch
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
        """
    )

    @Option(name: .long, help: "Port to listen on (127.0.0.1).")
    var port: Int

    @Option(name: .long, help: "Service name reported in responses.")
    var name: String = "demo"

    @Option(name: .long, help: "Address to listen on.")
    var address: String = "127.0.0.1"

    func run() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let service = name
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(DemoAppHandler(service: service))
                }
            }
            .bind(host: address, port: port).wait()
        print("demo-app \(service) listening on \(channel.localAddress!)")
        dispatchMain()
    }
}
