// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "meshd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "meshd", targets: ["meshd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        // No default traits: BinaryDelimitedStreams needs all of Foundation (InputStream), FieldMaskUtilities is unused.
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0", traits: []),
    ],
    targets: [
        .systemLibrary(name: "CNghttp2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CLua", pkgConfig: "lua5.4", providers: [.apt(["liblua5.4-dev"])]),
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        // YAML documents as nodes with their lines (libyaml's parser), without Foundation.
        .target(name: "YAML", dependencies: ["CYAML"]),
        // RE2 is C++: a C shim over it (Debian libre2-dev; libre2.so brings its own dependencies).
        .target(name: "CRE2", linkerSettings: [.linkedLibrary("re2")]),
        // Plugin limits in C: the instruction hook, the watchdog, guarded library functions.
        // Optimized in debug builds too: its pattern matcher replaces liblua's (built -O2), and
        // plugin time limits should not depend on the build.
        .target(name: "CLuaGuard", dependencies: ["CLua"],
                cSettings: [.headerSearchPath("../CLua"), .unsafeFlags(["-O3"])]),
        .target(
            name: "MeshAPI",
            dependencies: ["YAML", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["proto"]
        ),
        .target(
            name: "Transport",
            dependencies: [
                "MeshAPI", "CNghttp2", "COpenSSL", "CRE2",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "LuaRuntime",
            dependencies: [
                "MeshAPI", "Transport", "CLua", "CLuaGuard", "COpenSSL",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "FilterHost",
            dependencies: [
                "MeshAPI", "Transport",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                "YAML",
            ],
            // The data path is single-threaded per loop by design; runtime exclusivity
            // checks cost ~2% of a request in release builds.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "Filters",
            dependencies: [
                "FilterHost", "Transport", "LuaRuntime", "MeshAPI", "CLua",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "PluginTesting",
            dependencies: [
                "Filters", "FilterHost", "Transport", "LuaRuntime", "MeshAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                "YAML",
            ]
        ),
        .target(
            name: "ControlPlane",
            dependencies: [
                "Transport", "LuaRuntime", "MeshAPI",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                "YAML",
            ]
        ),
        .executableTarget(
            name: "meshd",
            dependencies: [
                "FilterHost", "Filters", "PluginTesting", "Transport", "LuaRuntime", "MeshAPI", "ControlPlane",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "YAMLTests", dependencies: ["YAML"]),
        .testTarget(
            name: "ControlPlaneTests",
            dependencies: [
                "ControlPlane", "FilterHost", "Filters", "PluginTesting", "Transport", "LuaRuntime", "MeshAPI",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FilterHostTests",
            dependencies: [
                "FilterHost", "Filters", "PluginTesting", "Transport", "LuaRuntime", "MeshAPI", "CLua",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FiltersTests",
            dependencies: [
                "Filters", "FilterHost", "PluginTesting", "Transport", "LuaRuntime", "MeshAPI", "CLua", "CLuaGuard", "COpenSSL",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6],
    // RE2's headers need C++11; newer RE2 releases (with abseil) need C++17.
    cxxLanguageStandard: .cxx17
)

// libFuzzer targets (Fuzz/, `make fuzz`; docs/reliability.md, "Fuzzing"): declared only when MESHD_FUZZ is set, so
// `swift build` and `swift build --build-tests` never compile them without the fuzzer runtime
// that supplies their `main`.
if Context.environment["MESHD_FUZZ"] != nil {
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("FuzzHTTP1", ["FilterHost", "Filters", "Transport", "MeshAPI", .product(name: "NIOEmbedded", package: "swift-nio")]),
        ("FuzzHTTP2", ["FilterHost", "Filters", "Transport", "MeshAPI", .product(name: "NIOEmbedded", package: "swift-nio")]),
        ("FuzzBootstrap", ["FilterHost", "Filters", "MeshAPI"]),
        ("FuzzIstio", ["ControlPlane", "FilterHost", "Filters", "MeshAPI"]),
        ("FuzzLua", ["PluginTesting", "LuaRuntime", "MeshAPI"]),
        ("FuzzJSON", ["PluginTesting", "LuaRuntime", "MeshAPI"]),
    ]
    let support: [Target.Dependency] = ["FuzzSupport"]
    package.targets.append(.target(name: "CLibFuzzer", path: "Fuzz/CLibFuzzer"))
    package.targets.append(.target(name: "FuzzSupport", dependencies: [
        "CLibFuzzer", "FilterHost", "Filters", "MeshAPI",
        .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
    ], path: "Fuzz/FuzzSupport"))
    for fuzz in fuzzTargets {
        let common: [Target.Dependency] = [.product(name: "NIOCore", package: "swift-nio"),
                                           .product(name: "NIOHTTP1", package: "swift-nio")]
        package.targets.append(.executableTarget(name: fuzz.name, dependencies: fuzz.dependencies + support + common,
                                                 path: "Fuzz/\(fuzz.name)"))
        package.products.append(.executable(name: fuzz.name, targets: [fuzz.name]))
    }
}
