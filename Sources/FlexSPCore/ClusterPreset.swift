/// A GPU cluster whose measurements ship with FlexSP.
public struct ClusterPreset: Hashable, Sendable {
    public var name: String
    public var worldSize: Int
    public var gpusPerNode: Int
    /// Per-GPU memory the planner may use (MB).
    public var memoryBudgetMB: Double
    /// Effective per-GPU all-to-all bandwidth by degree (GB/s), up to the preset's world size.
    public var a2aBandwidthGBps: [Int: Double]
    public var source: String
}

extension ClusterPreset {
    public static let all: [ClusterPreset] = [a100_40g_8x8]

    /// 8 nodes x 8 A100-40GB, NVLink inside a node, 400 Gbps InfiniBand between nodes, with the
    /// paper's 30 GB solver budget (docs/PAPER.md section 2).
    public static let a100_40g_8x8 = ClusterPreset(
        name: "a100-40g-8x8", worldSize: 64, gpusPerNode: 8, memoryBudgetMB: 30_720,
        a2aBandwidthGBps: [2: 119.54, 4: 104.07, 8: 96.5, 16: 10.33, 32: 5.94, 64: 4.87],
        source: "FlexSP reference code (PAPER.md section 2)")

    public static func named(_ name: String) throws(CostModelError) -> ClusterPreset {
        guard let preset = all.first(where: { $0.name == name.lowercased() }) else {
            throw .unknownPreset(kind: "cluster", name: name, known: all.map(\.name))
        }
        return preset
    }

    /// Bandwidths for a cluster of `worldSize` GPUs built from the same nodes and network:
    /// degrees beyond the measured ones cross nodes the same way, so they reuse the widest
    /// measured inter-node figure.
    public func bandwidths(worldSize: Int) -> [Int: Double] {
        let widest = a2aBandwidthGBps.max { $0.key < $1.key }!
        var result: [Int: Double] = [:]
        var d = 2
        while d <= worldSize {
            result[d] = a2aBandwidthGBps[d] ?? widest.value
            d *= 2
        }
        return result
    }
}
