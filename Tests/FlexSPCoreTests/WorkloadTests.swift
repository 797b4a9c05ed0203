import Testing
@testable import FlexSPCore

@Suite struct WorkloadTests {
    @Test func parsesOneLengthPerLine() throws {
        #expect(try LengthFile.parse("12\n 7 \n\n3\n", source: "f.txt") == [12, 7, 3])
    }

    @Test func badLinesNameFileAndLine() {
        #expect(throws: WorkloadError.badLine(source: "f.txt", line: 2, text: "12x")) {
            try LengthFile.parse("5\n12x\n", source: "f.txt")
        }
        #expect(throws: WorkloadError.nonPositiveLength(source: "f.txt", line: 3, value: 0)) {
            try LengthFile.parse("5\n6\n0\n", source: "f.txt")
        }
        #expect(throws: WorkloadError.nonPositiveLength(source: "f.txt", line: 1, value: -4)) {
            try LengthFile.parse("-4\n", source: "f.txt")
        }
        #expect(throws: WorkloadError.empty(source: "f.txt")) { try LengthFile.parse("\n\n", source: "f.txt") }
        #expect(throws: WorkloadError.badLine(source: "f.txt", line: 1, text: "1.5")) {
            try LengthFile.parse("1.5", source: "f.txt")
        }
        let message = WorkloadError.badLine(source: "f.txt", line: 2, text: "12x").description
        #expect(message.contains("f.txt:2"))
    }

    @Test func referenceRulePadsDropsAndBatches() throws {
        // World 4: pad to multiples of 8, drop above 100 - 8 = 92.
        let rule = Workload.Rule.reference(maxContext: 100, worldSize: 4)
        let workload = try Workload(lengths: [1, 8, 9, 93, 92, 50, 7], source: "f", batchSize: 2, rule: rule)
        #expect(workload.dropped == 1)
        #expect(workload.lengths == [8, 8, 16, 96, 56, 8])
        #expect(workload.batchCount == 3)
        #expect(workload.batch(1) == [16, 96])
        #expect(throws: WorkloadError.notEnoughBatches(source: "f", requested: 4, available: 3, batchSize: 2, dropped: 1)) {
            try workload.requireBatches(4)
        }
        #expect(throws: WorkloadError.nothingLeft(source: "f", dropped: 1, maxLength: 92)) {
            try Workload(lengths: [200], source: "f", batchSize: 2, rule: rule)
        }
    }
}
