import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Raw loopback sockets, for what URLSession will not send (partial heads, stalled bodies,
/// connections held open).
enum Loopback {
    /// A socket connected to 127.0.0.1:`port` with `bytes` sent (the caller closes it).
    static func connect(port: Int, sending bytes: String = "", file: StaticString = #filePath, line: UInt = #line) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        XCTAssertEqual(ok, 0, "connect to 127.0.0.1:\(port)", file: file, line: line)
        if !bytes.isEmpty { _ = bytes.withCString { send(fd, $0, strlen($0), 0) } }
        return fd
    }
}
