/// Pads `s` with spaces to `width` for the CLI's tables; `right` aligns it right.
func padded(_ s: String, _ width: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - s.count))
    return right ? fill + s : s + fill
}
