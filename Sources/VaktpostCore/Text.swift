extension String {
    /// The directory a file path names its file in: "." for a bare name, "/" for one in the root.
    public var parentDirectory: String {
        guard let slash = lastIndex(of: "/") else { return "." }
        return slash == startIndex ? "/" : String(self[..<slash])
    }
}

extension StringProtocol {
    /// Without leading and trailing whitespace. `isWhitespace`, not a list of characters: in
    /// Swift "\r\n" is one Character, which comparisons with "\r" or "\n" never match.
    public func trimmingWhitespace() -> SubSequence {
        var s = self[...]
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return s
    }
}
