import NIOCore

/// The buffer of a connection's last write, kept for its next one. Once the channel has
/// written it and let go, `clear()` reuses its storage: no allocation per write (a
/// `ByteBuffer` is two: the storage object and its bytes). While the channel still holds
/// it (a write pending), `clear()` allocates fresh storage, as a new buffer would.
package struct ReusableWriteBuffer {
    private var spare: ByteBuffer?
    /// A buffer grown past this is not kept, so an idle connection holds little memory.
    private let maxKept: Int

    package init(maxKept: Int) {
        self.maxKept = maxKept
    }

    /// An empty buffer with room for at least `capacity` bytes.
    package mutating func take(capacity: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard var buffer = spare else { return allocator.buffer(capacity: capacity) }
        spare = nil
        buffer.clear()
        buffer.reserveCapacity(capacity)
        return buffer
    }

    /// Keeps `buffer`, just handed to the channel, for the next `take`.
    package mutating func keep(_ buffer: ByteBuffer) {
        spare = buffer.capacity <= maxKept ? buffer : nil
    }

    package mutating func drop() {
        spare = nil
    }
}
