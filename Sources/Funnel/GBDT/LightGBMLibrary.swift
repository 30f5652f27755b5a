import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// LightGBM's C API, loaded at run time from the `lib_lightgbm.so` of the `lightgbm` PyPI wheel.
///
/// Why `dlopen` rather than a link-time dependency: the neural part of Funnel must build and run
/// on machines without LightGBM, and the wheel is the one LightGBM build every CI machine here can
/// install (`python3 -m pip install lightgbm`). The library is looked up, in order, at
/// `$FUNNEL_LIGHTGBM_LIB`, on the dynamic loader's path, and in the `lightgbm` package of
/// `python3` (asked once).
public final class LightGBMLibrary: @unchecked Sendable {
    public typealias Handle = UnsafeMutableRawPointer

    public static let installHint = "install it with `python3 -m pip install lightgbm==\(pinnedVersion)` (or `make deps`), "
        + "or set FUNNEL_LIGHTGBM_LIB to the path of lib_lightgbm.so"
    /// The version the project's install script pins and the parity test was run against.
    public static let pinnedVersion = "4.7.0"

    public let path: String
    private let handle: UnsafeMutableRawPointer

    typealias GetLastError = @convention(c) () -> UnsafePointer<CChar>?
    typealias DatasetCreateFromMat = @convention(c) (
        UnsafeRawPointer?, Int32, Int32, Int32, Int32, UnsafePointer<CChar>?, Handle?,
        UnsafeMutablePointer<Handle?>?) -> Int32
    typealias DatasetSetField = @convention(c) (Handle?, UnsafePointer<CChar>?, UnsafeRawPointer?, Int32, Int32) -> Int32
    typealias DatasetSetFeatureNames = @convention(c) (Handle?, UnsafeMutablePointer<UnsafePointer<CChar>?>?, Int32) -> Int32
    typealias Free = @convention(c) (Handle?) -> Int32
    typealias BoosterCreate = @convention(c) (Handle?, UnsafePointer<CChar>?, UnsafeMutablePointer<Handle?>?) -> Int32
    typealias BoosterLoadModelFromString = @convention(c) (
        UnsafePointer<CChar>?, UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Handle?>?) -> Int32
    typealias BoosterAddValidData = @convention(c) (Handle?, Handle?) -> Int32
    typealias BoosterUpdateOneIter = @convention(c) (Handle?, UnsafeMutablePointer<Int32>?) -> Int32
    typealias BoosterGetEval = @convention(c) (Handle?, Int32, UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Double>?) -> Int32
    typealias BoosterGetInt = @convention(c) (Handle?, UnsafeMutablePointer<Int32>?) -> Int32
    typealias BoosterSaveModelToString = @convention(c) (
        Handle?, Int32, Int32, Int32, Int64, UnsafeMutablePointer<Int64>?, UnsafeMutablePointer<CChar>?) -> Int32
    typealias BoosterPredictForMat = @convention(c) (
        Handle?, UnsafeRawPointer?, Int32, Int32, Int32, Int32, Int32, Int32, Int32, UnsafePointer<CChar>?,
        UnsafeMutablePointer<Int64>?, UnsafeMutablePointer<Double>?) -> Int32
    typealias BoosterFeatureImportance = @convention(c) (Handle?, Int32, Int32, UnsafeMutablePointer<Double>?) -> Int32
    typealias NetworkInitWithFunctions = @convention(c) (Int32, Int32, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int32
    typealias NetworkFree = @convention(c) () -> Int32
    typealias GetSampleCount = @convention(c) (Int32, UnsafePointer<CChar>?, UnsafeMutablePointer<Int32>?) -> Int32
    typealias SampleIndices = @convention(c) (Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?) -> Int32
    typealias DatasetCreateFromSampledColumn = @convention(c) (
        UnsafeMutablePointer<UnsafeMutablePointer<Double>?>?, UnsafeMutablePointer<UnsafeMutablePointer<Int32>?>?, Int32,
        UnsafePointer<Int32>?, Int32, Int32, Int64, UnsafePointer<CChar>?, UnsafeMutablePointer<Handle?>?) -> Int32
    typealias DatasetPushRows = @convention(c) (Handle?, UnsafeRawPointer?, Int32, Int32, Int32, Int32) -> Int32

    let getLastError: GetLastError
    let datasetCreateFromMat: DatasetCreateFromMat
    let getSampleCount: GetSampleCount
    let sampleIndices: SampleIndices
    let datasetCreateFromSampledColumn: DatasetCreateFromSampledColumn
    let datasetPushRows: DatasetPushRows
    let datasetSetField: DatasetSetField
    let datasetSetFeatureNames: DatasetSetFeatureNames
    let datasetFree: Free
    let boosterCreate: BoosterCreate
    let boosterLoadModelFromString: BoosterLoadModelFromString
    let boosterFree: Free
    let boosterAddValidData: BoosterAddValidData
    let boosterUpdateOneIter: BoosterUpdateOneIter
    let boosterGetEval: BoosterGetEval
    let boosterGetEvalCounts: BoosterGetInt
    let boosterGetCurrentIteration: BoosterGetInt
    let boosterGetNumFeature: BoosterGetInt
    let boosterSaveModelToString: BoosterSaveModelToString
    let boosterPredictForMat: BoosterPredictForMat
    let boosterFeatureImportance: BoosterFeatureImportance
    let networkInitWithFunctions: NetworkInitWithFunctions
    let networkFree: NetworkFree

    /// C API constants (LightGBM's c_api.h).
    static let dtypeFloat32: Int32 = 0
    static let dtypeFloat64: Int32 = 1
    static let predictNormal: Int32 = 0

    private init(path: String, handle: UnsafeMutableRawPointer) throws {
        self.path = path
        self.handle = handle
        func symbol<T>(_ name: String, _: T.Type) throws -> T {
            guard let p = dlsym(handle, name) else {
                throw FunnelError("\(path): symbol \(name) not found; this is not a LightGBM 4.x library (\(LightGBMLibrary.installHint))")
            }
            return unsafeBitCast(p, to: T.self)
        }
        getLastError = try symbol("LGBM_GetLastError", GetLastError.self)
        datasetCreateFromMat = try symbol("LGBM_DatasetCreateFromMat", DatasetCreateFromMat.self)
        getSampleCount = try symbol("LGBM_GetSampleCount", GetSampleCount.self)
        sampleIndices = try symbol("LGBM_SampleIndices", SampleIndices.self)
        datasetCreateFromSampledColumn = try symbol("LGBM_DatasetCreateFromSampledColumn", DatasetCreateFromSampledColumn.self)
        datasetPushRows = try symbol("LGBM_DatasetPushRows", DatasetPushRows.self)
        datasetSetField = try symbol("LGBM_DatasetSetField", DatasetSetField.self)
        datasetSetFeatureNames = try symbol("LGBM_DatasetSetFeatureNames", DatasetSetFeatureNames.self)
        datasetFree = try symbol("LGBM_DatasetFree", Free.self)
        boosterCreate = try symbol("LGBM_BoosterCreate", BoosterCreate.self)
        boosterLoadModelFromString = try symbol("LGBM_BoosterLoadModelFromString", BoosterLoadModelFromString.self)
        boosterFree = try symbol("LGBM_BoosterFree", Free.self)
        boosterAddValidData = try symbol("LGBM_BoosterAddValidData", BoosterAddValidData.self)
        boosterUpdateOneIter = try symbol("LGBM_BoosterUpdateOneIter", BoosterUpdateOneIter.self)
        boosterGetEval = try symbol("LGBM_BoosterGetEval", BoosterGetEval.self)
        boosterGetEvalCounts = try symbol("LGBM_BoosterGetEvalCounts", BoosterGetInt.self)
        boosterGetCurrentIteration = try symbol("LGBM_BoosterGetCurrentIteration", BoosterGetInt.self)
        boosterGetNumFeature = try symbol("LGBM_BoosterGetNumFeature", BoosterGetInt.self)
        boosterSaveModelToString = try symbol("LGBM_BoosterSaveModelToString", BoosterSaveModelToString.self)
        boosterPredictForMat = try symbol("LGBM_BoosterPredictForMat", BoosterPredictForMat.self)
        boosterFeatureImportance = try symbol("LGBM_BoosterFeatureImportance", BoosterFeatureImportance.self)
        networkInitWithFunctions = try symbol("LGBM_NetworkInitWithFunctions", NetworkInitWithFunctions.self)
        networkFree = try symbol("LGBM_NetworkFree", NetworkFree.self)
    }

    /// Turns a non-zero return code into an error carrying LightGBM's own message.
    func check(_ code: Int32, _ what: String) throws {
        guard code != 0 else { return }
        let message = getLastError().map { String(cString: $0) } ?? "unknown error"
        throw FunnelError("LightGBM \(what): \(message)")
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cached: Result<LightGBMLibrary, FunnelError>?

    /// The process-wide library, loaded on first use. Errors name the install command.
    public static func shared() throws -> LightGBMLibrary {
        lock.lock()
        defer { lock.unlock() }
        if let cached { return try cached.get() }
        let result: Result<LightGBMLibrary, FunnelError>
        do { result = .success(try load()) } catch let e as FunnelError { result = .failure(e) } catch {
            result = .failure(FunnelError("\(error)"))
        }
        cached = result
        return try result.get()
    }

    /// Opens one specific library file (what `FUNNEL_LIGHTGBM_LIB` names).
    public static func open(path: String, origin: String = "") throws -> LightGBMLibrary {
        guard let h = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown reason"
            throw FunnelError("LightGBM not found: \(origin)\(path) cannot be loaded (\(why)); \(installHint)")
        }
        return try LightGBMLibrary(path: path, handle: h)
    }

    private static func load() throws -> LightGBMLibrary {
        if let explicit = ProcessInfo.processInfo.environment["FUNNEL_LIGHTGBM_LIB"], !explicit.isEmpty {
            return try open(path: explicit, origin: "FUNNEL_LIGHTGBM_LIB=")
        }
        if let h = dlopen("lib_lightgbm.so", RTLD_NOW | RTLD_LOCAL) {
            return try LightGBMLibrary(path: "lib_lightgbm.so", handle: h)
        }
        var tried: [String] = []
        for candidate in pythonPackageCandidates() {
            tried.append(candidate)
            guard FileManager.default.fileExists(atPath: candidate) else { continue }
            if let h = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) { return try LightGBMLibrary(path: candidate, handle: h) }
            let why = dlerror().map { String(cString: $0) } ?? "unknown reason"
            throw FunnelError("LightGBM found at \(candidate) but cannot be loaded (\(why)); \(installHint)")
        }
        throw FunnelError("LightGBM not found (looked on the loader path\(tried.isEmpty ? "" : " and at " + tried.joined(separator: ", "))); \(installHint)")
    }

    /// Where `python3`'s `lightgbm` package keeps its library (empty when python3 or the package is missing).
    /// Every `python3` on PATH is asked in turn (mpirun puts its own prefix first on its ranks'
    /// PATH, which can hide the interpreter that has the package).
    private static func pythonPackageCandidates() -> [String] {
        var seen = Set<String>()
        let pythons = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/python3" }
            .filter { FileManager.default.isExecutableFile(atPath: $0) }
            .filter { seen.insert((try? FileManager.default.destinationOfSymbolicLink(atPath: $0)) ?? $0).inserted }
        for python in pythons.prefix(8) {
            let found = pythonPackageCandidate(python)
            if !found.isEmpty { return found }
        }
        return []
    }

    private static func pythonPackageCandidate(_ python: String) -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c",
                             "import importlib.util,os;s=importlib.util.find_spec('lightgbm');"
                             + "print(os.path.join(os.path.dirname(s.origin),'lib','lib_lightgbm.so') if s else '')"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return [] }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return [] }
        let path = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return path.isEmpty ? [] : [path]
    }
}
