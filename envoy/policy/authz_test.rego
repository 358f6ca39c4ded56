# Unit tests of the example policy (`envoy-authz policy test envoy/policy`, `opa test envoy/policy`).
package envoy.authz_test

import rego.v1

import data.envoy.authz

request(method, path, identity) := object.union(
	{"attributes": {"request": {"http": {"method": method, "path": path}}}, "parsed_path": split(trim_prefix(path, "/"), "/")},
	identity,
)

alice := {"identity": {"subject": "alice", "groups": ["viewers"]}}

admin := {"identity": {"subject": "root", "groups": ["airflow-admins"]}}

test_read_with_any_token if {
	authz.allow.allowed with input as request("GET", "/api/v1/dags", alice)
}

test_read_header_names_the_rule if {
	authz.allow.headers["x-authz-policy"] == "read" with input as request("GET", "/api/v1/dags", alice)
}

test_write_needs_writer_group if {
	not authz.allow.allowed with input as request("POST", "/api/v1/dags/etl/dagRuns", alice)
	authz.allow.allowed with input as request("POST", "/api/v1/dags/etl/dagRuns", admin)
}

test_admin_path_only_for_admins if {
	not authz.allow.allowed with input as request("GET", "/admin/users", alice)
	authz.allow.allowed with input as request("GET", "/admin/users", admin)
}

test_no_token_is_401 if {
	decision := authz.allow with input as request("GET", "/api/v1/dags", {})
	decision.allowed == false
	decision.http_status == 401
}

test_health_is_public if {
	authz.allow.allowed with input as request("GET", "/healthz", {})
}

test_writer_groups_come_from_data if {
	authz.allow.allowed with input as request("DELETE", "/api/v1/dags/etl", alice)
		with data.envoy.authz.writer_groups as ["viewers"]
}

# Deny by default: only the API, /admin and the probes are allowed, case-exactly.
test_unknown_path_denied_with_any_token if {
	not authz.allow.allowed with input as request("GET", "/", alice)
	not authz.allow.allowed with input as request("GET", "/home", alice)
	not authz.allow.allowed with input as request("GET", "/api", alice)
	not authz.allow.allowed with input as request("GET", "/api/v3/dags", alice)
	not authz.allow.allowed with input as request("DELETE", "/users/1", admin)
}

test_other_spellings_of_admin_not_readable if {
	not authz.allow.allowed with input as request("GET", "/ADMIN/users", alice)
	not authz.allow.allowed with input as request("GET", "/Admin/users", alice)
	not authz.allow.allowed with input as request("GET", "/admin;x/users", alice)
	not authz.allow.allowed with input as request("GET", "/admin%00/users", alice)
	not authz.allow.allowed with input as request("GET", "/%61dmin/users", alice)
	not authz.allow.allowed with input as request("GET", "/api/../admin/users", alice)
}

test_admin_path_needs_admin_group_whatever_the_method if {
	not authz.allow.allowed with input as request("DELETE", "/admin/users", alice)
	authz.allow.allowed with input as request("DELETE", "/admin/users", admin)
	authz.allow.headers["x-authz-policy"] == "admin" with input as request("GET", "/admin", admin)
}

# The policy decides on parsed_path (normalised by EnvoyAuthz), never on the raw path.
test_decides_on_parsed_path_not_raw_path if {
	not authz.allow.allowed with input as object.union(request("GET", "/api/v1/../../admin/users", alice), {"parsed_path": ["admin", "users"]})
	authz.allow.allowed with input as object.union(request("GET", "/admin/../api/v1/dags", alice), {"parsed_path": ["api", "v1", "dags"]})
}

test_unknown_path_without_token_is_401 if {
	decision := authz.allow with input as request("GET", "/ADMIN/users", {})
	decision.http_status == 401
}
