import Foundation

/// FNV-1a 64-bit checksums of model files and weights, as hex: a damaged or swapped file is
/// refused at load.
public enum Checksum {
    public static func fnv64Hex(_ data: Data) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        data.withUnsafeBytes { raw in
            for b in raw.bindMemory(to: UInt8.self) { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        }
        return String(format: "%016llx", h)
    }
}
