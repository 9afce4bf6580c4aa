//===----------------------------------------------------------------------===//
// replicator_path.cpp: where the replicator program a DuckDB host starts (the sidecar) is found.
//===----------------------------------------------------------------------===//
#include "sidecar.hpp"

#include <cstdlib>
#include <dlfcn.h>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace haduck {

static bool Executable(const std::string &path) {
	return !path.empty() && access(path.c_str(), X_OK) == 0;
}

std::string FindReplicator(std::string &searched) {
	const char *bin = std::getenv("HADUCK_BIN");
	if (bin && *bin) {
		searched = std::string("HADUCK_BIN=") + bin;
		return Executable(bin) ? bin : "";
	}
	std::vector<std::string> candidates;
	Dl_info info;
	if (dladdr(reinterpret_cast<void *>(&FindReplicator), &info) && info.dli_fname) {
		std::string dir = info.dli_fname;
		dir = dir.substr(0, dir.find_last_of('/'));
		candidates.push_back(dir + "/haduck");
		candidates.push_back(dir + "/../.bin/haduck");          // node_modules/@haduck/<package>/ -> node_modules/.bin
		candidates.push_back(dir + "/../../.bin/haduck");       // node_modules/@haduck/extension-*/
		candidates.push_back(dir + "/../../node_modules/.bin/haduck"); // a haduck checkout: extension/build/
	}
	const char *path = std::getenv("PATH");
	std::stringstream dirs(path ? path : "");
	for (std::string dir; std::getline(dirs, dir, ':');) {
		if (!dir.empty()) {
			candidates.push_back(dir + "/haduck");
		}
	}
	for (auto &candidate : candidates) {
		if (Executable(candidate)) {
			return candidate;
		}
	}
	searched = "HADUCK_BIN (unset), beside the extension, and the PATH";
	return "";
}

} // namespace haduck
