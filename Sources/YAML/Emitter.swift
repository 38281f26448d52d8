import CYAML

/// Writes a node as one block-style YAML document with libyaml's emitter: a string that
/// would read back as another type (`"80"`, `"true"`) or cannot be plain is quoted.
public enum YAMLEmitter {
    public static func emit(_ node: Node) throws -> String {
        var emitter = yaml_emitter_t()
        guard yaml_emitter_initialize(&emitter) == 1 else { throw failure("cannot initialize the emitter") }
        defer { yaml_emitter_delete(&emitter) }
        final class Output { var bytes: [UInt8] = [] }
        let output = Output()
        let context = Unmanaged.passUnretained(output).toOpaque()
        yaml_emitter_set_output(&emitter, { data, buffer, size in
            guard let data, let buffer else { return 0 }
            Unmanaged<Output>.fromOpaque(data).takeUnretainedValue().bytes
                .append(contentsOf: UnsafeBufferPointer(start: buffer, count: size))
            return 1
        }, context)
        yaml_emitter_set_unicode(&emitter, 1)
        try withExtendedLifetime(output) {
            var event = yaml_event_t()
            yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING)
            try send(&emitter, &event)
            yaml_document_start_event_initialize(&event, nil, nil, nil, 1)
            try send(&emitter, &event)
            try emit(node, &emitter)
            yaml_document_end_event_initialize(&event, 1)
            try send(&emitter, &event)
            yaml_stream_end_event_initialize(&event)
            try send(&emitter, &event)
        }
        return String(decoding: output.bytes, as: UTF8.self)
    }

    private static func emit(_ node: Node, _ emitter: inout yaml_emitter_t) throws {
        var event = yaml_event_t()
        switch node {
        case .scalar(let s):
            let plainImplicit: Int32 = Tag.resolve(plain: s.string) == s.tag ? 1 : 0
            let quotedImplicit: Int32 = s.tag == .str ? 1 : 0
            var text = Array(s.string.utf8)
            text.append(0)
            text.withUnsafeMutableBufferPointer { b in
                _ = yaml_scalar_event_initialize(&event, nil, nil, b.baseAddress, Int32(b.count - 1),
                                                 plainImplicit, quotedImplicit, YAML_ANY_SCALAR_STYLE)
            }
            try send(&emitter, &event)
        case .sequence(let seq):
            yaml_sequence_start_event_initialize(&event, nil, nil, 1, YAML_BLOCK_SEQUENCE_STYLE)
            try send(&emitter, &event)
            for item in seq { try emit(item, &emitter) }
            yaml_sequence_end_event_initialize(&event)
            try send(&emitter, &event)
        case .mapping(let map):
            yaml_mapping_start_event_initialize(&event, nil, nil, 1, YAML_BLOCK_MAPPING_STYLE)
            try send(&emitter, &event)
            for (k, v) in map {
                try emit(k, &emitter)
                try emit(v, &emitter)
            }
            yaml_mapping_end_event_initialize(&event)
            try send(&emitter, &event)
        }
    }

    /// Hands `event` to the emitter, which frees it.
    private static func send(_ emitter: inout yaml_emitter_t, _ event: inout yaml_event_t) throws {
        guard yaml_emitter_emit(&emitter, &event) == 1 else {
            throw failure(emitter.problem.map { String(cString: $0) } ?? "emitter error")
        }
    }

    private static func failure(_ problem: String) -> YAMLError {
        YAMLError(stage: .composer, problem: problem, mark: Node.Mark(line: 1, column: 1))
    }
}
