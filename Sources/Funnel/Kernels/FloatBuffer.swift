import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A fixed-size, 64-byte-aligned, contiguous Float array. Layers keep their weights, gradients
/// and activations in these so hot loops work on raw pointers with no copy-on-write checks
/// and no per-batch allocation.
public final class FloatBuffer {
    public let count: Int
    public let base: UnsafeMutablePointer<Float>

    /// Mapped from the kernel instead of the allocator (zero buffers of at least `lazyBytes`):
    /// its pages are zero until first written, so a large sparse table's Adam moments or row
    /// gradients cost memory and time only where rows are touched.
    private let mapped: Bool
    static let lazyBytes = 1 << 20

    public init(count: Int, value: Float = 0) {
        self.count = count
        let bytes = max(count, 1) * 4
        if value == 0, bytes >= Self.lazyBytes,
           let region = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), region != MAP_FAILED {
            mapped = true
            base = region.bindMemory(to: Float.self, capacity: max(count, 1))
            MappedBuffers.shared.add(region, bytes: bytes)
            return
        }
        mapped = false
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        base.initialize(repeating: value, count: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let s = src.baseAddress { base.update(from: s, count: values.count) }
        }
    }

    deinit {
        if mapped {
            MappedBuffers.shared.remove(UnsafeMutableRawPointer(base))
            munmap(base, max(count, 1) * 4)
        } else {
            base.deallocate()
        }
    }

    @inline(__always) public subscript(i: Int) -> Float {
        get { base[i] }
        set { base[i] = newValue }
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: base, count: count) }
    public var array: [Float] { Array(buffer) }

    public func zero() { base.update(repeating: 0, count: count) }
}

/// The live mapped buffers, so a memory plan can count what they will hold once written: their
/// untouched pages are not in the resident set yet (`ResourceUsage.committedMegabytes`), but a
/// gradient buffer or a scratch block is written on the first step, after the plan was made.
final class MappedBuffers: @unchecked Sendable {
    static let shared = MappedBuffers()
    private let lock = NSLock()
    private var regions: [UnsafeMutableRawPointer: Int] = [:]

    func add(_ region: UnsafeMutableRawPointer, bytes: Int) { lock.withLock { regions[region] = bytes } }
    func remove(_ region: UnsafeMutableRawPointer) { lock.withLock { _ = regions.removeValue(forKey: region) } }

    /// Bytes of the mapped buffers' pages not resident yet (`mincore`, one byte per page).
    var untouchedBytes: Int {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        return lock.withLock {
            regions.reduce(0) { total, r in
                let pages = (r.value + page - 1) / page
                var resident = [UInt8](repeating: 0, count: pages)
                guard mincore(r.key, r.value, &resident) == 0 else { return total + r.value }
                return total + resident.reduce(0) { $0 + ($1 & 1 == 0 ? page : 0) }
            }
        }
    }
}

/// Copies a short run of floats (an embedding row: a few dozen) inline. `update(from:count:)`
/// calls `memmove`, whose call overhead dominates at this size: the gather of a 2,000-row batch
/// makes 30,000 such copies.
@inline(__always)
func copyShort(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
    var i = 0
    while i + 8 <= n {
        UnsafeMutableRawPointer(dst + i).storeBytes(of: UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self),
                                                    as: SIMD8<Float>.self)
        i += 8
    }
    while i < n { dst[i] = src[i]; i += 1 }
}
