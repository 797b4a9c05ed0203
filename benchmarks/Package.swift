// swift-tools-version:6.1
// The benchmarks: a package of their own, so that `make test` at the repository root never
// builds them. `make bench` (at the root) regenerates REPORT.md and charts/; `swift package
// benchmark` runs the solver's hot-path microbenchmarks (ordo-one/benchmark).
import PackageDescription

let package = Package(
    name: "FlexSPBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "FlexSP", path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Regenerates REPORT.md and charts/: the paper's evaluation in simulation and the solver study.
        .executableTarget(
            name: "flexsp-bench",
            dependencies: [
                .product(name: "FlexSPCore", package: "FlexSP"),
                .product(name: "FlexSPPlanner", package: "FlexSP"),
                .product(name: "FlexSPRender", package: "FlexSP"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The solver's hot path under ordo-one/benchmark: `swift package benchmark`.
        .executableTarget(
            name: "SolverHotPath",
            dependencies: [
                .product(name: "FlexSPCore", package: "FlexSP"),
                .product(name: "FlexSPPlanner", package: "FlexSP"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/SolverHotPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
