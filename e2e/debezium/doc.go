// Package debezium holds the real CDC chain test: PostgreSQL with logical
// decoding, the Debezium PostgreSQL connector in Kafka Connect standalone,
// Kafka, the sink, and Delta tables read back by DuckDB, checked against
// the database itself.
//
// The test (chain_test.go) runs only when SINK_E2E_DEBEZIUM=1 and the
// services' environment is set, as .ci/run does:
//
//	e2e/scripts/postgres.sh start DIR 25432 && eval "$(e2e/scripts/postgres.sh env DIR)"
//	e2e/scripts/kafka.sh start DIR 29192 && eval "$(e2e/scripts/kafka.sh env DIR)"
//	e2e/scripts/registry.sh start DIR 28081 && eval "$(e2e/scripts/registry.sh env DIR)"
//	e2e/scripts/debezium.sh install && e2e/scripts/python.sh install VENV
//	eval "$(e2e/scripts/python.sh env VENV)"
//	SINK_E2E_DEBEZIUM=1 go test -v ./e2e/debezium/
//
// The chain runs in up to three modes at once, each with its own connector,
// topics and sink: Debezium JSON with the converter's schemas, without
// them, and, when EVODB_SCHEMA_REGISTRY_URL names Apicurio Registry's
// Confluent-compatible API (registry.sh), Avro in the Confluent wire format
// written by Apicurio's converter and read with the sink's format: avro.
//
// The test starts and restarts Kafka Connect itself (on
// SINK_E2E_CONNECT_PORT, default 28083, state in SINK_E2E_CONNECT_DIR,
// default a temporary directory), because the snapshot rows must
// exist before the connector does. The SQL it runs is in schema.sql,
// changes-1.sql, alter.sql and changes-2.sql; state.py computes a table's
// current state with DuckDB using the view of docs/current-state.md, and
// reads the table's mirror table (tables.*.mirror, which every sink of the
// chain keeps) as it is: both must equal the database.
package debezium
