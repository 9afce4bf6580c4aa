#include "sql_functions.hpp"

#include "duckdb/function/scalar_function.hpp"
#include "duckdb/function/table_function.hpp"
#include "sidecar.hpp"
#include "tracker.hpp"

#include <unistd.h>

#ifndef HADUCK_EXTENSION_VERSION
#define HADUCK_EXTENSION_VERSION "dev"
#endif

namespace duckdb {

static void HaduckVersion(DataChunk &args, ExpressionState &state, Vector &result) {
	child_list_t<Value> fields;
	fields.emplace_back("extension", Value(HADUCK_EXTENSION_VERSION));
	fields.emplace_back("duckdb", Value(DuckDB::LibraryVersion()));
	fields.emplace_back("source_id", Value(DuckDB::SourceID()));
	result.Reference(Value::STRUCT(std::move(fields)));
}

static const char *KindName(uint32_t kind) {
	switch (kind) {
	case HADUCK_FILE_KIND_DATABASE:
		return "database";
	case HADUCK_FILE_KIND_WAL:
		return "wal";
	case HADUCK_FILE_KIND_WAL_CHECKPOINT:
		return "wal_checkpoint";
	case HADUCK_FILE_KIND_TEMP:
		return "temp";
	default:
		return "other";
	}
}

struct StatsState : public GlobalTableFunctionState {
	std::vector<std::shared_ptr<haduck::TrackedFile>> files;
	idx_t next = 0;
};

static unique_ptr<FunctionData> StatsBind(ClientContext &context, TableFunctionBindInput &input,
                                          vector<LogicalType> &return_types, vector<string> &names) {
	names = {"path", "kind", "writes", "bytes_written", "dirty_blocks", "syncs", "generations", "last_iteration",
	         "block_alloc_size", "open_handles", "ring_overflows", "hold_waits", "hold_wait_ms_max", "hold_timeouts"};
	return_types = {LogicalType::VARCHAR, LogicalType::VARCHAR, LogicalType::UBIGINT, LogicalType::UBIGINT,
	                LogicalType::UBIGINT, LogicalType::UBIGINT, LogicalType::UBIGINT, LogicalType::UBIGINT,
	                LogicalType::UBIGINT, LogicalType::UBIGINT, LogicalType::UBIGINT, LogicalType::UBIGINT,
	                LogicalType::DOUBLE,  LogicalType::UBIGINT};
	return nullptr;
}

static unique_ptr<GlobalTableFunctionState> StatsInit(ClientContext &context, TableFunctionInitInput &input) {
	auto state = make_uniq<StatsState>();
	state->files = haduck::Tracker::Get().Files();
	return std::move(state);
}

static void StatsScan(ClientContext &context, TableFunctionInput &input, DataChunk &output) {
	auto &state = input.global_state->Cast<StatsState>();
	auto &tracker = haduck::Tracker::Get();
	auto hold = tracker.GetHoldStats();
	uint64_t overflows = haduck::Atomic64(tracker.Ring().overflow_count).load();
	idx_t row = 0;
	for (; state.next < state.files.size() && row < STANDARD_VECTOR_SIZE; state.next++, row++) {
		auto &file = *state.files[state.next];
		idx_t column = 0;
		output.SetValue(column++, row, Value(file.path));
		output.SetValue(column++, row, Value(KindName(file.kind.load())));
		output.SetValue(column++, row, Value::UBIGINT(file.writes.load()));
		output.SetValue(column++, row, Value::UBIGINT(file.bytes_written.load()));
		output.SetValue(column++, row, Value::UBIGINT(file.bitmap.Count()));
		output.SetValue(column++, row, Value::UBIGINT(file.syncs.load()));
		output.SetValue(column++, row, Value::UBIGINT(file.generations.load()));
		output.SetValue(column++, row, Value::UBIGINT(file.last_iteration.load()));
		output.SetValue(column++, row, Value::UBIGINT(file.block_alloc_size.load()));
		output.SetValue(column++, row, Value::UBIGINT(file.open_handles.load()));
		output.SetValue(column++, row, Value::UBIGINT(overflows));
		output.SetValue(column++, row, Value::UBIGINT(hold.waits));
		output.SetValue(column++, row, Value::DOUBLE(double(hold.wait_ns_max) / 1e6));
		output.SetValue(column++, row, Value::UBIGINT(hold.timeouts));
	}
	output.SetCardinality(row);
}

struct StatusState : public GlobalTableFunctionState {
	std::vector<haduck::SidecarRow> rows;
	idx_t next = 0;
};

static unique_ptr<FunctionData> StatusBind(ClientContext &context, TableFunctionBindInput &input,
                                           vector<LogicalType> &return_types, vector<string> &names) {
	names = {"path",          "mode",         "replicator_pid", "last_generation",      "lag_ms", "blocks_carried",
	         "generations_committed", "wal_lag_ms", "frames_shipped", "last_error"};
	return_types = {LogicalType::VARCHAR, LogicalType::VARCHAR, LogicalType::BIGINT,  LogicalType::BIGINT,
	                LogicalType::DOUBLE,  LogicalType::UBIGINT, LogicalType::UBIGINT, LogicalType::DOUBLE,
	                LogicalType::UBIGINT, LogicalType::VARCHAR};
	return nullptr;
}

//! One row per database replicated by a sidecar in this host (see sidecar.hpp), and one per database
//! that runs local-only or is replicated by haduck's in-process bridge (its status lives there).
static unique_ptr<GlobalTableFunctionState> StatusInit(ClientContext &context, TableFunctionInitInput &input) {
	auto state = make_uniq<StatusState>();
	state->rows = haduck::Sidecars::Get().Rows();
	for (auto &file : haduck::Tracker::Get().Files()) {
		bool listed = false;
		for (auto &row : state->rows) {
			listed = listed || row.path == file->path;
		}
		if (!listed && file->kind.load() == HADUCK_FILE_KIND_DATABASE) {
			haduck::SidecarRow row;
			row.path = file->path;
			row.mode = haduck::Tracker::Get().ConsumerAttached() ? "in-process" : "local-only";
			row.pid = haduck::Tracker::Get().ConsumerAttached() ? int64_t(getpid()) : 0;
			state->rows.push_back(std::move(row));
		}
	}
	return std::move(state);
}

static void StatusScan(ClientContext &context, TableFunctionInput &input, DataChunk &output) {
	auto &state = input.global_state->Cast<StatusState>();
	idx_t row = 0;
	for (; state.next < state.rows.size() && row < STANDARD_VECTOR_SIZE; state.next++, row++) {
		auto &status = state.rows[state.next];
		idx_t column = 0;
		output.SetValue(column++, row, Value(status.path));
		output.SetValue(column++, row, Value(status.mode));
		output.SetValue(column++, row, status.pid > 0 ? Value::BIGINT(status.pid) : Value());
		output.SetValue(column++, row,
		                status.last_generation >= 0 ? Value::BIGINT(status.last_generation) : Value());
		output.SetValue(column++, row, Value::DOUBLE(status.lag_ms));
		output.SetValue(column++, row, Value::UBIGINT(status.blocks_carried));
		output.SetValue(column++, row, Value::UBIGINT(status.generations_committed));
		output.SetValue(column++, row, Value::DOUBLE(status.wal_lag_ms));
		output.SetValue(column++, row, Value::UBIGINT(status.frames_shipped));
		output.SetValue(column++, row, status.last_error.empty() ? Value() : Value(status.last_error));
	}
	output.SetCardinality(row);
}

void RegisterHaduckFunctions(ExtensionLoader &loader) {
	child_list_t<LogicalType> version_fields;
	version_fields.emplace_back("extension", LogicalType::VARCHAR);
	version_fields.emplace_back("duckdb", LogicalType::VARCHAR);
	version_fields.emplace_back("source_id", LogicalType::VARCHAR);
	ScalarFunction version("haduck_version", {}, LogicalType::STRUCT(version_fields), HaduckVersion);
	loader.RegisterFunction(version);
	TableFunction stats("haduck_stats", {}, StatsScan, StatsBind, StatsInit);
	loader.RegisterFunction(stats);
	TableFunction status("haduck_status", {}, StatusScan, StatusBind, StatusInit);
	loader.RegisterFunction(status);
}

} // namespace duckdb
