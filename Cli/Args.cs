using System.Globalization;

namespace Autograd.Cli;

/// <summary>Thrown for wrong command-line arguments: printed with the usage, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>Minimal parser: <c>--name value</c> options, <c>--flag</c> switches and positionals, each option checked against
/// the command's list so a typo is an error rather than silently ignored.</summary>
public sealed class Args
{
    private readonly Dictionary<string, string> options = [];
    private readonly HashSet<string> flags = [];

    /// <summary>Arguments that are not options.</summary>
    public List<string> Positionals { get; } = [];

    /// <summary>Parses <paramref name="args"/> for a command that knows <paramref name="valued"/> options and <paramref name="switches"/>.</summary>
    public Args(string command, IEnumerable<string> args, string[] valued, string[] switches)
    {
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            var a = list[i];
            if (!a.StartsWith("--", StringComparison.Ordinal)) { Positionals.Add(a); continue; }
            if (switches.Contains(a)) { flags.Add(a); continue; }
            if (!valued.Contains(a)) throw new UsageException($"{command}: unknown option {a}");
            if (i + 1 >= list.Count) throw new UsageException($"{command}: option {a} needs a value");
            options[a] = list[++i];
        }
        Command = command;
    }

    /// <summary>The command name, for messages.</summary>
    public string Command { get; }

    /// <summary>Whether a switch was given.</summary>
    public bool Has(string flag) => flags.Contains(flag);

    /// <summary>A string option, or the default.</summary>
    public string? Str(string name, string? dflt = null) => options.GetValueOrDefault(name, dflt!);

    /// <summary>An integer option within [min, max].</summary>
    public int Int(string name, int dflt, int min = int.MinValue, int max = int.MaxValue)
    {
        if (!options.TryGetValue(name, out var s)) return dflt;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) || v < min || v > max)
            throw new UsageException($"{Command}: {name} must be an integer{(min > int.MinValue ? $" >= {min}" : "")}, got '{s}'");
        return v;
    }

    /// <summary>A positive number option.</summary>
    public double? Double(string name)
    {
        if (!options.TryGetValue(name, out var s)) return null;
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !(v > 0))
            throw new UsageException($"{Command}: {name} must be a positive number, got '{s}'");
        return v;
    }

    /// <summary>An option restricted to <paramref name="allowed"/> values.</summary>
    public string Choice(string name, string dflt, params string[] allowed)
    {
        var v = Str(name, dflt)!;
        if (!allowed.Contains(v)) throw new UsageException($"{Command}: {name} must be one of {string.Join(", ", allowed)}, got '{v}'");
        return v;
    }
}
