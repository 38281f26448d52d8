import NIOCore

/// Body buffers waiting for the data provider. The first is held inline (a small response
/// queues exactly one), the rest in a ring made only once a second buffer waits, so a
/// stream with a small body allocates nothing here.
package struct OutboundBodyQueue {
    private var head: ByteBuffer?
    /// Never holds anything while `head` is nil.
    private var rest: CircularBuffer<ByteBuffer>?

    package init() {}

    package var first: ByteBuffer? { head }

    package mutating func append(_ buffer: ByteBuffer) {
        if head == nil {
            head = buffer
        } else {
            if rest == nil { rest = CircularBuffer(initialCapacity: 4) }
            rest!.append(buffer)
        }
    }

    package mutating func removeFirst() {
        head = rest?.popFirst()
    }

    package mutating func consumeFromFirst(_ count: Int) {
        head!.moveReaderIndex(forwardBy: count)
    }

    package mutating func removeAll() {
        head = nil
        rest = nil
    }
}
