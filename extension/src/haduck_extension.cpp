//===----------------------------------------------------------------------===//
// haduck_extension.cpp: registers haduck's file system and SQL functions; nothing else.
//===----------------------------------------------------------------------===//
#define DUCKDB_EXTENSION_MAIN
#include "duckdb.hpp"
#include "duckdb/main/extension/extension_loader.hpp"
#include "haduck_file_system.hpp"
#include "sql_functions.hpp"

extern "C" {
DUCKDB_CPP_EXTENSION_ENTRY(haduck, loader) {
	auto &fs = loader.GetDatabaseInstance().GetFileSystem();
	bool registered = false;
	for (auto &name : fs.ListSubSystems()) {
		registered = registered || name == "HaduckFileSystem";
	}
	if (!registered) {
		fs.RegisterSubSystem(duckdb::make_uniq<duckdb::HaduckFileSystem>());
	}
	duckdb::RegisterHaduckFunctions(loader);
	duckdb::RegisterHaduckConsumerFunctions(loader);
}
}
