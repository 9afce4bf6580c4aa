//===----------------------------------------------------------------------===//
// haduck_extension.cpp: registers haduck's file systems and SQL functions; nothing else.
//===----------------------------------------------------------------------===//
#define DUCKDB_EXTENSION_MAIN
#include "duckdb.hpp"
#include "duckdb/main/extension/extension_loader.hpp"
#include "duckdb_abi.hpp"
#include "haduck_file_system.hpp"
#include "snapshot_file_system.hpp"
#include "sql_functions.hpp"

extern "C" {
DUCKDB_CPP_EXTENSION_ENTRY(haduck, loader) {
	// DuckDB refuses a build whose footer names another release, unless told to ignore it
	// (allow_extensions_metadata_mismatch). Then the first virtual call below would use another
	// release's vtable layout: refuse here, with static calls only, before making one.
	std::string running = duckdb::DuckDB::LibraryVersion();
	if (running != haduck::DUCKDB_BUILT_FOR) {
		throw duckdb::InvalidInputException(
		    "This haduck build is for DuckDB %s and cannot run in DuckDB %s (their C++ ABIs differ): load the haduck "
		    "build for %s instead (the haduck toolkit picks it by itself; set HADUCK_EXTENSION_PATH only to a build "
		    "for this DuckDB)",
		    haduck::DUCKDB_BUILT_FOR, running, running);
	}
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
