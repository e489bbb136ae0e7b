#if canImport(Glibc)
import Glibc
#endif
import VaktpostCore

// The agent's own command-line parser. swift-argument-parser pulled FoundationEssentials into
// the agent (for one JSON encoder and LocalizedError): 3.6 MB of a binary that issue 9 caps at
// 18 MB, on a box with an SD card. What technicians rely on is kept: `--help` and `help` on every
// command, `--version`, `--option value` and `--option=value`, defaults shown in the help, and a
// usage error (exit 64, EX_USAGE) that names what was wrong and where to read more.

/// One command of the tree: `vaktpost`, `vaktpost queue`, `vaktpost queue show`, ...
protocol Command {
    static var name: String { get }
    static var abstract: String { get }
    static var discussion: String { get }
    static var options: [OptionSpec] { get }
    static var arguments: [ArgumentSpec] { get }
    static var subcommands: [any Command.Type] { get }
    /// Runs when the command is given without one of its subcommands.
    static var defaultSubcommand: (any Command.Type)? { get }
    /// Reads the parsed values and checks them together; throws ValidationError for bad input.
    init(_ arguments: ParsedArguments) throws
    func run() async throws
}

extension Command {
    static var discussion: String { "" }
    static var options: [OptionSpec] { [] }
    static var arguments: [ArgumentSpec] { [] }
    static var subcommands: [any Command.Type] { [] }
    static var defaultSubcommand: (any Command.Type)? { nil }
}

/// A group of subcommands with nothing of its own to run: without a subcommand it shows its help.
protocol CommandGroup: Command {}

extension CommandGroup {
    init(_ arguments: ParsedArguments) throws { self.init() }
    init() { fatalError("a command group is never constructed") }
    func run() async throws {}
}

/// `--name VALUE` (or `--name=VALUE`), or a flag `--name`; `-x` as a short spelling.
struct OptionSpec: Sendable {
    let name: String
    let short: Character?
    /// What the value is called in the help (`FILE`, `HEX`); nil makes the option a flag.
    let valueName: String?
    let help: String
    /// Shown in the help as "(default: ...)"; nil: the option is optional, or required.
    let defaultText: String?
    let required: Bool
    let repeatable: Bool

    static func value(_ name: String, short: Character? = nil, _ valueName: String, _ help: String,
                      default defaultText: String? = nil, required: Bool = false, repeatable: Bool = false) -> OptionSpec {
        OptionSpec(name: name, short: short, valueName: valueName, help: help, defaultText: defaultText, required: required, repeatable: repeatable)
    }

    static func flag(_ name: String, _ help: String) -> OptionSpec {
        OptionSpec(name: name, short: nil, valueName: nil, help: help, defaultText: nil, required: false, repeatable: false)
    }

    var spelling: String { (short.map { "-\($0), " } ?? "") + "--\(name)" + (valueName.map { " <\($0)>" } ?? "") }
}

/// A positional argument (always required; the agent's commands take at most one).
struct ArgumentSpec: Sendable {
    let valueName: String
    let help: String
}

/// Bad input on the command line: printed with the command's usage, exit 64.
struct ValidationError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// Ends the process with this status after the command has said why.
struct ExitCode: Error {
    let status: Int32
    init(_ status: Int32) { self.status = status }
}

/// What the command line said, by option name. An option's default is its spec's `defaultText`,
/// so the help and the value the command gets cannot disagree.
struct ParsedArguments {
    private(set) var values: [String: [String]] = [:]
    private(set) var flags: Set<String> = []
    private(set) var positionals: [String] = []
    let defaults: [String: String]

    init(options: [OptionSpec]) {
        defaults = Dictionary(options.compactMap { o in o.defaultText.map { (o.name, $0) } }, uniquingKeysWith: { a, _ in a })
    }

    /// The value given, else the option's default (never nil for a required or defaulted option).
    func string(_ name: String) -> String? { given(name) ?? defaults[name] }
    /// Only what the command line said.
    func given(_ name: String) -> String? { values[name]?.last }
    func strings(_ name: String) -> [String] { values[name] ?? [] }
    func flag(_ name: String) -> Bool { flags.contains(name) }
    func positional(_ index: Int) -> String { positionals[index] }

