"""An HTTP/1.1 upstream that answers every request with a small 200 and closes."""
import asyncio, sys

async def handle(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
    except Exception:
        pass
    writer.close()

async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()

asyncio.run(main(int(sys.argv[1])))
