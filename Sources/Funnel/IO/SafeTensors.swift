import Foundation

/// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
/// header length, a JSON header mapping each tensor name to dtype, shape and byte offsets, then
/// the raw little-endian data. Funnel writes F32 only, tensors in the given order, keys in the
/// header sorted, so equal weights give equal bytes.
public enum SafeTensors {
    public struct Tensor: Equatable {
        public var name: String
        public var shape: [Int]
        public var values: [Float]
        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name; self.shape = shape; self.values = values
        }
    }

    public static func encode(_ tensors: [Tensor], metadata: [String: String] = [:]) -> Data {
        for t in tensors { precondition(t.shape.reduce(1, *) == t.values.count, "shape does not match value count for \(t.name)") }
        let head = header(tensors.map { ($0.name, $0.shape) }, metadata: metadata)
        var data = Data(capacity: head.count + tensors.reduce(0) { $0 + $1.values.count * 4 })
        data.append(contentsOf: head)
        for t in tensors {
            t.values.withUnsafeBufferPointer { b in
                // Funnel only runs on little-endian hosts (x86-64, arm64); the raw bytes are LE.
                data.append(UnsafeBufferPointer(start: UnsafeRawPointer(b.baseAddress!).assumingMemoryBound(to: UInt8.self), count: b.count * 4))
            }
        }
        return data
    }

    /// The file's first bytes for F32 tensors of these names and shapes, whose data follows in
    /// this order: the header's length, then its JSON (entries by name, padded to 8 bytes). What
    /// a writer that streams the tensors' bytes afterwards (`ShardedWeightsWriter`) starts with.
    public static func header(_ tensors: [(name: String, shape: [Int])], metadata: [String: String] = [:]) -> [UInt8] {
        var offset = 0
        var entries: [(String, String)] = []
        for t in tensors {
            let bytes = t.shape.reduce(1, *) * 4
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append((t.name, "{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + bytes)]}"))
            offset += bytes
        }
        if !metadata.isEmpty {
            let m = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
            entries.append(("__metadata__", "{\(m)}"))
        }
        entries.sort { $0.0 < $1.0 }
        var header = "{" + entries.map { "\(jsonString($0.0)):\($0.1)" }.joined(separator: ",") + "}"
        while (8 + header.utf8.count) % 8 != 0 { header += " " }
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        return out + Array(header.utf8)
    }

    /// Decodes and validates as the reference implementation does: header bounds, JSON, unique
    /// names, dtype, integer shapes with no negative dimension, shape × 4 = byte length, and
    /// offsets that tile the data exactly (no overlap, no gap, no wrap). Every problem is a
    /// `FunnelError` naming `path`, never a crash.
    public static func decode(_ data: Data, path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        func fail(_ why: String) -> FunnelError { FunnelError("\(path): not a valid safetensors file: \(why)") }
        guard data.count >= 8 else { throw fail("only \(data.count) bytes") }
        let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard n > 1, n <= UInt64(data.count - 8), n < 100_000_000 else { throw fail("header length \(n) does not fit the file (\(data.count) bytes)") }
        let headerData = data.subdata(in: 8..<(8 + Int(n)))
        guard let obj = try? JSONSerialization.jsonObject(with: headerData), let header = obj as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        if let dup = duplicateKey(in: headerData) { throw fail("tensor '\(dup)' is named twice in the header") }
        let body = data.subdata(in: (8 + Int(n))..<data.count)
        var entries: [(name: String, shape: [Int], range: Range<Int>)] = []
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            let entry = try parseEntry(name, value, bodyBytes: body.count, fail: fail)
            entries.append((name, entry.shape, entry.range))
        }
        // The tensors' byte ranges, in offset order, must cover the data exactly once.
        var expected = 0
        for e in entries.sorted(by: { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }) {
            guard e.range.lowerBound == expected else {
                throw fail(e.range.lowerBound < expected ? "tensor '\(e.name)' overlaps another tensor's bytes (offsets \(e.range))"
                           : "bytes \(expected)..<\(e.range.lowerBound) of the data belong to no tensor")
            }
            expected = e.range.upperBound
        }
        guard expected == body.count else { throw fail("bytes \(expected)..<\(body.count) of the data belong to no tensor") }
        var tensors: [String: Tensor] = [:]
        for e in entries {
            var values = [Float](repeating: 0, count: e.range.count / 4)
            values.withUnsafeMutableBytes { dst in
                body.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[e.range])) }
            }
            tensors[e.name] = Tensor(name: e.name, shape: e.shape, values: values)
        }
        return (tensors, metadata)
    }

    /// One tensor's header entry: F32, an integer shape without negative dimensions whose
    /// element count × 4 is its offsets' span, offsets integers inside the data.
    private static func parseEntry(_ name: String, _ value: Any, bodyBytes: Int, fail: (String) -> FunnelError) throws
        -> (shape: [Int], range: Range<Int>)
    {
        guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
              let rawShape = info["shape"] as? [Any], let rawOffsets = info["data_offsets"] as? [Any], rawOffsets.count == 2 else {
            throw fail("tensor '\(name)' has a malformed entry")
        }
        guard dtype == "F32" else { throw fail("tensor '\(name)' has dtype \(dtype); Funnel reads F32") }
        guard let shape = integers(rawShape) else { throw fail("tensor '\(name)': shape \(rawShape) is not a list of integers") }
        if let d = shape.first(where: { $0 < 0 }) { throw fail("tensor '\(name)': shape \(shape) has a negative dimension (\(d))") }
        guard let offs = integers(rawOffsets) else { throw fail("tensor '\(name)': data_offsets \(rawOffsets) are not two integers") }
        guard offs[0] >= 0, offs[0] <= offs[1], offs[1] <= bodyBytes else {
            throw fail("tensor '\(name)' lies outside the data (offsets \(offs), data \(bodyBytes) bytes)")
        }
        // Sizes from the file are checked without overflow: a hostile shape is an error, not a trap.
        var count = 1
        for d in shape {
            let (m, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, m <= bodyBytes / 4 else { throw fail("tensor '\(name)': shape \(shape) does not fit the data") }
            count = m
        }
        guard count * 4 == offs[1] - offs[0] else {
            throw fail("tensor '\(name)': shape \(shape) needs \(count * 4) bytes, offsets give \(offs[1] - offs[0])")
        }
        return (shape, offs[0]..<offs[1])
    }

    /// JSON numbers that are exact integers within Int's range (not booleans, not 1.5, not 2⁶⁴).
    static func integers(_ values: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in values {
            guard let n = v as? NSNumber, String(cString: n.objCType) != "c" else { return nil }  // "c": a JSON boolean
            let d = n.doubleValue
            guard d.rounded() == d, abs(d) < 9.0e15, Double(n.int64Value) == d else { return nil }
            out.append(Int(n.int64Value))
        }
        return out
    }

    /// The first key that appears twice at the top level of a JSON object (JSONSerialization
    /// keeps the last silently, so two tensors of one name would pass unnoticed). A linear scan
    /// with a depth counter: no recursion, whatever the nesting.
    static func duplicateKey(in json: Data) -> String? {
        var seen = Set<String>()
        var depth = 0, i = 0, expectKey = false
        let b = [UInt8](json)
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                var j = i + 1
                while j < b.count && b[j] != UInt8(ascii: "\"") { j += b[j] == UInt8(ascii: "\\") ? 2 : 1 }
                if depth == 1 && expectKey {
                    let literal = Data(b[i...min(j, b.count - 1)])
                    if let key = try? JSONSerialization.jsonObject(with: literal, options: .fragmentsAllowed) as? String,
                       !seen.insert(key).inserted { return key }
                    expectKey = false
                }
                i = j + 1
                continue
            }
            switch c {
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1; expectKey = depth == 1 && c == UInt8(ascii: "{")
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            case UInt8(ascii: ","): if depth == 1 { expectKey = true }
            default: break
            }
            i += 1
        }
        return nil
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}
