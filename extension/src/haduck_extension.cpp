//===----------------------------------------------------------------------===//
// haduck_extension.cpp: registers haduck's file systems and SQL functions; nothing else.
//===----------------------------------------------------------------------===//
#define DUCKDB_EXTENSION_MAIN
#include "duckdb.hpp"
#include "duckdb/main/extension/extension_loader.hpp"
#include "haduck_file_system.hpp"
#include "snapshot_file_system.hpp"
#include "sql_functions.hpp"

extern "C" {
DUCKDB_CPP_EXTENSION_ENTRY(haduck, loader) {
	auto &fs = loader.GetDatabaseInstance().GetFileSystem();
	bool registered = false;
	bool snapshots = false;
	for (auto &name : fs.ListSubSystems()) {
		registered = registered || name == "HaduckFileSystem";
		snapshots = snapshots || name == "HaduckSnapshotFileSystem";
	}
	if (!registered) {
		fs.RegisterSubSystem(duckdb::make_uniq<duckdb::HaduckFileSystem>());
	}
	if (!snapshots) {
		fs.RegisterSubSystem(duckdb::make_uniq<duckdb::HaduckSnapshotFileSystem>());
	}
	duckdb::RegisterHaduckFunctions(loader);
	duckdb::RegisterHaduckConsumerFunctions(loader);
}
}
