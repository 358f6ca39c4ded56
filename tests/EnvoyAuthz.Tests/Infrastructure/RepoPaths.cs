namespace EnvoyAuthz.Tests.Infrastructure;

/// <summary>Paths inside the repository checkout, found from the test binaries.</summary>
internal static class RepoPaths
{
    public static string Root { get; } = Find();

    public static string Of(params string[] parts) => Path.Combine([Root, .. parts]);

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EnvoyAuthz.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("EnvoyAuthz.sln not found above " + AppContext.BaseDirectory);
    }
}
