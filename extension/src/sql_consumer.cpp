//===----------------------------------------------------------------------===//
// sql_consumer.cpp: the ring's consumer side as SQL, for runtimes without FFI (Node):
//   SELECT haduck_consumer_attach(10000);            -- start holding headers for a consumer
//   SELECT * FROM haduck_drain_events(max := 1024);  -- pop events (type, file_id, a, b, c, d)
//   SELECT * FROM haduck_generation_info(seq);       -- the generation's iteration, path, counts
//   SELECT block_id FROM haduck_generation_blocks(seq);
//   SELECT haduck_release_generation(seq);           -- 1 publishable, 0 abandoned, -1 unknown
// The same events and generations the FFI reader sees; a process uses one consumer or the other
// (the ring has a single consumer), which a mutex enforces among SQL callers.
//===----------------------------------------------------------------------===//
#include "sql_functions.hpp"

#include "duckdb/function/scalar_function.hpp"
#include "duckdb/function/table_function.hpp"
#include "tracker.hpp"

#include <mutex>

namespace duckdb {

static std::mutex sql_consumer_lock;

static void ConsumerAttach(DataChunk &args, ExpressionState &state, Vector &result) {
	auto hold_ms = args.data[0].GetValue(0);
	haduck::Tracker::Get().SetHoldMs(hold_ms.IsNull() ? 10000 : hold_ms.GetValue<uint64_t>());
	haduck::Tracker::Get().AttachConsumer();
	result.Reference(Value::BOOLEAN(true));
}

static void ConsumerDetach(DataChunk &args, ExpressionState &state, Vector &result) {
	haduck::Tracker::Get().DetachConsumer();
	result.Reference(Value::BOOLEAN(true));
}

static void ReleaseGeneration(DataChunk &args, ExpressionState &state, Vector &result) {
	UnaryExecutor::Execute<uint64_t, int32_t>(args.data[0], result, args.size(), [](uint64_t seq) {
		return int32_t(haduck::Tracker::Get().ReleaseGeneration(seq));
	});
}

static void TakeOverflow(DataChunk &args, ExpressionState &state, Vector &result) {
	auto &flag = haduck::Atomic32(haduck::Tracker::Get().Ring().overflow);
	result.Reference(Value::BOOLEAN(flag.exchange(0) != 0));
}

//! Rows computed once at init (under the consumer lock), then scanned out in vectors.
struct RowsState : public GlobalTableFunctionState {
	vector<vector<Value>> rows;
	idx_t next = 0;
};

struct SeqBindData : public TableFunctionData {
	uint64_t value = 0;
};

static void ScanRows(ClientContext &context, TableFunctionInput &input, DataChunk &output) {
	auto &state = input.global_state->Cast<RowsState>();
	idx_t row = 0;
	for (; state.next < state.rows.size() && row < STANDARD_VECTOR_SIZE; state.next++, row++) {
		for (idx_t column = 0; column < state.rows[state.next].size(); column++) {
			output.SetValue(column, row, state.rows[state.next][column]);
		}
	}
	output.SetCardinality(row);
}

static unique_ptr<FunctionData> DrainBind(ClientContext &context, TableFunctionBindInput &input,
                                          vector<LogicalType> &return_types, vector<string> &names) {
	auto data = make_uniq<SeqBindData>();
	data->value = 1024;
	auto max = input.named_parameters.find("max");
	if (max != input.named_parameters.end() && !max->second.IsNull()) {
		data->value = max->second.GetValue<uint64_t>();
	}
	names = {"type", "file_id", "a", "b", "c", "d"};
	return_types = {LogicalType::UINTEGER, LogicalType::UINTEGER, LogicalType::UBIGINT,
	                LogicalType::UBIGINT,  LogicalType::UBIGINT,  LogicalType::UBIGINT};
	return std::move(data);
}

static unique_ptr<GlobalTableFunctionState> DrainInit(ClientContext &context, TableFunctionInitInput &input) {
	auto max = input.bind_data->Cast<SeqBindData>().value;
	auto state = make_uniq<RowsState>();
	std::lock_guard<std::mutex> guard(sql_consumer_lock);
	haduck::RingEvent event;
	while (state->rows.size() < max && haduck::RingPop(haduck::Tracker::Get().Ring(), event)) {
		state->rows.push_back({Value::UINTEGER(event.type), Value::UINTEGER(event.file_id), Value::UBIGINT(event.a),
		                       Value::UBIGINT(event.b), Value::UBIGINT(event.c), Value::UBIGINT(event.d)});
	}
	return std::move(state);
}

static unique_ptr<FunctionData> SeqBind(ClientContext &context, TableFunctionBindInput &input,
                                        vector<LogicalType> &return_types, vector<string> &names,
                                        vector<string> columns, vector<LogicalType> types) {
	auto data = make_uniq<SeqBindData>();
	if (input.inputs.empty() || input.inputs[0].IsNull()) {
		throw InvalidInputException("haduck: pass a generation's seq (column a of its GENERATION_READY event)");
	}
	data->value = input.inputs[0].GetValue<uint64_t>();
	names = std::move(columns);
	return_types = std::move(types);
	return std::move(data);
}

static unique_ptr<FunctionData> InfoBind(ClientContext &context, TableFunctionBindInput &input,
                                         vector<LogicalType> &return_types, vector<string> &names) {
	return SeqBind(context, input, return_types, names,
	               {"seq", "file_id", "path", "iteration", "blocks", "header_block_count", "block_alloc_size",
	                "needs_full_scan"},
	               {LogicalType::UBIGINT, LogicalType::UINTEGER, LogicalType::VARCHAR, LogicalType::UBIGINT,
	                LogicalType::UBIGINT, LogicalType::UBIGINT, LogicalType::UBIGINT, LogicalType::BOOLEAN});
}

static unique_ptr<GlobalTableFunctionState> InfoInit(ClientContext &context, TableFunctionInitInput &input) {
	auto seq = input.bind_data->Cast<SeqBindData>().value;
	auto state = make_uniq<RowsState>();
	haduck::Generation generation;
	if (haduck::Tracker::Get().CopyGeneration(seq, generation)) {
		auto file = haduck::Tracker::Get().Find(generation.file_id);
		state->rows.push_back({Value::UBIGINT(seq), Value::UINTEGER(generation.file_id),
		                       file ? Value(file->path) : Value(), Value::UBIGINT(generation.iteration),
		                       Value::UBIGINT(generation.blocks.size()), Value::UBIGINT(generation.header_block_count),
		                       Value::UBIGINT(generation.block_alloc_size), Value::BOOLEAN(generation.needs_full_scan)});
	}
	return std::move(state);
}

static unique_ptr<FunctionData> BlocksBind(ClientContext &context, TableFunctionBindInput &input,
                                           vector<LogicalType> &return_types, vector<string> &names) {
	return SeqBind(context, input, return_types, names, {"block_id"}, {LogicalType::UBIGINT});
}

static unique_ptr<GlobalTableFunctionState> BlocksInit(ClientContext &context, TableFunctionInitInput &input) {
	auto seq = input.bind_data->Cast<SeqBindData>().value;
	auto state = make_uniq<RowsState>();
	haduck::Generation generation;
	if (haduck::Tracker::Get().CopyGeneration(seq, generation)) {
		for (auto block : generation.blocks) {
			state->rows.push_back({Value::UBIGINT(block)});
		}
	}
	return std::move(state);
}

static ScalarFunction Volatile(ScalarFunction function) {
	function.stability = FunctionStability::VOLATILE; // a side effect: never folded or cached
	return function;
}

void RegisterHaduckConsumerFunctions(ExtensionLoader &loader) {
	loader.RegisterFunction(Volatile(ScalarFunction("haduck_consumer_attach", {LogicalType::UBIGINT},
	                                                LogicalType::BOOLEAN, ConsumerAttach)));
	loader.RegisterFunction(
	    Volatile(ScalarFunction("haduck_consumer_detach", {}, LogicalType::BOOLEAN, ConsumerDetach)));
	loader.RegisterFunction(Volatile(ScalarFunction("haduck_release_generation", {LogicalType::UBIGINT},
	                                                LogicalType::INTEGER, ReleaseGeneration)));
	loader.RegisterFunction(
	    Volatile(ScalarFunction("haduck_take_overflow", {}, LogicalType::BOOLEAN, TakeOverflow)));
	TableFunction drain("haduck_drain_events", {}, ScanRows, DrainBind, DrainInit);
	drain.named_parameters["max"] = LogicalType::UBIGINT;
	loader.RegisterFunction(drain);
	loader.RegisterFunction(
	    TableFunction("haduck_generation_info", {LogicalType::UBIGINT}, ScanRows, InfoBind, InfoInit));
	loader.RegisterFunction(
	    TableFunction("haduck_generation_blocks", {LogicalType::UBIGINT}, ScanRows, BlocksBind, BlocksInit));
}

} // namespace duckdb
