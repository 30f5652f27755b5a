// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "Funnel",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Funnel", targets: ["Funnel"]),
        .executable(name: "funnel", targets: ["funnel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // OpenBLAS through pkg-config; `make deps` installs libopenblas-dev when it is missing.
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .target(
            name: "Funnel",
            dependencies: ["COpenBLAS"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "funnel",
            dependencies: [
                "Funnel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "FunnelTests",
            dependencies: ["Funnel"],
            exclude: ["Fixtures"]
        ),
    ]
)
