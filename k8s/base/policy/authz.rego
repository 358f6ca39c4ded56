# The starter policy the Kubernetes base ships (ConfigMap envoy-authz-policy, mounted at
# /etc/envoy-authz/policy). Replace it with yours: edit policy/ and re-apply; the kubelet swaps the
# mounted folder and the service reloads it without a restart. A policy that does not compile is
# rejected (envoy_authz_policy_reloads_total{result="failure"}) and the last good one keeps serving.
#
# - Any valid token may read (GET, HEAD, OPTIONS).
# - Writes need one of writer_groups; /admin/** needs one of admin_groups.
package envoy.authz

import rego.v1

writer_groups := {"airflow-writers", "airflow-admins"}

admin_groups := {"airflow-admins"}

default allow := {"allowed": false}

allow := {"allowed": true, "headers": {"x-authz-policy": min(permitted)}} if count(permitted) > 0

allow := {"allowed": false, "reason": "missing_token", "http_status": 401} if {
	count(permitted) == 0
	not input.identity
}

permitted contains "read" if {
	input.identity.subject
	not admin_path
	http_method in {"GET", "HEAD", "OPTIONS"}
}

permitted contains "write" if {
	not admin_path
	http_method in {"POST", "PUT", "PATCH", "DELETE"}
	some group in input.identity.groups
	group in writer_groups
}

permitted contains "admin" if {
	admin_path
	some group in input.identity.groups
	group in admin_groups
}

http_method := input.attributes.request.http.method

admin_path if input.parsed_path[0] == "admin"
