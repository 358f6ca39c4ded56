package envoy.authz_test

import rego.v1

import data.envoy.authz

req(identity, api) := {"identity": identity, "airflow": {"api": api}}

rpc(identity, calls) := {"identity": identity, "airflow": {}, "jsonrpc": calls}

viewer := {"subject": "vic", "groups": ["airflow-viewers"], "client_id": "web"}

engineer := {"subject": "eng", "groups": ["data-eng"], "client_id": "web"}

admin := {"subject": "root", "groups": ["airflow-admins"], "client_id": "web"}

agent := {"subject": "bot", "groups": ["airflow-admins"], "client_id": "web", "actor": {"sub": "ai-agent-7"}}

agent_client := {"subject": "svc", "groups": [], "client_id": "ai-agent"}

test_viewer_reads_dags if {
	authz.allow.allowed with input as req(viewer, {"version": "v1", "resource": "dags", "action": "read"})
}

test_viewer_cannot_trigger if {
	not authz.allow.allowed with input as req(viewer, {"version": "v2", "resource": "dagRuns", "action": "trigger", "dag_id": "etl_daily"})
}

test_viewer_cannot_read_connections if {
	not authz.allow.allowed with input as req(viewer, {"version": "v1", "resource": "connections", "action": "read"})
}

test_owner_triggers_own_dag_only if {
	authz.allow.allowed with input as req(engineer, {"version": "v1", "resource": "dagRuns", "action": "trigger", "dag_id": "etl_daily"})
	not authz.allow.allowed with input as req(engineer, {"version": "v1", "resource": "dagRuns", "action": "trigger", "dag_id": "report_daily"})
}

test_owner_cannot_act_on_all_dags_at_once if {
	not authz.allow.allowed with input as req(engineer, {"version": "v1", "resource": "dagRuns", "action": "update", "dag_id": "~"})
}

test_admin_manages_connections if {
	authz.allow.allowed with input as req(admin, {"version": "v2", "resource": "connections", "action": "create"})
}

test_agent_is_confined_despite_admin_groups if {
	authz.allow.allowed with input as req(agent, {"version": "v1", "resource": "dagRuns", "action": "trigger", "dag_id": "report_daily"})
	not authz.allow.allowed with input as req(agent, {"version": "v1", "resource": "dagRuns", "action": "trigger", "dag_id": "ingest_raw"})
	not authz.allow.allowed with input as req(agent, {"version": "v1", "resource": "connections", "action": "read"})
	not authz.allow.allowed with input as req(agent, {"version": "v1", "resource": "dags", "action": "delete", "dag_id": "report_daily"})
}

test_agent_by_client_id if {
	authz.allow.headers["x-authz-role"] == "agent" with input as req(agent_client, {"version": "v2", "resource": "dags", "action": "read", "dag_id": "etl_daily"})
}

test_unknown_action_denied if {
	not authz.allow.allowed with input as req(admin, {"version": "v1"})
}

test_unknown_template_denied_even_for_admin if {
	decision := authz.allow with input as req(admin, {"version": "v1", "resource": "unknown"})
	decision.allowed == false
	contains(decision.body, "not an Airflow API request this policy understands")
}

# GET /api/v1/variables/team/secret: variable "team/secret", not a resource "secret".
test_viewer_cannot_read_a_variable_whose_key_has_slashes if {
	not authz.allow.allowed with input as req(viewer, {"version": "v1", "resource": "variables", "action": "read", "template": "/variables/{variable_key}", "variable_key": "team/secret"})
}

# DELETE /api/v1/variables/etl_x/dags/etl_daily: a variable, not DAG etl_daily the caller owns.
test_owner_cannot_delete_a_variable_named_like_a_dag_path if {
	not authz.allow.allowed with input as req(engineer, {"version": "v1", "resource": "variables", "action": "delete", "template": "/variables/{variable_key}", "variable_key": "etl_x/dags/etl_daily"})
}

test_owner_reads_the_source_of_an_own_dag if {
	authz.allow.allowed with input as req({"subject": "eng", "groups": ["analytics-only"], "client_id": "web"}, {"version": "v2", "resource": "dagSources", "action": "read", "dag_id": "etl_daily"}) with data.airflow.ingress.dag_groups as {"analytics-only": ["etl_*"]}
}

test_jsonrpc_batch_allowed_when_every_call_is if {
	authz.allow.allowed with input as rpc(engineer, [
		{"method": "get_dag", "params": {"dag_id": "etl_daily"}, "id": 1},
		{"method": "trigger_dag", "params": {"dag_id": "etl_daily"}, "id": 2},
	])
}

test_jsonrpc_batch_with_one_forbidden_call_denied if {
	decision := authz.allow with input as rpc(engineer, [
		{"method": "get_dag", "params": {"dag_id": "etl_daily"}, "id": 1},
		{"method": "get_connection", "params": {"conn_id": "prod_db"}, "id": 2},
	])
	decision.allowed == false
	contains(decision.body, "get_connection")
}

test_no_identity_denied if {
	not authz.allow.allowed with input as {"airflow": {"api": {"version": "v1", "resource": "dags", "action": "read"}}}
}
