//===----------------------------------------------------------------------===//
// duckdb_abi.hpp: which DuckDB release's C++ ABI this build targets, checked when it compiles and
// when it loads.
//
// The same sources are compiled once per supported DuckDB release (tools/_duckdb_targets.ts), each
// against that release's headers. DuckDB 1.4.5 adds two virtuals to FileSystem (RemoveFiles after
// TryRemoveFile, IsLocalFileSystem before GetName), so every FileSystem vtable slot from
// TryRemoveFile on differs between the builds: HADUCK_DUCKDB_1_4_5 turns on the 1.4.5 overrides, and
// the compile fails when it disagrees with the headers. A build that runs in another release calls
// the wrong slots, so the entry point refuses that before it makes any virtual call.
//===----------------------------------------------------------------------===//
#pragma once
#include "duckdb/common/file_system.hpp"
#include <type_traits>

namespace haduck {

//! Whether T declares RemoveFiles (FileSystem does from DuckDB 1.4.5 on).
template <class T, class = void>
struct HasRemoveFiles : std::false_type {};
template <class T>
struct HasRemoveFiles<T, decltype(void(&T::RemoveFiles))> : std::true_type {};

#ifdef HADUCK_DUCKDB_1_4_5
static_assert(HasRemoveFiles<duckdb::FileSystem>::value,
              "HADUCK_DUCKDB_1_4_5 is set, but these DuckDB headers are not 1.4.5's (FileSystem has no RemoveFiles)");
#else
static_assert(!HasRemoveFiles<duckdb::FileSystem>::value,
              "these DuckDB headers are 1.4.5's (FileSystem::RemoveFiles): build with -DHADUCK_DUCKDB_1_4_5");
#endif

#ifndef HADUCK_DUCKDB_VERSION
#error "HADUCK_DUCKDB_VERSION (the DuckDB release of the headers, such as \"v1.4.4\") is set by tools/build_extension.ts"
#endif

//! The DuckDB release whose ABI this build has: the only one it can run in.
constexpr const char *DUCKDB_BUILT_FOR = HADUCK_DUCKDB_VERSION;

} // namespace haduck
