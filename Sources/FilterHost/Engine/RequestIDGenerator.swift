import Transport

/// Makes `x-request-id` values: random version-4 UUIDs in lowercase text, from a per-loop
/// generator (xoshiro256**, seeded from the system) so no syscall or lock is paid per request.
package struct RequestIDGenerator {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    package init() {
        var system = SystemRandomNumberGenerator()
        state = (system.next(), system.next(), system.next(), system.next() | 1)
    }

    /// 64 random bits (trace and span ids, sampling draws).
    package mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }

    package mutating func uuidString() -> String {
        var hi = next(), lo = next()
        hi = (hi & ~0xF000) | 0x4000                         // version 4
        lo = (lo & ~(0xC << 60)) | (0x8 << 60)                 // variant 10xx
        return String(unsafeUninitializedCapacity: 36) { out in
            var i = 0
            func put(_ v: UInt64, _ nibbles: Int) {
                for n in stride(from: nibbles - 1, through: 0, by: -1) {
                    // Lowercase hex by arithmetic: a digit table was an array allocated per request.
                    let nibble = UInt8(truncatingIfNeeded: (v >> (UInt64(n) * 4)) & 0xF)
                    out[i] = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble
                    i += 1
                }
            }
            put(hi >> 32, 8); out[i] = UInt8(ascii: "-"); i += 1
            put(hi >> 16, 4); out[i] = UInt8(ascii: "-"); i += 1
            put(hi, 4); out[i] = UInt8(ascii: "-"); i += 1
            put(lo >> 48, 4); out[i] = UInt8(ascii: "-"); i += 1
            put(lo, 12)
            return i
        }
    }
}
