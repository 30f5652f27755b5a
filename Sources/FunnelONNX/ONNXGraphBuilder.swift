import Foundation
import Funnel
import SwiftProtobuf

/// Builds an ONNX graph (`Onnx_GraphProto`, generated from ONNX's own `onnx.proto` by
/// swift-protobuf) node by node: unique value names, weights as initializers (raw little-endian
/// bytes), small constants deduplicated, and the graph's inputs and outputs with their types.
final class ONNXGraphBuilder {
    enum ElementType: Int32 {
        case float = 1, int64 = 7, string = 8, bool = 9
    }

    /// A tensor dimension: fixed, or named and dynamic (the batch).
    enum Dimension {
        case fixed(Int)
        case named(String)
    }

    private(set) var graph = Onnx_GraphProto()
    private var used: Set<String> = []
    private var constants: [String: String] = [:]

    init(name: String) { graph.name = name }

    /// A fresh value name from `hint` (made unique with a counter).
    func fresh(_ hint: String) -> String {
        var name = hint, k = 1
        while used.contains(name) { k += 1; name = "\(hint)_\(k)" }
        used.insert(name)
        return name
    }

    // MARK: Inputs, outputs, initializers

    func input(_ name: String, _ type: ElementType, _ dims: [Dimension]) {
        precondition(!used.contains(name), "graph input \(name) named twice")
        used.insert(name)
        graph.input.append(valueInfo(name, type, dims))
    }

    func output(_ name: String, _ type: ElementType, _ dims: [Dimension]) {
        graph.output.append(valueInfo(name, type, dims))
    }

    private func valueInfo(_ name: String, _ type: ElementType, _ dims: [Dimension]) -> Onnx_ValueInfoProto {
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = type.rawValue
        var shape = Onnx_TensorShapeProto()
        shape.dim = dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            switch d {
            case .fixed(let n): dim.dimValue = Int64(n)
            case .named(let s): dim.dimParam = s
            }
            return dim
        }
        tensor.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = tensor
        var info = Onnx_ValueInfoProto()
        info.name = name
        info.type = type
        return info
    }

    /// A float initializer (weights), stored as raw bytes.
    func weights(_ hint: String, _ values: [Float], dims: [Int]) -> String {
        precondition(values.count == dims.reduce(1, *), "\(hint): \(values.count) values for dims \(dims)")
        var t = Onnx_TensorProto()
        t.name = fresh(hint)
        t.dims = dims.map(Int64.init)
        t.dataType = ElementType.float.rawValue
        t.rawData = values.withUnsafeBytes { Data($0) }
        graph.initializer.append(t)
        return t.name
    }

    /// An int64 initializer.
    func int64s(_ hint: String, _ values: [Int64], dims: [Int]? = nil) -> String {
        var t = int64Tensor(values, dims: dims)
        t.name = fresh(hint)
        graph.initializer.append(t)
        return t.name
    }

    /// An unnamed int64 tensor (an initializer's body, or a node attribute's value).
    func int64Tensor(_ values: [Int64], dims: [Int]? = nil) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.dims = (dims ?? [values.count]).map(Int64.init)
        t.dataType = ElementType.int64.rawValue
        t.rawData = values.withUnsafeBytes { Data($0) }
        return t
    }

    /// A small float constant, shared by every node that uses the same value and shape.
    func constant(_ values: [Float], dims: [Int]) -> String {
        let key = "f\(dims):\(values.map { $0.bitPattern })"
        if let name = constants[key] { return name }
        let name = weights("const", values, dims: dims)
        constants[key] = name
        return name
    }

    /// A small int64 constant (axes, shapes), shared.
    func constant(int64s values: [Int64]) -> String {
        let key = "i:\(values)"
        if let name = constants[key] { return name }
        let name = int64s("const", values)
        constants[key] = name
        return name
    }

    // MARK: Nodes

    /// Adds a node; returns its outputs' names.
    @discardableResult
    func node(_ op: String, _ inputs: [String], outputs: Int = 1, hint: String? = nil, domain: String = "",
              attributes: [Onnx_AttributeProto] = [], names: [String]? = nil) -> [String] {
        var n = Onnx_NodeProto()
        n.opType = op
        n.domain = domain
        n.input = inputs
        n.output = names ?? (0..<outputs).map { _ in fresh(hint ?? op.lowercased()) }
        n.name = fresh("node_" + (hint ?? op.lowercased()))
        n.attribute = attributes
        graph.node.append(n)
        return n.output
    }

    /// A one-output node.
    func op(_ op: String, _ inputs: String..., hint: String? = nil, domain: String = "",
            attributes: [Onnx_AttributeProto] = []) -> String {
        node(op, inputs, hint: hint, domain: domain, attributes: attributes)[0]
    }

    // MARK: Attributes

    static func attribute(_ name: String, int value: Int) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .int
        a.i = Int64(value)
        return a
    }

    static func attribute(_ name: String, float value: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .float
        a.f = value
        return a
    }

    static func attribute(_ name: String, ints values: [Int64]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .ints
        a.ints = values
        return a
    }

    static func attribute(_ name: String, strings values: [String]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .strings
        a.strings = values.map { Data($0.utf8) }
        return a
    }

    static func attribute(_ name: String, tensor: Onnx_TensorProto) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .tensor
        a.t = tensor
        return a
    }
}
