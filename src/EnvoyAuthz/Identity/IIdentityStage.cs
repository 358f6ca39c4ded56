using EnvoyAuthz.Pipeline;

namespace EnvoyAuthz.Identity;

/// <summary>Stage 2: the caller's token → a validated identity, or why not.</summary>
public interface IIdentityStage
{
    /// <summary>Finds and validates the request's token. Never throws for bad input.</summary>
    ValueTask<IdentityResult> AuthenticateAsync(AuthzRequest request, CancellationToken cancellationToken);

    /// <summary>True once every issuer's keys have loaded at least once.</summary>
    bool KeysLoaded { get; }
}
