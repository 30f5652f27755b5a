import Foundation

/// Weighted binary cross-entropy on a logit: ℓ = w·(softplus(z) − y·z), the stable form of
/// −w·[y log σ(z) + (1−y) log(1−σ(z))]. The sum is divided by `normalizer` (the batch size,
/// as PyTorch's `BCEWithLogitsLoss(reduction: mean)` does, also with weights).
public enum LogitCrossEntropy {
    /// Returns the normalised loss and writes (or adds, with `accumulate`) dℓ/dz into `dLogits`.
    @discardableResult
    public static func forwardBackward(
        logits z: UnsafePointer<Float>, labels y: UnsafePointer<Float>, weights w: UnsafePointer<Float>?,
        count: Int, normalizer: Double, dLogits: UnsafeMutablePointer<Float>, accumulate: Bool = false
    ) -> Double {
        var total = 0.0
        let scale = 1 / normalizer
        for i in 0..<count {
            let zi = Double(z[i]), yi = Double(y[i])
            let wi = w.map { Double($0[i]) } ?? 1
            let softplus = zi > 0 ? zi + log1p(exp(-zi)) : log1p(exp(zi))
            total += wi * (softplus - yi * zi)
            let g = Float(wi * (Sigmoid.value(zi) - yi) * scale)
            dLogits[i] = accumulate ? dLogits[i] + g : g
        }
        return total * scale
    }
}

/// Cross-entropy of a product of two sigmoids, ESMM's CTCVR loss: p = σ(a)·σ(b) (pCTR × pCVR),
/// ℓ = −w·[y log p + (1−y) log(1−p)]. Gradients reach both logits:
/// dℓ/da = w(p − y)(1 − σ(a))/(1 − p), dℓ/db = w(p − y)(1 − σ(b))/(1 − p).
/// 1 − p is floored at 1e-7 so the gradient stays finite when both towers saturate.
public enum ProductCrossEntropy {
    @discardableResult
    public static func forwardBackward(
        logitsA a: UnsafePointer<Float>, logitsB b: UnsafePointer<Float>, labels y: UnsafePointer<Float>,
        weights w: UnsafePointer<Float>?, count: Int, normalizer: Double,
        dA: UnsafeMutablePointer<Float>, dB: UnsafeMutablePointer<Float>, accumulate: Bool = false
    ) -> Double {
        var total = 0.0
        let scale = 1 / normalizer
        for i in 0..<count {
            let za = Double(a[i]), zb = Double(b[i]), yi = Double(y[i])
            let wi = w.map { Double($0[i]) } ?? 1
            let sa = Sigmoid.value(za), sb = Sigmoid.value(zb)
            let p = sa * sb
            let oneMinusP = max(1 - p, 1e-7)
            let logP = Sigmoid.logValue(za) + Sigmoid.logValue(zb)
            total += -wi * (yi * logP + (1 - yi) * log(oneMinusP))
            let common = wi * (p - yi) / oneMinusP * scale
            let ga = Float(common * (1 - sa)), gb = Float(common * (1 - sb))
            if accumulate { dA[i] += ga; dB[i] += gb } else { dA[i] = ga; dB[i] = gb }
        }
        return total * scale
    }
}

/// AITM's behavioural expectation calibrator: α·w·max(σ(lower) − σ(upper), 0), penalising a
/// conversion probability above the click probability it must not exceed.
public enum LabelConstraint {
    @discardableResult
    public static func forwardBackward(
        upper a: UnsafePointer<Float>, lower b: UnsafePointer<Float>, weights w: UnsafePointer<Float>?, count: Int,
        alpha: Double, normalizer: Double, dUpper: UnsafeMutablePointer<Float>, dLower: UnsafeMutablePointer<Float>
    ) -> Double {
        var total = 0.0
        let scale = alpha / normalizer
        for i in 0..<count {
            let pa = Sigmoid.value(Double(a[i])), pb = Sigmoid.value(Double(b[i]))
            guard pb > pa else { continue }
            let wi = w.map { Double($0[i]) } ?? 1
            total += wi * (pb - pa)
            dLower[i] += Float(scale * wi * pb * (1 - pb))
            dUpper[i] -= Float(scale * wi * pa * (1 - pa))
        }
        return total * scale
    }
}

