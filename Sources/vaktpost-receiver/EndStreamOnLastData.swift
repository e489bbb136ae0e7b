import NIOCore
import NIOHPACK
import NIOHTTP2

/// Ends an HTTP/2 response's stream on the DATA frame that completes its `content-length`.
///
/// NIO's HTTP/2 codec sends a response's end as an empty DATA frame of its own, after the body.
/// libcurl 7.88 (Debian 12's, the agent's) finishes a transfer as soon as it has the
/// content-length's bytes and, when the end of stream has not arrived by then, resets the stream
/// (RST_STREAM, STREAM_CLOSED): one reset per request. swift-nio-http2 counts every reset it
/// receives against its rapid-reset defence and closes the connection (GOAWAY,
/// ENHANCE_YOUR_CALM) after 200 of them in 30 s, which caught every ~200th hub request in flight.
/// nginx and Go's server end the stream on the last DATA frame; so does the receiver now.
final class EndStreamOnLastData: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// Body bytes still to come before the response is complete; nil when the length is unknown.
    private var remaining: Int?
    private var ended = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .headers(let headers) where !ended:
            // The response head (a 1xx head is followed by another one; trailers have no length).
            remaining = headers.headers.first(name: "content-length").flatMap { Int($0) }
            ended = headers.endStream
        case .data(var frame) where !ended:
            let bytes = frame.data.readableBytes
            if frame.endStream {
                ended = true
            } else if let left = remaining, bytes > 0, bytes >= left {
                frame.endStream = true
                ended = true
                remaining = 0
                context.write(wrapOutboundOut(.data(frame)), promise: promise)
                return
            } else if let left = remaining {
                remaining = left - bytes
            }
        case .data(let frame) where ended && frame.endStream && frame.data.readableBytes == 0:
            // The codec's own end, already sent on the last body frame.
            promise?.succeed()
            return
        default:
            break
        }
        context.write(data, promise: promise)
    }

    /// Puts the handler under the HTTP/2 codec of each stream channel; a no-op on HTTP/1.1
    /// connections, which get the same stream handlers from Hummingbird.
    final class Installer: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = NIOAny

        func handlerAdded(context: ChannelHandlerContext) {
            guard (try? context.channel.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID)) != nil else { return }
            do { try context.pipeline.syncOperations.addHandler(EndStreamOnLastData(), position: .first) } catch { context.fireErrorCaught(error) }
        }
    }
}
