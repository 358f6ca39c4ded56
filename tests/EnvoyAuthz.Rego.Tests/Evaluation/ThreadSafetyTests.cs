namespace EnvoyAuthz.Rego.Tests.Evaluation;

public sealed class ThreadSafetyTests
{
    [Fact]
    public async Task ManyThreads_SharingOnePolicy_GetConsistentResults()
    {
        var p = EvaluatorTests.Compile(
            "package x\n\nroles := {\"alice\": [\"admin\"], \"bob\": [\"dev\"]}\n\n" +
            "allow if \"admin\" in roles[input.user]\n\n" +
            "denied contains u if { some u, _ in roles; not allowed_user(u) }\n\nallowed_user(u) if \"admin\" in roles[u]\n");
        var tasks = Enumerable.Range(0, 16).Select(t => Task.Run(() =>
        {
            for (int i = 0; i < 500; i++)
            {
                var user = (i + t) % 2 == 0 ? "alice" : "bob";
                var r = p.Evaluate("data.x.allow", new RegoObject.Builder().Add("user", RegoValue.From(user)).Build());
                Assert.Equal(user == "alice", r.IsDefined);
                Assert.Equal("[\"bob\"]", p.Evaluate("data.x.denied", null).Value!.ToJson());
            }
        }, TestContext.Current.CancellationToken)).ToArray();
        await Task.WhenAll(tasks);
    }
}
