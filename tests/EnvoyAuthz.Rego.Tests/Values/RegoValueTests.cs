namespace EnvoyAuthz.Rego.Tests.Values;

public sealed class RegoValueTests
{
    [Fact]
    public void IntegerAndDecimal_AreEqualWithSameHash()
    {
        var a = RegoJson.Parse("1");
        var b = RegoJson.Parse("1.0");
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
    }

    [Fact]
    public void BigIntegers_StayExact()
    {
        var v = RegoJson.Parse("123456789012345678901234567890");
        Assert.Equal("123456789012345678901234567890", v.ToJson());
    }

    [Fact]
    public void CanonicalOrder_FollowsTypeThenContent()
    {
        var values = new RegoValue[]
        {
            RegoSet.From(RegoValue.From(1)), RegoObject.Empty, RegoArray.From(), RegoValue.From("a"),
            RegoValue.From(2), RegoValue.True, RegoValue.False, RegoValue.Null,
        };
        var sorted = values.OrderBy(v => v).Select(v => v.Kind).ToArray();
        Assert.Equal([RegoValueKind.Null, RegoValueKind.Boolean, RegoValueKind.Boolean, RegoValueKind.Number, RegoValueKind.String, RegoValueKind.Array, RegoValueKind.Object, RegoValueKind.Set], sorted);
    }

    [Fact]
    public void Set_WritesAsSortedJsonArray()
    {
        var s = RegoSet.From(RegoValue.From(3), RegoValue.From(1), RegoValue.From(2), RegoValue.From(1));
        Assert.Equal("[1,2,3]", s.ToJson());
    }

    [Fact]
    public void ObjectBuilder_LastValueWinsAndKeysSorted()
    {
        var o = new RegoObject.Builder(3).Add("b", RegoValue.From(1)).Add("a", RegoValue.From(2)).Add("b", RegoValue.From(3)).Build();
        Assert.Equal("{\"a\":2,\"b\":3}", o.ToJson());
        Assert.True(o.TryGetValue("b", out var v));
        Assert.Equal(RegoValue.From(3), v);
    }

    [Fact]
    public void NonStringObjectKeys_WrittenAsJsonText()
    {
        var o = new RegoObject.Builder().Add(RegoValue.From(1), RegoValue.True).Build();
        Assert.Equal("{\"1\":true}", o.ToJson());
    }

    [Theory]
    [InlineData("0.1", "0.1")]
    [InlineData("1e2", "100")]
    [InlineData("-2.50", "-2.5")]
    public void NumberParsing_NormalisesText(string json, string printed)
    {
        Assert.Equal(printed, RegoJson.Parse(json).ToString());
    }

    [Fact]
    public void DeepJson_IsRejectedNotCrashing()
    {
        var deep = new string('[', 5000) + new string(']', 5000);
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => RegoJson.Parse(deep));
    }
}
