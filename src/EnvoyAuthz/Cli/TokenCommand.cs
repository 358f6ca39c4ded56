using EnvoyAuthz.Identity;

namespace EnvoyAuthz.Cli;

/// <summary><c>envoy-authz token</c>: mints a token signed with the dev-mode key.</summary>
public static class TokenCommand
{
    /// <summary>Runs the verb.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var cli = CliArgs.Parse(args, flags: [], options: ["--sub", "--groups", "--scopes", "--ttl", "--key", "--client-id"]);
        var ttlText = cli.Option("--ttl") ?? "1h";
        if (!TryParseDuration(ttlText, out var ttl) || ttl <= TimeSpan.Zero || ttl > TimeSpan.FromDays(1))
        {
            throw new CliUsageException($"--ttl '{ttlText}' must be a duration like 30s, 15m, 1h (at most 24h)");
        }
        static List<string> Split(string? v, char sep) => v is null ? [] : [.. v.Split(sep, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
        try
        {
            var token = DevSigningKey.Mint(cli.Option("--key") ?? DevSigningKey.DefaultPath, cli.Option("--sub") ?? "dev-user",
                Split(cli.Option("--groups"), ','), Split(cli.Option("--scopes"), ' '), ttl, cli.Option("--client-id"));
            stdout.WriteLine(token);
            return 0;
        }
        catch (FileNotFoundException ex)
        {
            stderr.WriteLine("envoy-authz token: " + ex.Message);
            return 1;
        }
    }

    /// <summary>Parses <c>30s</c>, <c>15m</c>, <c>2h</c>, <c>1d</c>.</summary>
    public static bool TryParseDuration(string s, out TimeSpan value)
    {
        value = default;
        if (s.Length < 2 || !int.TryParse(s[..^1], out var n))
        {
            return false;
        }
        value = s[^1] switch
        {
            's' => TimeSpan.FromSeconds(n),
            'm' => TimeSpan.FromMinutes(n),
            'h' => TimeSpan.FromHours(n),
            'd' => TimeSpan.FromDays(n),
            _ => TimeSpan.MinValue,
        };
        return value != TimeSpan.MinValue;
    }
}
