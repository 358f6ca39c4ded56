using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EnvoyAuthz.Tests.Infrastructure;

/// <summary>
/// A small real HTTP server on 127.0.0.1 and a free port, for the stand-ins tests talk to (an
/// issuer's JWKS, OPA's Data API, Airflow's REST API, a bundle server, an echo backend).
/// </summary>
internal static class LoopbackServer
{
    /// <summary>Starts a server whose endpoints <paramref name="map"/> adds; returns it with its base URL (no trailing slash).</summary>
    public static async Task<(WebApplication App, string BaseUrl)> StartAsync(Action<WebApplication> map)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().UseUrls("http://127.0.0.1:0");
        builder.Services.AddRouting();
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.UseRouting();
        map(app);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return (app, address.TrimEnd('/'));
    }
}