    /// A number option (required or with a default): unreadable is a usage error that quotes it.
    func number<T: LosslessStringConvertible>(_ name: String) throws -> T {
        guard let text = string(name) else { throw ValidationError("Missing expected argument '--\(name)'") }
        guard let number = T(text) else { throw ValidationError("the value '\(text)' is not valid for --\(name): it must be a number") }
        return number
    }

    fileprivate mutating func add(_ name: String, _ value: String) { values[name, default: []].append(value) }
    fileprivate mutating func set(_ name: String) { flags.insert(name) }
    fileprivate mutating func append(_ positional: String) { positionals.append(positional) }
}

enum CommandLineParser {
    /// Parses `arguments` (without the program name) against the tree under `root` and runs the
    /// command it names. Never returns: exits with the command's status.
    static func main(_ root: any Command.Type, version: String, arguments: [String]) async -> Never {
        var path: [any Command.Type] = [root]
        var rest = arguments[...]
        // The subcommand path comes first: `vaktpost queue show --db x`.
        while let next = rest.first, let sub = path.last!.subcommands.first(where: { $0.name == next }) {
            path.append(sub)
            rest = rest.dropFirst()
        }
        if path.count == 1, rest.first == "help" {
            var helpPath: [any Command.Type] = [root]
            for word in rest.dropFirst() {
                guard let sub = helpPath.last!.subcommands.first(where: { $0.name == word }) else {
                    usageError("unknown command '\(word)'", path: helpPath)
                }
                helpPath.append(sub)
            }
            print(help(helpPath), terminator: "")
            exit(0)
        }
        if rest.contains("--help") || rest.contains("-h") {
            print(help(path), terminator: "")
            exit(0)
        }
        if path.count == 1, rest.first == "--version" {
            print(version)
            exit(0)
        }
        var command = path.last!
        if !command.subcommands.isEmpty {
            if let first = rest.first, !first.hasPrefix("-") {
                usageError("Unexpected argument '\(first)'" + suggestion(first, among: command.subcommands.map { $0.name }), path: path)
            }
            guard let fallback = command.defaultSubcommand else {
                if rest.isEmpty {
                    print(help(path), terminator: "")
                    exit(0)
                }
                usageError("say which \(path.map { $0.name }.joined(separator: " ")) command: \(command.subcommands.map { $0.name }.joined(separator: ", "))", path: path)
            }
            command = fallback
            path.append(fallback)
        }
        do {
            try await command.init(try parse(Array(rest), for: command)).run()
            exit(0)
        } catch let error as ValidationError {
            usageError(error.message, path: path)
        } catch let code as ExitCode {
            exit(code.status)
        } catch {
            printError("Error: \(error)")
            exit(1)
        }
    }

