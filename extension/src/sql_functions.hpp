//===----------------------------------------------------------------------===//
// sql_functions.hpp: haduck_version() and haduck_stats(); the SQL consumer (sql_consumer.cpp).
//===----------------------------------------------------------------------===//
#pragma once
#include "duckdb.hpp"
#include "duckdb/main/extension/extension_loader.hpp"

namespace duckdb {
void RegisterHaduckFunctions(ExtensionLoader &loader);
void RegisterHaduckConsumerFunctions(ExtensionLoader &loader);
} // namespace duckdb