/// The doubly robust CVR risk with an imputation tower (Wang et al., ICML 2019, DR-JL's risk and
/// imputation loss, here in one objective as Multi-DR and ESCM²-DR train jointly). Per row, with
/// o = click, p̂ the stopped propensity, z the CVR logit, r the conversion, r̃ = σ(t) the imputed
/// conversion (t the imputation logit), e = CE(r, σ(z)) the observed error (clicked rows) and
/// ê = CE(r̃, σ(z)) = softplus(z) − r̃·z the imputed one:
///
///     ℓ = w·[ ê + o(e − ê)/p̂ ]  +  κ·w·o(e − ê)²/p̂
///
/// The first term is the DR estimate of the entire-space CVR error — every impression, clicked or
/// not, pulls pCVR towards its imputed conversion, corrected on the clicked ones — and trains the
/// CVR tower with r̃ held constant; the second is the imputation's own loss and trains the
/// imputation tower with z held constant (there e − ê = (r̃ − r)·z). The held values are the
/// batch's (`Batch.imputedConversion`, `.stoppedCVRLogit`: taken at the first loss of a fill),
/// so finite differences of this function are what the gradients below are:
/// dℓ/dz = w·[(σ(z) − r̃)(1 − o/p̂) + (o/p̂)(σ(z) − r)],
/// dℓ/dt = 2κ·w·(o/p̂)·(r̃ − r)·z²·σ(t)(1 − σ(t)).
/// dℓ/dz is written into `dCVR`, or added with `accumulate` (after ESMM's losses); dℓ/dt is written.
public enum DoublyRobustRisk {
    @discardableResult
    public static func forwardBackward(
        cvrLogits z: UnsafePointer<Float>, imputationLogits t: UnsafePointer<Float>, heldImputed rh: UnsafePointer<Float>,
        heldCVRLogits zh: UnsafePointer<Float>, conversion r: UnsafePointer<Float>, clicked o: UnsafePointer<Float>,
        inversePropensity ip: UnsafePointer<Float>, weights w: UnsafePointer<Float>, count: Int, normalizer: Double,
        imputationWeight kappa: Double, scale lambda: Double,
        dCVR: UnsafeMutablePointer<Float>, dImputation: UnsafeMutablePointer<Float>, accumulate: Bool = false
    ) -> Double {
        var total = 0.0
        let scale = lambda / normalizer
        for i in 0..<count {
            let zi = Double(z[i]), ri = Double(r[i]), oi = Double(o[i]) * Double(ip[i]), wi = Double(w[i])
            let held = Double(rh[i]), zHeld = Double(zh[i]), imputed = Sigmoid.value(Double(t[i]))
            let e = softplus(zi) - ri * zi, eHat = softplus(zi) - held * zi
            let gap = (imputed - ri) * zHeld  // e − ê at the held CVR logit, the imputation's live
            total += wi * (eHat + oi * (e - eHat) + kappa * oi * gap * gap)
            let p = Sigmoid.value(zi)
            let g = Float(scale * wi * ((p - held) * (1 - oi) + oi * (p - ri)))
            dCVR[i] = accumulate ? dCVR[i] + g : g
            dImputation[i] = Float(scale * wi * 2 * kappa * oi * gap * zHeld * imputed * (1 - imputed))
        }
        return total * scale
    }
}

/// DCMT's counterfactual CVR risk (Zhu et al., ICDE 2023, E^DCMT): a twin of CVR towers, the
/// factual one (z, pCVR = σ(z)) trained on the clicked impressions weighted by the inverse
/// propensity, the counterfactual one (u, pCVR* = σ(u)) trained on the unclicked impressions,
/// weighted by the inverse of their propensity not to be clicked, towards non-conversion — and a
/// soft constraint that the two are complements. Per row, with o = click, r = conversion, p̂ the
/// stopped propensity, c the clip, a = o / max(p̂, c), b = (1 − o) / max(1 − p̂, c):
///
///     ℓ = w·[ a·CE(r, σ(z)) + b·CE(1 − r, σ(u)) + λ₁·|1 − σ(z) − σ(u)| ]
///
/// With s = sign(1 − σ(z) − σ(u)) (0 at the kink):
/// dℓ/dz = w·[a(σ(z) − r) − λ₁·s·σ(z)(1 − σ(z))],
/// dℓ/du = w·[b(σ(u) − 1 + r) − λ₁·s·σ(u)(1 − σ(u))].
/// The clip floors both propensities, so no weight exceeds 1/c on either side. dℓ/dz is written
/// into `dFactual`, or added with `accumulate` (after ESMM's losses); dℓ/du is written.
public enum CounterfactualTwinRisk {
    @discardableResult
    public static func forwardBackward(
        factualLogits z: UnsafePointer<Float>, counterfactualLogits u: UnsafePointer<Float>, conversion r: UnsafePointer<Float>,
        clicked o: UnsafePointer<Float>, propensity p: UnsafePointer<Float>, clip: Float, weights w: UnsafePointer<Float>,
        count: Int, normalizer: Double, constraintWeight lambda1: Double, scale: Double,
        dFactual: UnsafeMutablePointer<Float>, dCounterfactual: UnsafeMutablePointer<Float>, accumulate: Bool = false
    ) -> Double {
        var total = 0.0
        let k = scale / normalizer
        for i in 0..<count {
            let zi = Double(z[i]), ui = Double(u[i]), ri = Double(r[i]), oi = Double(o[i]), wi = Double(w[i])
            let a = oi / Double(max(p[i], clip)), b = (1 - oi) / Double(max(1 - p[i], clip))
            let pz = Sigmoid.value(zi), pu = Sigmoid.value(ui), gap = 1 - pz - pu
            let factual = softplus(zi) - ri * zi, counterfactual = softplus(ui) - (1 - ri) * ui
            total += wi * (a * factual + b * counterfactual + lambda1 * abs(gap))
            let sign: Double = gap > 0 ? 1 : (gap < 0 ? -1 : 0)
            let g = Float(k * wi * (a * (pz - ri) - lambda1 * sign * pz * (1 - pz)))
            dFactual[i] = accumulate ? dFactual[i] + g : g
            dCounterfactual[i] = Float(k * wi * (b * (pu - 1 + ri) - lambda1 * sign * pu * (1 - pu)))
        }
        return total * k
    }
}

/// log(1 + eˣ) without overflow: the cross-entropy of a logit, CE(r, σ(z)) = softplus(z) − r·z.
private func softplus(_ x: Double) -> Double { x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) }