    static func parse(_ words: [String], for command: any Command.Type) throws -> ParsedArguments {
        var parsed = ParsedArguments(options: command.options)
        var i = 0
        var onlyPositionals = false
        while i < words.count {
            let word = words[i]
            i += 1
            if onlyPositionals || !word.hasPrefix("-") || word == "-" {
                guard parsed.positionals.count < command.arguments.count else {
                    throw ValidationError("Unexpected argument '\(word)'")
                }
                parsed.append(word)
                continue
            }
            if word == "--" {
                onlyPositionals = true
                continue
            }
            var name: Substring
            var inline: String? = nil
            let option: OptionSpec?
            if word.hasPrefix("--") {
                name = word.dropFirst(2)
                if let eq = name.firstIndex(of: "=") {
                    inline = String(name[name.index(after: eq)...])
                    name = name[..<eq]
                }
                option = command.options.first { $0.name == name }
            } else {
                let short = word.dropFirst()
                option = short.count == 1 ? command.options.first { $0.short == short.first } : nil
                name = short
            }
            guard let option else {
                throw ValidationError("Unknown option '\(word.split(separator: "=").first ?? "")'"
                                      + suggestion(String(name), among: command.options.map { $0.name }, prefix: "--"))
            }
            if option.valueName == nil {
                if inline != nil { throw ValidationError("--\(option.name) is a flag and takes no value") }
                parsed.set(option.name)
                continue
            }
            let value: String
            if let inline {
                value = inline
            } else {
                // A value may start with '-' only when it is a negative number; an option name is missing its value.
                guard i < words.count, !words[i].hasPrefix("-") || Double(words[i]) != nil else {
                    throw ValidationError("Missing value for '\(option.spelling)'")
                }
                value = words[i]
                i += 1
            }
            if !option.repeatable, parsed.given(option.name) != nil {
                throw ValidationError("--\(option.name) was given twice")
            }
            parsed.add(option.name, value)
        }
        for option in command.options where option.required && parsed.given(option.name) == nil {
            throw ValidationError("Missing expected argument '\(option.spelling)'")
        }
        if parsed.positionals.count < command.arguments.count {
            throw ValidationError("Missing expected argument '<\(command.arguments[parsed.positionals.count].valueName)>'")
        }
        return parsed
    }

    /// The help page of the last command of `path`, in the shape swift-argument-parser used.
    static func help(_ path: [any Command.Type]) -> String {
        let command = path.last!
        var text = "OVERVIEW: \(command.abstract)\n\n"
        if !command.discussion.isEmpty { text += command.discussion + "\n\n" }
        text += "USAGE: \(usage(path))\n\n"
        let column = 28
        func row(_ left: String, _ right: String) -> String {
            let pad = left.count + 2 < column ? String(repeating: " ", count: column - left.count - 2) : "\n" + String(repeating: " ", count: column)
            return "  \(left)\(pad)\(right)\n"
        }
        if !command.arguments.isEmpty {
            text += "ARGUMENTS:\n" + command.arguments.map { row("<\($0.valueName)>", $0.help) }.joined() + "\n"
        }
        text += "OPTIONS:\n"
        for option in command.options {
            let extra = option.defaultText.map { " (default: \($0))" } ?? (option.repeatable ? " (repeatable)" : "")
            text += row(option.spelling, option.help + extra)
        }
        if path.count == 1 { text += row("--version", "Show the version.") }
        text += row("-h, --help", "Show help information.")
        if !command.subcommands.isEmpty {
            text += "\nSUBCOMMANDS:\n"
            for sub in command.subcommands {
                text += row(sub.name + (command.defaultSubcommand.map { $0 == sub } ?? false ? " (default)" : ""), sub.abstract)
            }
            text += "\n  See '\(path[0].name) help \(path.dropFirst().map { $0.name + " " }.joined())<subcommand>' for detailed help.\n"
        }
        return text
    }

    static func usage(_ path: [any Command.Type]) -> String {
        let command = path.last!
        var words = path.map { $0.name }
        if !command.subcommands.isEmpty { words.append("<subcommand>") }
        for option in command.options {
            let spelled = "--\(option.name)" + (option.valueName.map { " <\($0)>" } ?? "") + (option.repeatable ? " ..." : "")
            words.append(option.required ? spelled : "[\(spelled)]")
        }
        words += command.arguments.map { "<\($0.valueName)>" }
        return words.joined(separator: " ")
    }

    private static func usageError(_ message: String, path: [any Command.Type]) -> Never {
        printError("Error: \(message)\nUsage: \(usage(path))\n  See '\(path.map { $0.name }.joined(separator: " ")) --help' for more information.")
        exit(64)  // EX_USAGE
    }

    /// ": did you mean 'config'?" for a near miss, as the config check says it.
    private static func suggestion(_ word: String, among names: [String], prefix: String = "") -> String {
        ConfigReader.suggestion(for: word, among: names).map { ": did you mean '\(prefix)\($0)'?" } ?? ""
    }
}

private func == (a: any Command.Type, b: any Command.Type) -> Bool { ObjectIdentifier(a) == ObjectIdentifier(b) }
