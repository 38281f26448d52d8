"""A gRPC server and client with raw-bytes methods (no generated code): unary echo and bidi streaming."""
import sys
from concurrent import futures

import grpc


def _echo(request, context):
    context.set_trailing_metadata((("x-trailer", "yes"),))
    return b"echo:" + request


def _fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def _chat(request_iterator, context):
    for i, message in enumerate(request_iterator):
        yield b"%d:" % i + message


def serve(port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Fail": grpc.unary_unary_rpc_method_handler(_fail),
        "Chat": grpc.stream_stream_rpc_method_handler(_chat),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("meshd.test.Echo", handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server


if __name__ == "__main__":
    serve(int(sys.argv[1])).wait_for_termination(timeout=600)
