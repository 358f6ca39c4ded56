# Ingress policy: people, CI and AI agents calling Airflow's REST API (v1 or v2) through Envoy.
# Decision at data.envoy.authz.allow (OPA-Envoy's object form). EnvoyAuthz fills
# input.airflow.api = {version, resource, action, template, dag_id, dag_run_id, task_id,
# connection_id, variable_key, params} from the path templates of Airflow's API specifications (a
# path no template matches is resource "unknown" without an action, denied here) and, for JSON-RPC
# bodies, input.jsonrpc = [{method, params, id}, ...].
#
#   viewers (data.airflow.ingress.viewer_groups)  read anything but connections and variables
#   DAG owners (data.airflow.ingress.dag_groups)   also trigger, clear and update their own DAGs
#   admins (data.airflow.ingress.admin_groups)     everything, and the only ones on connections/variables
#   AI agents (an RFC 8693 `act` claim, or a client in data.airflow.ingress.agent_clients)
#                                                  read and trigger allow-listed DAGs only
#   JSON-RPC batches                               allowed only if every call is
package envoy.authz

import rego.v1

default allow := {"allowed": false}

allow := {"allowed": true, "headers": {"x-authz-role": role}} if {
	input.identity.subject
	count(denials) == 0
	role := caller_role
}

allow := {"allowed": false, "http_status": 403, "reason": "policy_denied", "body": concat("; ", sort(denials))} if {
	input.identity.subject
	count(denials) > 0
}

cfg := data.airflow.ingress

# --- who is calling -----------------------------------------------------------------------

is_agent if input.identity.actor
is_agent if input.identity.client_id in cfg.agent_clients

is_admin if {
	not is_agent
	some g in input.identity.groups
	g in cfg.admin_groups
}

is_viewer if {
	some g in input.identity.groups
	g in cfg.viewer_groups
}

# DAGs the caller's groups own (a trailing * is a prefix).
owns(dag) if {
	some g in input.identity.groups
	some pattern in cfg.dag_groups[g]
	dag_matches(pattern, dag)
}

dag_matches(pattern, dag) if pattern == dag

dag_matches(pattern, dag) if {
	endswith(pattern, "*")
	startswith(dag, trim_suffix(pattern, "*"))
}

caller_role := "agent" if is_agent

caller_role := "admin" if is_admin

caller_role := "user" if {
	not is_agent
	not is_admin
}

# --- what is asked ------------------------------------------------------------------------

api := input.airflow.api

secret_resources := {"connections", "variables", "pools", "config", "users", "roles"}

denials contains "not an Airflow API request this policy understands" if {
	not input.jsonrpc
	not api.action
}

denials contains msg if {
	not input.jsonrpc
	api.action
	not rest_allowed
	msg := sprintf("%s on %s is not allowed for %s", [api.action, object.get(api, "resource", "?"), caller_role])
}

denials contains msg if {
	some call in input.jsonrpc
	not rpc_allowed(call)
	msg := sprintf("JSON-RPC method %s is not allowed for %s", [object.get(call, "method", "?"), caller_role])
}

# Admins: everything.
rest_allowed if is_admin

# Viewers and owners read what is not secret.
rest_allowed if {
	not is_agent
	api.action == "read"
	not api.resource in secret_resources
	readable
}

readable if is_viewer

readable if {
	api.dag_id
	owns(api.dag_id)
}

# Owners change their own DAGs.
rest_allowed if {
	not is_agent
	api.action in {"trigger", "update", "create", "delete"}
	not api.resource in secret_resources
	api.dag_id != "~"
	owns(api.dag_id)
}

# Agents: read and trigger of allow-listed DAGs only.
rest_allowed if {
	is_agent
	api.action in {"read", "trigger"}
	api.dag_id
	some pattern in cfg.agent_dags
	dag_matches(pattern, api.dag_id)
}

# JSON-RPC: methods map to actions on DAGs named in params.dag_id.
rpc_action := {
	"get_dag": "read", "list_dags": "read", "get_dag_run": "read", "list_dag_runs": "read",
	"trigger_dag": "trigger", "clear_task_instances": "update", "pause_dag": "update",
	"delete_dag": "delete", "get_connection": "secret", "create_connection": "secret",
}

rpc_allowed(call) if is_admin

rpc_allowed(call) if {
	not is_agent
	rpc_action[call.method] == "read"
	is_viewer
}

rpc_allowed(call) if {
	not is_agent
	rpc_action[call.method] in {"read", "trigger", "update", "delete"}
	owns(call.params.dag_id)
}

rpc_allowed(call) if {
	is_agent
	rpc_action[call.method] in {"read", "trigger"}
	some pattern in cfg.agent_dags
	dag_matches(pattern, call.params.dag_id)
}
