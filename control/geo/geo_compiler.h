// GeoConfig -> CompiledGeo: where MaxMind databases, CIDR lists and the topology table become LPM
// tables (see geo_model.h). Runs in control only, never per query.
//
// What the tables say, exactly:
// - IPv4 table: for an IPv4 address, what MMDB_lookup_sockaddr(AF_INET) finds (in an IPv6
//   database, the subtree at ::/96), plus the IPv4 CIDRs.
// - IPv6 table: for an IPv6 address, what MMDB_lookup_sockaddr(AF_INET6) finds, everywhere: the
//   IPv4 data under ::/96 (IPv4-compatible addresses) and under every prefix whose record points
//   at the IPv4 subtree (MaxMind's aliases ::ffff:0:0/96, 2001::/32, 2002::/16), plus the IPv6
//   CIDRs. The aliases are stored once (lpm_format.h). An IPv4-only database contributes nothing
//   here, as libmaxminddb answers no IPv6 lookup in one.
// - CIDR lists and CIDR topology records apply to their own family only: 10.0.0.0/8 does not
//   cover ::ffff:10.1.2.3. So an IPv4 client seen as an IPv4-mapped IPv6 address (a dual-stack
//   socket) must be looked up as IPv4; then every source agrees.
// - A set matches an address with the prefix length of the network that put the address in it,
//   in that table's family (an IPv4 network of an IPv6 database counts as /n, not /96+n).
//
// Databases are checked as they are walked: every reachable node and record (each distinct data
// record is decoded whole, once), no node reached twice except the IPv4 subtree through an
// alias, no node left unreachable, no tree deeper than the address, no string past the data
// section, no build time in the future. Records are matched with MMDB_aget_value, so a field path
// element that is a number indexes an array (negative ones count from the end).
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
