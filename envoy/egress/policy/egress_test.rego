package envoy.authz_test

import rego.v1

import data.envoy.authz

call(conn, dag, method, path) := {
	"airflow": object.union({"connection": conn}, {
		"dag_id": dag, "task_id": "t1", "run_id": "r1", "try_number": 1,
		"task_source": {"dag_id": "context_extensions", "task_id": "context_extensions", "run_id": "claims", "try_number": "claims"},
	}),
	"attributes": {"request": {"http": {"method": method, "path": path, "host": object.get(conn, "host", "x")}}},
	"parsed_path": split(trim_prefix(path, "/"), "/"),
}

http_default := {"conn_id": "http_default", "conn_type": "http", "host": "api.partner.example.com", "port": 443}

slack := {"conn_id": "slack_alerts", "conn_type": "slack", "host": "slack.com"}

partner := {"conn_id": "partner_api", "conn_type": "http", "host": "partner.example.com"}

test_granted_dag_may_use_connection if {
	authz.allow.allowed with input as call(http_default, "etl_daily", "GET", "/v1/items")
}

test_other_dag_may_not if {
	decision := authz.allow with input as call(http_default, "report_daily", "GET", "/v1/items")
	decision.allowed == false
	contains(decision.body, "may not use connection http_default")
}

test_method_limited_per_connection if {
	not authz.allow.allowed with input as call(http_default, "etl_daily", "DELETE", "/v1/items/1")
}

test_path_limited_per_connection if {
	not authz.allow.allowed with input as call(http_default, "etl_daily", "GET", "/admin/keys")
}

test_type_rules_apply_without_connection_rules if {
	authz.allow.allowed with input as call(slack, "report_daily", "POST", "/api/chat.postMessage")
	not authz.allow.allowed with input as call(slack, "report_daily", "GET", "/api/users.list")
}

test_unknown_connection_denied_with_reason if {
	decision := authz.allow with input as {"airflow": {"dag_id": "etl_daily"}, "attributes": {"request": {"http": {"method": "GET"}}}, "parsed_path": ["x"]}
	decision.allowed == false
	decision.reason == "unknown_connection"
}

test_missing_task_context_denied if {
	not authz.allow.allowed with input as {
		"airflow": {"connection": http_default},
		"attributes": {"request": {"http": {"method": "GET"}}},
		"parsed_path": ["v1", "items"],
	}
}

test_identity_bound_grant if {
	not authz.allow.allowed with input as call(partner, "report_daily", "GET", "/x")
	authz.allow.allowed with input as object.union(call(partner, "report_daily", "GET", "/x"), {"identity": {"subject": "svc-report-writer"}})
}

test_connection_host_must_match_the_request if {
	other_host := json.patch(call(http_default, "etl_daily", "GET", "/v1/items"), [{"op": "replace", "path": "/attributes/request/http/host", "value": "evil.example.com"}])
	decision := authz.allow with input as other_host
	decision.allowed == false
	contains(decision.body, "not the host of connection http_default")
}

test_connection_host_with_scheme_and_port if {
	with_scheme := object.union(http_default, {"host": "https://API.partner.example.com"})
	request := json.patch(call(with_scheme, "etl_daily", "GET", "/v1/items"), [{"op": "replace", "path": "/attributes/request/http/host", "value": "api.partner.example.com:443"}])
	authz.allow.allowed with input as request
}

with_dag_source(request, source) := json.patch(request, [{"op": "replace", "path": "/airflow/task_source/dag_id", "value": source}])

test_dag_from_each_trusted_source_counts if {
	every source in ["claims", "context_extensions", "metadata"] {
		authz.allow.allowed with input as with_dag_source(call(http_default, "etl_daily", "GET", "/v1/items"), source)
	}
}

test_dag_from_a_request_header_is_not_trusted if {
	decision := authz.allow with input as with_dag_source(call(http_default, "etl_daily", "GET", "/v1/items"), "headers")
	decision.allowed == false
	contains(decision.body, "comes from headers")
}

test_dag_without_provenance_is_not_trusted if {
	request := json.patch(call(http_default, "etl_daily", "GET", "/v1/items"), [{"op": "remove", "path": "/airflow/task_source"}])
	not authz.allow.allowed with input as request
}

test_trusted_dag_is_what_the_allow_names if {
	decision := authz.allow with input as call(http_default, "etl_daily", "GET", "/v1/items")
	decision.headers["x-airflow-dag-id"] == "etl_daily"
}
