import Foundation

/// Element-wise activations as forward/backward pairs over raw buffers.
public enum ReLU {
    // Sixteen lanes at a time: the scalar loops compile to compare-and-branch code (Swift's `max`
    // keeps NaN, and two pointers may alias), which cost more than the GEMMs' epilogue deserves.
    // Each lane computes exactly the scalar expression, so results are bit-identical.
    private typealias V = SIMD16<Float>

    /// In place: x ← max(x, 0) (Swift's `max(x, 0)`: `0 >= x ? 0 : x`, so −0 → +0 and NaN stays NaN).
    @inline(__always)
    public static func forward(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(x + i).storeBytes(of: v.replacing(with: 0, where: v .<= 0), as: V.self)
            i += 16
        }
        while i < count { x[i] = max(x[i], 0); i += 1 }
    }

    /// dx ← dy · 1[y > 0], in place on `dy`, given the forward output `y`.
    @inline(__always)
    public static func backward(output y: UnsafePointer<Float>, gradient dy: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            let g = UnsafeRawPointer(dy + i).loadUnaligned(as: V.self)
            let out = UnsafeRawPointer(y + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(dy + i).storeBytes(of: g.replacing(with: 0, where: .!(out .> 0)), as: V.self)
            i += 16
        }
        while i < count { dy[i] = y[i] > 0 ? dy[i] : 0; i += 1 }
    }
}

public enum Sigmoid {
    /// Numerically stable σ(z) in Double.
    @inline(__always)
    public static func value(_ z: Double) -> Double {
        z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z))
    }

    @inline(__always)
    public static func value(_ z: Float) -> Float {
        z >= 0 ? 1 / (1 + expf(-z)) : expf(z) / (1 + expf(z))
    }

    public static func forward(_ z: UnsafePointer<Float>, count: Int, into p: UnsafeMutablePointer<Float>) {
        for i in 0..<count { p[i] = value(z[i]) }
    }

    /// dz = dp · p(1 − p).
    public static func backward(output p: UnsafePointer<Float>, dp: UnsafePointer<Float>, count: Int,
                                into dz: UnsafeMutablePointer<Float>) {
        for i in 0..<count { dz[i] = dp[i] * p[i] * (1 - p[i]) }
    }

    /// log σ(z) = −softplus(−z), stable for any z.
    @inline(__always)
    public static func logValue(_ z: Double) -> Double {
        z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z))
    }
}
