import Foundation
import KronosBundle
import KronosCheckpoint
import KronosTestSupport
import Testing

/// Nothing lost: a conversion killed with SIGKILL in the middle of writing leaves the previous bundle
/// intact; its temporary file is removed by the next conversion to the same target.
@Suite(.serialized, .enabled(if: sharedReferenceAvailable, Comment(rawValue: sharedReferenceMissing))) struct KillTests
{
    @Test func sigkillMidWriteKeepsThePreviousBundle() throws {
        let dir = temporaryDirectory("kill")
        let out = dir + "/m.kq"
        let mini = [
            "--tokenizer", sharedReference + "/mini/tokenizer", "--predictor", sharedReference + "/mini/predictor",
        ]
        #expect(try run("kronos-convert", mini + ["--quantize", "q8", "-o", out]).status == 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: out))
        var killedMidWrite = false
        for attempt in 0..<20 where !killedMidWrite {
            let p = Process()
            p.executableURL = productsDirectory(containing: "kronos-convert").appendingPathComponent("kronos-convert")
            p.arguments =
                mini + ["--quantize", "q4", "--q4-search-steps", "16", "-o", out, "--force", "--threads", "1"]
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            // Wait until the temporary file exists and has data, then kill.
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                let temps =
                    (try? FileManager.default.contentsOfDirectory(atPath: dir))?.filter { $0.contains(".tmp-") } ?? []
                if let t = temps.first,
                    let size = (try? FileManager.default.attributesOfItem(atPath: dir + "/" + t))?[.size] as? Int,
                    size > 64 + attempt * 1000
                {
                    kill(p.processIdentifier, SIGKILL)
                    killedMidWrite = true
                    break
                }
                if !p.isRunning { break }
                usleep(200)
            }
            p.waitUntilExit()
        }
        try #require(killedMidWrite, "never caught the writer mid-write")
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == before, "previous bundle changed")
        #expect(try BundleReader(path: out).manifest.settings.quantize == "q8")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
        #expect(leftovers.count == 1, "the killed writer's temporary file: \(leftovers)")
        // The next conversion removes the dead writer's temporary file.
        #expect(try run("kronos-convert", mini + ["--quantize", "q8", "-o", out, "--force"]).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }.isEmpty)
    }

    @Test func sigintRemovesTheTemporaryFile() throws {
        let dir = temporaryDirectory("int")
        let p = Process()
        p.executableURL = productsDirectory(containing: "kronos-convert").appendingPathComponent("kronos-convert")
        p.arguments = [
            "--tokenizer", sharedReference + "/mini/tokenizer", "--predictor", sharedReference + "/mini/predictor",
            "--quantize", "q4", "--q4-search-steps", "16", "--threads", "1", "-o", dir + "/m.kq",
        ]
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(20)
        var sent = false
        while Date() < deadline && p.isRunning {
            if (try? FileManager.default.contentsOfDirectory(atPath: dir))?.contains(where: { $0.contains(".tmp-") })
                == true
            {
                kill(p.processIdentifier, SIGINT); sent = true; break
            }
            usleep(200)
        }
        p.waitUntilExit()
        try #require(sent)
        #expect(p.terminationStatus == 130)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }
}
