// GeoConfig -> CompiledGeo: where MaxMind databases, CIDR lists and the topology table become LPM
// tables (see geo_model.h). Runs in control only, never per query.
#pragma once

#include <string>
#include <vector>

#include "control/geo/geo_model.h"

namespace gtm::control::geo {

// Compiles `config`. Every database is opened with libmaxminddb and its search tree walked once;
// CIDR files are read and parsed. Returns false and sets *error to one clear line on any problem:
// a missing or unreadable file ("geo/country.mmdb: No such file or directory"), a corrupt database
// (the libmaxminddb reason, or what the walk found wrong), a bad CIDR line ("lists/cn.txt:12: bad
// prefix length /33"), a field path that is not in the database's data, more classes than an LPM
// value can hold. `out` is left untouched on failure, so the caller keeps its last good tables.
bool compile_geo(const GeoConfig& config, CompiledGeo* out, std::string* error);

// Whether any file `compiled` was built from changed on disk (size, mtime, inode or device), or
// disappeared. Cheap: one stat() per file.
bool geo_sources_changed(const CompiledGeo& compiled);

// Parses "175.16.199.0/24", "2001:250::/31" or a bare address (a /32 or /128). Address bits past
// the prefix length must be zero. Returns false and sets *error on anything else.
bool parse_cidr(const std::string& text, Cidr* out, std::string* error);

// Parses the text of a CIDR file: one CIDR (or bare address) per line, '#' starts a comment,
// blank lines and surrounding whitespace (also a CR before the newline) are ignored. Appends to
// *out with `where` = "path:line"; on a bad line returns false with "path:line: reason".
bool parse_cidr_lines(const std::string& text, const std::string& path, std::vector<Cidr>* out,
                      std::string* error);

}  // namespace gtm::control::geo
