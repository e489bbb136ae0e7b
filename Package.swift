// swift-tools-version: 6.2
import PackageDescription

// The module map is ARCHITECTURE.md's: a pure core, one adapter per outside world, one
// composition root, one executable. Each C library is imported by exactly one Swift module.

// The release agent's resident code (docs/benchmarks.md, Footprint). The functions a running hub
// executes (hot-functions.order, written by Benchmarks/order_file.py) are laid out together, each
// of our functions in a section of its own so that lld can move it, and the relative relocations
// are packed (DT_RELR, glibc 2.36+) instead of 700 KB of tables read at every start. A function
// the file does not name is only placed elsewhere: a stale file costs memory, not correctness.
// The static stdlib's link arguments export every symbol (for Swift libraries dlopen()ed into
// the program; the agent loads none): 700 KB of symbol tables resident, so not exported.
// GCC's C++ runtime, which the Swift runtime needs, is linked statically (1 MB less resident: a
// shared libstdc++ is loaded and relocated whole for the few functions the runtime calls): the
// stdlib's link arguments say -lstdc++, and the directory searched first holds a linker script of
// that name pointing at libstdc++.a. Its GCC runtime library exception allows it.
let releaseLayout = [
    "-use-ld=lld",
    "-L\(Context.packageDirectory)/Sources/vaktpost/static-libstdc++",
    "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Sources/vaktpost/hot-functions.order",
    "-Xlinker", "--no-warn-symbol-ordering",
    "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
    "-Xlinker", "--no-export-dynamic",
]

let package = Package(
    name: "vaktpost",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vaktpost", targets: ["vaktpost"]),
        .executable(name: "vaktpost-receiver", targets: ["vaktpost-receiver"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.0"),
        // The reference receiver only; none of these is linked into the agent.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0", traits: []),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // System libraries. Debian package names in `providers` are what `.ci/run` installs.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CUdev", pkgConfig: "libudev", providers: [.apt(["libudev-dev"])]),
        // The kernel's HCI socket ABI, written out: no Bluetooth library is linked (Sources/CHCI).
        .systemLibrary(name: "CHCI"),
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        // Pure domain: no I/O, no Foundation, no C.
        .target(name: "VaktpostCore"),

        // File descriptors, errno, files: the one place the agent touches POSIX directly.
        .target(
            name: "VaktpostPosix",
            dependencies: ["CPosixShim", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // adjtimex(), SO_PEERCRED and sd_notify: what Swift's Glibc module does not reach.
        .target(name: "CPosixShim"),

        // Adapters. They never import each other; they meet in Agent through Core types.
        .target(name: "SQLiteStore", dependencies: ["CSQLite"]),
        .target(name: "Outbox", dependencies: ["VaktpostCore", "VaktpostPosix", "SQLiteStore"]),
        .target(name: "Uplink", dependencies: ["VaktpostCore", "CCurl"]),
        .target(name: "BLEInput", dependencies: ["VaktpostCore", "VaktpostPosix", "CHCI", "CLibCrypto"]),
        .target(name: "SerialInput", dependencies: ["VaktpostCore", "VaktpostPosix", "CUdev"]),

        // Composition root: config file → validated config → services.
        .target(
            name: "Agent",
            dependencies: [
                "VaktpostCore", "VaktpostPosix", "SQLiteStore", "Outbox", "Uplink", "BLEInput", "SerialInput",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // No swift-argument-parser here: it brings FoundationEssentials (3.6 MB); the agent parses
        // its own command line (Sources/vaktpost/CommandLineParser.swift).
        .executableTarget(
            name: "vaktpost",
            dependencies: [
                "Agent", "VaktpostCore", "VaktpostPosix", "Outbox", "SQLiteStore", "BLEInput", "SerialInput", "Uplink",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            exclude: ["hot-functions.order", "static-libstdc++"],
            linkerSettings: [.unsafeFlags(releaseLayout, .when(configuration: .release))]
        ),

        // The reference response platform (docs/openapi.yaml's server side): the decisions in a
        // library over SQLite, testable without sockets; Hummingbird with mutual TLS around it.
        .target(name: "Receiver", dependencies: ["VaktpostCore", "SQLiteStore"]),
        .executableTarget(
            name: "vaktpost-receiver",
            dependencies: [
                "Receiver", "VaktpostCore", "VaktpostPosix",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .testTarget(name: "VaktpostCoreTests", dependencies: ["VaktpostCore"]),
        .testTarget(name: "SQLiteStoreTests", dependencies: ["SQLiteStore"]),
        .testTarget(name: "OutboxTests", dependencies: ["Outbox", "SQLiteStore", "VaktpostCore", "outbox-probe", "TestSupport"]),

        // Drives the outbox from a separate process: the crash test SIGKILLs it, the ingest
        // benchmark times it. Not a product; built for tests and Benchmarks/.
        .executableTarget(name: "outbox-probe", dependencies: ["Outbox", "VaktpostCore", "VaktpostPosix"], path: "Tests/OutboxProbe"),

        // libFuzzer target over every parser (see the file for the commands); a normal build replays inputs.
        .executableTarget(name: "fuzz-parsers", dependencies: ["VaktpostCore", "BLEInput"], path: "Tests/Fuzz", exclude: ["corpus"]),
        // Starts the reference receiver and a dev PKI for the tests that need a platform; a dead SD card.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "UplinkTests", dependencies: [
            "Uplink", "VaktpostCore", "SQLiteStore", "TestSupport", "vaktpost-receiver",
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOHPACK", package: "swift-nio-http2"),
            .product(name: "NIOHTTP2", package: "swift-nio-http2"),
        ]),
        .testTarget(name: "ReceiverTests", dependencies: ["Receiver", "VaktpostCore", "TestSupport"]),
        .testTarget(name: "BLEInputTests", dependencies: ["BLEInput", "VaktpostCore", "VaktpostPosix", "TestSupport"]),
        .testTarget(name: "SerialInputTests", dependencies: ["SerialInput", "VaktpostCore", "VaktpostPosix", "TestSupport"]),
        .testTarget(
            name: "AgentTests",
            dependencies: [
                "Agent", "VaktpostCore", "VaktpostPosix", "BLEInput", "SerialInput", "Outbox", "Uplink", "TestSupport", "vaktpost-receiver",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Runs the built `vaktpost` binary the way a technician would.
        .testTarget(name: "CLITests", dependencies: ["vaktpost", "outbox-probe", "vaktpost-receiver", "TestSupport"]),
    ]
)

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.swiftLanguageMode(.v6))
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    settings.append(.unsafeFlags(["-Xfrontend", "-function-sections"], .when(configuration: .release)))
    target.swiftSettings = settings
}
