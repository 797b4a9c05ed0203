import Foundation
import Testing
@testable import FlexSPCore

/// The shared contract fixtures (contract/cases.json), which the Python tests read too: both
/// halves must reach the same verdict on every cost model, plan and length file, name the same
/// field or line when they refuse one, and give the same numbers when they accept one.
@Suite struct ContractTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("contract")

    static func cases(_ kind: String) throws -> [[String: Any]] {
        let data = try Data(contentsOf: root.appendingPathComponent("cases.json"))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(object[kind] as? [[String: Any]])
    }

    static func file(_ entry: [String: Any]) throws -> Data {
        try Data(contentsOf: root.appendingPathComponent(try #require(entry["file"] as? String)))
    }

    static func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-9 * max(1, abs(b)) }

    @Test func costModels() throws {
        let entries = try Self.cases("cost_models")
        #expect(entries.count >= 20)
        for entry in entries {
            let name = entry["file"] as! String
            if entry["valid"] as! Bool {
                let model = try CostModel(json: Self.file(entry))
                for probe in entry["group_times"] as! [[String: Any]] {
                    let time = model.groupTime(lengths: probe["lengths"] as! [Int], degree: probe["degree"] as! Int)
                    #expect(Self.close(time, probe["ms"] as! Double), "\(name): \(probe)")
                }
                for probe in entry["capacities"] as! [[String: Any]] {
                    #expect(model.tokenCapacity(degree: probe["degree"] as! Int) == probe["tokens"] as! Int, "\(name): \(probe)")
                }
            } else {
                do {
                    _ = try CostModel(json: Self.file(entry))
                    Issue.record("\(name) was accepted")
                } catch {
                    #expect("\(error)".contains(entry["mentions"] as! String), "\(name): \(error)")
                }
            }
        }
    }

    @Test func plans() throws {
        let entries = try Self.cases("plans")
        #expect(entries.count >= 20)
        for entry in entries {
            let name = entry["file"] as! String
            var problems: [String]
            var plan: Plan?
            do {
                plan = try Plan(json: Self.file(entry))
                problems = Simulator.violations(in: plan!).map(\.description)
            } catch {
                problems = ["\(error)"]
            }
            if entry["valid"] as! Bool {
                #expect(problems.isEmpty, "\(name): \(problems)")
                if let plan {
                    #expect(Self.close(Simulator.stepTime(of: plan), entry["step_ms"] as! Double), "\(name)")
                    #expect(Self.close(plan.lowerBoundMS, entry["lower_bound_ms"] as! Double), "\(name)")
                }
            } else {
                #expect(problems.contains { $0.contains(entry["mentions"] as! String) }, "\(name): \(problems)")
            }
        }
    }

    @Test func lengthFiles() throws {
        let entries = try Self.cases("lengths")
        #expect(entries.count >= 15)
        for entry in entries {
            let name = entry["file"] as! String
            let text = String(decoding: try Self.file(entry), as: UTF8.self)
            if entry["valid"] as! Bool {
                #expect(try LengthFile.parse(text, source: name) == entry["lengths"] as! [Int], "\(name)")
            } else {
                do {
                    _ = try LengthFile.parse(text, source: name)
                    Issue.record("\(name) was accepted")
                } catch {
                    if let line = entry["line"] as? Int { #expect("\(error)".contains("\(name):\(line):"), "\(name): \(error)") }
                }
            }
        }
    }
}
