# Example policy for EnvoyAuthz's embedded Rego engine, in OPA-Envoy's style: the decision at
# data.envoy.authz.allow is an object (OPA-Envoy's object form). `make run` serves it.
#
# - Health and metrics probes pass without a token.
# - Any valid token may read (GET, HEAD, OPTIONS).
# - Writes need a group listed in data.envoy.authz.writer_groups.
# - /admin/** needs a group listed in data.envoy.authz.admin_groups.
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
	not admin_path
	http_method in {"GET", "HEAD", "OPTIONS"}
}

permitted contains "write" if {
	not admin_path
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

admin_path if input.parsed_path[0] == "admin"
