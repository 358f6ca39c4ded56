# Example policy for EnvoyAuthz's embedded Rego engine, in OPA-Envoy's style: the decision at
# data.envoy.authz.allow is an object (OPA-Envoy's object form). `make run` serves it.
#
# - Health probes (/healthz, /health) pass without a token.
# - Any valid token may read (GET, HEAD, OPTIONS) Airflow's REST API: /api/<version>/… for the
#   versions in data.envoy.authz.api_versions.
# - Writes to the API need a group listed in data.envoy.authz.writer_groups.
# - /admin/** needs a group listed in data.envoy.authz.admin_groups.
# - Everything else is denied. Nothing is allowed by falling through: each rule names the paths it
#   allows, compared case-exactly (Airflow's routes are case-sensitive: /ADMIN is not /admin, and
#   not an API path either).
#
# Paths are matched on input.parsed_path, which EnvoyAuthz has normalised (each escape decoded once,
# slashes merged; dot segments, encoded slashes, backslashes, ';' parameters and NUL are denied
# before the policy runs), never on the raw input.attributes.request.http.path.
# Every allow carries an x-authz-policy header naming the rule that allowed it.
package envoy.authz

import rego.v1

default allow := {"allowed": false}

allow := {"allowed": true, "headers": {"x-authz-policy": rule}} if {
	some rule in permitted
	count(permitted) > 0
	rule == min(permitted)
}

# A deny says why: reason codes are EnvoyAuthz's fixed set.
allow := {"allowed": false, "reason": "missing_token", "http_status": 401} if {
	count(permitted) == 0
	not input.identity
}

permitted contains "public" if public_path

permitted contains "read" if {
	input.identity.subject
	api_path
	http_method in {"GET", "HEAD", "OPTIONS"}
}

permitted contains "write" if {
	api_path
	http_method in {"POST", "PUT", "PATCH", "DELETE"}
	some group in input.identity.groups
	group in data.envoy.authz.writer_groups
}

permitted contains "admin" if {
	admin_path
	some group in input.identity.groups
	group in data.envoy.authz.admin_groups
}

http_method := input.attributes.request.http.method

public_path if input.parsed_path == ["healthz"]

public_path if input.parsed_path == ["health"]

# /api/v1/… and /api/v2/…: at least one segment after the version.
api_path if {
	count(input.parsed_path) > 2
	input.parsed_path[0] == "api"
	input.parsed_path[1] in data.envoy.authz.api_versions
}

admin_path if input.parsed_path[0] == "admin"
