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
