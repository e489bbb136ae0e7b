import Agent
import ArgumentParser
import Logging
import VaktpostCore
import VaktpostPosix

@main
struct Vaktpost: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vaktpost",
        abstract: "Edge agent for digital supervision: bed, door and fall sensors to the response platform.",
        discussion: "Configuration: \(ConfigFile.defaultPath) (see deploy/vaktpost.example.toml).",
        version: AgentInfo.version,
        subcommands: [ConfigCommand.self, VersionCommand.self]
    )
}

/// `--config` and `--json`, shared by every technician command.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The config file.", valueName: "FILE"))
    var config: String = ConfigFile.defaultPath

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with the configuration file.",
        subcommands: [Check.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a config file and print a summary or every error found.",
            discussion: "Exits 0 when the agent can start with the file, 1 when it cannot."
        )

        @OptionGroup var options: ConfigOptions

        @Flag(name: .long, help: "Skip checking that the certificate and key files exist (for a config prepared on another computer).")
        var noFiles = false

        func run() throws {
            let report = ConfigFile.check(path: options.config, checkFiles: !noFiles)
            if options.json {
                print(ConfigCheckOutput.json(report).serialized)
            } else {
                print(ConfigCheckOutput.text(report, now: WallTime(nanosecondsSinceEpoch: SystemClock.now())), terminator: "")
            }
            if !report.isValid { throw ExitCode(1) }
        }
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print the agent's version and the libraries it runs on."
    )

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        if json {
            print(AgentInfo.json.serialized)
            return
        }
        print("vaktpost \(AgentInfo.version)")
        for lib in AgentInfo.libraries {
            print("  \(lib.name): \(lib.version)\(lib.problem.map { "  PROBLEM: \($0)" } ?? "")")
        }
    }
}
