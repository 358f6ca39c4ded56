# Unit tests of the starter policy: `envoy-authz policy test k8s/base/policy` (or `opa test`).
package envoy.authz_test

import rego.v1

import data.envoy.authz

request(method, path, identity) := object.union(
	{"attributes": {"request": {"http": {"method": method, "path": path}}}, "parsed_path": split(trim_prefix(path, "/"), "/")},
	identity,
)

viewer := {"identity": {"subject": "alice", "groups": ["viewers"]}}

writer := {"identity": {"subject": "bob", "groups": ["airflow-writers"]}}

admin := {"identity": {"subject": "root", "groups": ["airflow-admins"]}}

test_read_with_any_token if {
	authz.allow.allowed with input as request("GET", "/api/v2/dags", viewer)
	authz.allow.headers["x-authz-policy"] == "read" with input as request("GET", "/api/v2/dags", viewer)
}

test_write_needs_a_writer_group if {
	not authz.allow.allowed with input as request("POST", "/api/v2/dags/etl/dagRuns", viewer)
	authz.allow.allowed with input as request("POST", "/api/v2/dags/etl/dagRuns", writer)
}

test_admin_path_only_for_admins if {
	not authz.allow.allowed with input as request("GET", "/admin/users", writer)
	authz.allow.allowed with input as request("GET", "/admin/users", admin)
}

test_no_token_is_401 if {
	decision := authz.allow with input as request("GET", "/api/v2/dags", {})
	decision.allowed == false
	decision.http_status == 401
}
