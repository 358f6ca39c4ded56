# Egress policy: an Airflow task's outbound call through its Envoy sidecar. EnvoyAuthz fills
# input.airflow.connection (the Airflow connection the call is for: conn_id, conn_type, host, port,
# schema, login, description, non-secret extra) and the task context (dag_id, task_id, run_id,
# try_number, map_index) with the source of each field (input.airflow.task_source). Decision at
# data.envoy.authz.allow (object form).
#
#   the DAG counts only when it comes from a source the caller cannot set: the token's claims, the
#   route's context_extensions (airflow_dag_id) or Envoy metadata, never a request header
#   a task may use a connection only if its DAG is allowed for it (data.airflow.egress.grants)
#   methods and path prefixes are limited per connection type (data.airflow.egress.conn_types),
#   and may be narrowed per connection
#   an unknown connection is denied with reason unknown_connection
package envoy.authz

import rego.v1

default allow := {"allowed": false, "reason": "policy_denied"}

allow := {"allowed": true, "headers": {"x-airflow-dag-id": dag_id}} if {
	input.airflow.connection
	count(denials) == 0
}

allow := {"allowed": false, "reason": "unknown_connection", "http_status": 403, "body": "unknown Airflow connection"} if {
	not input.airflow.connection
}

allow := {"allowed": false, "reason": "policy_denied", "http_status": 403, "body": concat("; ", sort(denials))} if {
	input.airflow.connection
	count(denials) > 0
}

cfg := data.airflow.egress

conn := input.airflow.connection

grant := cfg.grants[conn.conn_id]

type_rules := cfg.conn_types[conn.conn_type]

http_method := input.attributes.request.http.method

path := concat("/", array.concat([""], input.parsed_path))

# Sources a caller cannot set (a request header is the caller's own word).
trusted_sources := {"claims", "context_extensions", "metadata"}

dag_id := input.airflow.dag_id if input.airflow.task_source.dag_id in trusted_sources

denials contains "no task context (dag_id)" if {
	input.airflow.connection
	not input.airflow.dag_id
}

denials contains sprintf("the task's dag_id comes from %s, not a trusted source", [source]) if {
	input.airflow.connection
	input.airflow.dag_id
	source := object.get(input.airflow, ["task_source", "dag_id"], "an unknown source")
	not source in trusted_sources
}

denials contains sprintf("connection %s is not granted to any DAG", [conn.conn_id]) if {
	input.airflow.connection
	not cfg.grants[conn.conn_id]
}

denials contains sprintf("DAG %s may not use connection %s", [dag_id, conn.conn_id]) if {
	grant
	dag_id
	not dag_id in grant.dags
}

denials contains sprintf("method %s is not allowed on %s connections", [http_method, conn.conn_type]) if {
	input.airflow.connection
	not http_method in object.get(grant, "methods", object.get(type_rules, "methods", []))
}

denials contains sprintf("path %s is outside what connection %s may reach", [path, conn.conn_id]) if {
	input.airflow.connection
	prefixes := object.get(grant, "paths", object.get(type_rules, "paths", ["/"]))
	not path_allowed(prefixes)
}

# The route names the connection (context extension or header), so the call must go to that
# connection's host: a task cannot borrow an allowed connection to reach another host.
denials contains sprintf("host %s is not the host of connection %s", [request_host, conn.conn_id]) if {
	conn.host
	request_host != connection_host
}

request_host := lower(split(input.attributes.request.http.host, ":")[0])

connection_host := lower(split(trim_prefix(trim_prefix(conn.host, "https://"), "http://"), ":")[0])

denials contains "task identity does not match the connection's grant" if {
	grant.subjects
	not input.identity.subject in grant.subjects
}

path_allowed(prefixes) if {
	some prefix in prefixes
	startswith(path, prefix)
}
