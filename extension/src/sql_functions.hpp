//===----------------------------------------------------------------------===//
// sql_functions.hpp: haduck_version() and haduck_stats().
//===----------------------------------------------------------------------===//
#pragma once
#include "duckdb.hpp"
#include "duckdb/main/extension/extension_loader.hpp"

namespace duckdb {
void RegisterHaduckFunctions(ExtensionLoader &loader);
} // namespace duckdb
