using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace EnvoyAuthz.IntegrationTests.Infrastructure;

/// <summary>
/// A real nginx (Debian package) on 127.0.0.1 in front of an echo backend, asking EnvoyAuthz with
/// <c>auth_request</c> before every request and forwarding <c>x-authz-subject</c> upstream. Tests skip,
/// saying why, when nginx is not installed — and fail under <c>CI=true</c> (<see cref="ExternalComponent"/>).
/// </summary>
public sealed class NginxServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly WebApplication _backend;
    private readonly string _dir;

    private NginxServer(Process process, WebApplication backend, string dir, int port)
    {
        _process = process;
        _backend = backend;
        _dir = dir;
        Url = $"http://127.0.0.1:{port}";
    }

    /// <summary>nginx's URL.</summary>
    public string Url { get; }

    /// <summary>Starts nginx asking <paramref name="authzHttpPort"/>.</summary>
    public static async Task<NginxServer> StartAsync(int authzHttpPort)
    {
        var binary = new[] { "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx" }.FirstOrDefault(File.Exists);
        if (binary is null)
        {
            ExternalComponent.Missing("nginx", "apt-get install nginx; .ci/run installs it");
        }
        var backend = await StartEchoBackendAsync();
        var backendPort = new Uri(backend.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
        var port = FreePort();
        var dir = Directory.CreateTempSubdirectory("envoy-authz-nginx-").FullName;
        File.WriteAllText(Path.Combine(dir, "nginx.conf"), $$"""
            daemon off;
            master_process off;
            worker_processes 1;
            pid {{dir}}/nginx.pid;
            error_log {{dir}}/error.log warn;
            events { worker_connections 64; }
            http {
              access_log off;
              client_body_temp_path {{dir}}/body;
              proxy_temp_path {{dir}}/proxy;
              fastcgi_temp_path {{dir}}/fastcgi;
              uwsgi_temp_path {{dir}}/uwsgi;
              scgi_temp_path {{dir}}/scgi;
              server {
                listen 127.0.0.1:{{port}};
                location / {
                  auth_request /_authz;
                  auth_request_set $authz_subject $upstream_http_x_authz_subject;
                  auth_request_set $authz_groups $upstream_http_x_authz_groups;
                  proxy_set_header X-Authz-Subject $authz_subject;
                  proxy_set_header X-Authz-Groups $authz_groups;
                  proxy_pass http://127.0.0.1:{{backendPort}};
                }
                location = /_authz {
                  internal;
                  proxy_pass http://127.0.0.1:{{authzHttpPort}}/authz/nginx;
                  proxy_pass_request_body off;
                  proxy_set_header Content-Length "";
                  proxy_set_header X-Original-URI $request_uri;
                  proxy_set_header X-Original-Method $request_method;
                  proxy_set_header X-Original-Host $host;
                  proxy_set_header X-Original-Proto $scheme;
                  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                }
              }
            }
            """);
        var process = Process.Start(new ProcessStartInfo(binary, $"-c {dir}/nginx.conf -p {dir}")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        })!;
        var until = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < until)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException("nginx exited: " + await process.StandardError.ReadToEndAsync());
            }
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port);
                return new NginxServer(process, backend, dir, port);
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }
        throw new TimeoutException("nginx did not start");
    }

    /// <summary>The echo backend: answers 200 with the request headers it received as JSON.</summary>
    private static async Task<WebApplication> StartEchoBackendAsync()
    {
        var (app, _) = await EnvoyAuthz.Tests.Infrastructure.LoopbackServer.StartAsync(app =>
            app.Run(ctx => ctx.Response.WriteAsJsonAsync(ctx.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString()))));
        return app;
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        await _backend.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }
}
