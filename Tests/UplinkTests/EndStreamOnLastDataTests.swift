import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing
@testable import vaktpost_receiver

/// The receiver's frames, as a client sees them: the stream ends on the frame that completes
/// the content-length, and only then.
@Suite struct EndStreamOnLastDataTests {
    enum Frame: Equatable {
        case head(endStream: Bool)
        case data(bytes: Int, endStream: Bool)
    }

    func sent(_ writes: [HTTP2Frame.FramePayload]) throws -> [Frame] {
        let channel = EmbeddedChannel(handler: EndStreamOnLastData())
        for payload in writes { try channel.writeOutbound(payload) }
        var frames: [Frame] = []
        while let payload: HTTP2Frame.FramePayload = try channel.readOutbound() {
            switch payload {
            case .headers(let h): frames.append(.head(endStream: h.endStream))
            case .data(let d): frames.append(.data(bytes: d.data.readableBytes, endStream: d.endStream))
            default: Issue.record("unexpected frame \(payload)")
            }
        }
        return frames
    }

    func head(_ length: Int?, endStream: Bool = false) -> HTTP2Frame.FramePayload {
        var fields: HPACKHeaders = [":status": endStream ? "204" : "200"]
        if let length { fields.add(name: "content-length", value: String(length)) }
        return .headers(.init(headers: fields, endStream: endStream))
    }

    func data(_ bytes: Int, endStream: Bool = false) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(ByteBuffer(repeating: 0x41, count: bytes)), endStream: endStream))
    }

    @Test func theLastBodyFrameEndsTheStreamAndTheCodecsEmptyEndIsDropped() throws {
        #expect(try sent([head(5), data(5), data(0, endStream: true)]) == [.head(endStream: false), .data(bytes: 5, endStream: true)])
    }

    @Test func aBodyInSeveralFramesEndsOnTheOneThatCompletesIt() throws {
        #expect(try sent([head(6), data(3), data(3), data(0, endStream: true)])
                == [.head(endStream: false), .data(bytes: 3, endStream: false), .data(bytes: 3, endStream: true)])
    }

    @Test func withoutALengthNothingChanges() throws {
        #expect(try sent([head(nil), data(5), data(0, endStream: true)])
                == [.head(endStream: false), .data(bytes: 5, endStream: false), .data(bytes: 0, endStream: true)])
    }

    @Test func aResponseWithoutBodyBytesKeepsItsOwnEnd() throws {
        // HEAD: a length, no body.
        #expect(try sent([head(5), data(0, endStream: true)]) == [.head(endStream: false), .data(bytes: 0, endStream: true)])
        #expect(try sent([head(nil, endStream: true)]) == [.head(endStream: true)])
    }
}
