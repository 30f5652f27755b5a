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
        var offset = 0
        var entries: [(String, String)] = []
        for t in tensors {
            precondition(t.shape.reduce(1, *) == t.values.count, "shape does not match value count for \(t.name)")
            let bytes = t.values.count * 4
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
        var data = Data(capacity: 8 + header.utf8.count + offset)
        var n = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        for t in tensors {
            t.values.withUnsafeBufferPointer { b in
                // Funnel only runs on little-endian hosts (x86-64, arm64); the raw bytes are LE.
                data.append(UnsafeBufferPointer(start: UnsafeRawPointer(b.baseAddress!).assumingMemoryBound(to: UInt8.self), count: b.count * 4))
            }
        }
        return data
    }

    /// Decodes and validates: header bounds, JSON, dtype, shape × 4 = byte length, offsets inside
    /// the file. Every problem is a `FunnelError` naming `path`, never a crash.
    public static func decode(_ data: Data, path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        func fail(_ why: String) -> FunnelError { FunnelError("\(path): not a valid safetensors file: \(why)") }
        guard data.count >= 8 else { throw fail("only \(data.count) bytes") }
        let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard n > 1, n <= UInt64(data.count - 8), n < 100_000_000 else { throw fail("header length \(n) does not fit the file (\(data.count) bytes)") }
        let headerData = data.subdata(in: 8..<(8 + Int(n)))
        guard let obj = try? JSONSerialization.jsonObject(with: headerData), let header = obj as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        let body = data.subdata(in: (8 + Int(n))..<data.count)
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let info = value as? [String: Any],
                  let dtype = info["dtype"] as? String,
                  let shape = (info["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  let offs = (info["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  offs.count == 2 else { throw fail("tensor '\(name)' has a malformed entry") }
            guard dtype == "F32" else { throw fail("tensor '\(name)' has dtype \(dtype); Funnel reads F32") }
            guard shape.allSatisfy({ $0 >= 0 }), offs[0] >= 0, offs[0] <= offs[1], offs[1] <= body.count else {
                throw fail("tensor '\(name)' lies outside the data (offsets \(offs), data \(body.count) bytes)")
            }
            // Sizes from the file are checked without overflow: a hostile shape is an error, not a trap.
            var count = 1
            for d in shape {
                let (m, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow, m <= body.count / 4 else { throw fail("tensor '\(name)': shape \(shape) does not fit the data") }
                count = m
            }
            guard count * 4 == offs[1] - offs[0] else {
                throw fail("tensor '\(name)': shape \(shape) needs \(count * 4) bytes, offsets give \(offs[1] - offs[0])")
            }
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { dst in
                body.withUnsafeBytes { src in
                    dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offs[0]..<offs[1]]))
                }
            }
            tensors[name] = Tensor(name: name, shape: shape, values: values)
        }
        return (tensors, metadata)
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
