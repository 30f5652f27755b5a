// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "Funnel",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Funnel", targets: ["Funnel"]),
        .library(name: "FunnelONNX", targets: ["FunnelONNX"]),
        .library(name: "FunnelDistributed", targets: ["FunnelDistributed"]),
        .executable(name: "funnel", targets: ["funnel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
    ],
    targets: [
        // OpenBLAS through pkg-config; `make deps` installs libopenblas-dev when it is missing.
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // Open MPI through pkg-config (`make deps` installs libopenmpi-dev), and a small C shim
        // over what data-parallel training calls (MPI_COMM_WORLD and the datatypes are macros).
        .systemLibrary(
            name: "CMPISystem",
            path: "Sources/CMPISystem",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]
        ),
        .target(name: "CMPI", dependencies: ["CMPISystem"]),
        // oneDNN (Debian's libdnnl-dev 2.6: no pkg-config file), the `--gemm onednn` engine.
        .target(name: "CDNNL", linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),
        // CPU intrinsics Swift does not expose (software prefetch), inlined from a header.
        .target(name: "CKernels"),
        // Signal handlers that must be async-signal-safe (temporaries removed on SIGINT/SIGTERM,
        // a located error for a mapped input cut short) and renameat2, which Swift's Glibc lacks.
        .target(name: "CProcess"),
        .target(
            name: "Funnel",
            dependencies: ["COpenBLAS", "CDNNL", "CKernels", "CProcess", .product(name: "Yams", package: "Yams")],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        // The ONNX export, with the protobuf code generated from ONNX's own onnx.proto: a user of
        // the model code alone does not pull swift-protobuf.
        .target(
            name: "FunnelONNX",
            dependencies: ["Funnel", .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        // Open MPI behind the engine's `Communicator`: the collectives of a job started by mpirun
        // (and LightGBM's network functions over them). The engine itself never links MPI.
        .target(name: "FunnelDistributed", dependencies: ["Funnel", "CMPI"]),
        // The HTTP prediction service, beside the engine: it only reads model directories.
        .target(
            name: "FunnelServe",
            dependencies: [
                "Funnel",
                "CProcess",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "funnel",
            dependencies: [
                "Funnel",
                "FunnelONNX",
                "FunnelDistributed",
                "FunnelServe",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "FunnelTests",
            dependencies: ["Funnel"],
            exclude: ["Fixtures"]
        ),
        // Runs the built `funnel` executable end to end (every subcommand), and the CSV-vs-HTTP
        // identity of the one row decoder.
        .testTarget(
            name: "FunnelCLITests",
            dependencies: ["funnel", "Funnel", "FunnelONNX", "FunnelServe", .product(name: "Logging", package: "swift-log")],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "FunnelServeTests",
            dependencies: ["Funnel", "FunnelServe", .product(name: "Logging", package: "swift-log")]
        ),
    ]
)
