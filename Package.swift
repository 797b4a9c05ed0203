// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "FlexSP",
    products: [
        .executable(name: "flexsp", targets: ["flexsp"]),
        .library(name: "FlexSPCore", targets: ["FlexSPCore"]),
        .library(name: "FlexSPPlanner", targets: ["FlexSPPlanner"]),
        .library(name: "FlexSPRender", targets: ["FlexSPRender"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // COIN-OR CBC's C API, for the `milp` reference strategy (Debian: coinor-libcbc-dev).
        .systemLibrary(
            name: "CCbc",
            path: "Sources/CCbc",
            pkgConfig: "cbc",
            providers: [.apt(["coinor-libcbc-dev"])]
        ),
        // COIN-OR CLP's C API, for the thorough lower bound's linear programs (Debian:
        // coinor-libclp-dev, which coinor-libcbc-dev already brings).
        .systemLibrary(
            name: "CClp",
            path: "Sources/CClp",
            pkgConfig: "clp",
            providers: [.apt(["coinor-libclp-dev"])]
        ),
        // Cost model, workloads, plans and the simulator: pure values, no I/O.
        .target(name: "FlexSPCore"),
        // Blaster, bucketing, our solver, the MILP reference and the baselines.
        .target(name: "FlexSPPlanner", dependencies: ["FlexSPCore", "CCbc", "CClp"]),
        // Pictures of plans and comparisons as SVG strings: pure, no I/O.
        .target(name: "FlexSPRender", dependencies: ["FlexSPCore", "FlexSPPlanner"]),
        // The command line and the plan service: thin shells around the libraries.
        .executableTarget(
            name: "flexsp",
            dependencies: [
                "FlexSPCore", "FlexSPPlanner", "FlexSPRender",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "FlexSPCoreTests", dependencies: ["FlexSPCore"]),
        .testTarget(name: "FlexSPPlannerTests", dependencies: ["FlexSPPlanner", "FlexSPCore"]),
        .testTarget(name: "FlexSPRenderTests", dependencies: ["FlexSPRender", "FlexSPPlanner", "FlexSPCore"]),
    ]
)
