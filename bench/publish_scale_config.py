"""Writes the configuration of the publish-at-scale benchmarks (bench/publish-scale.sh,
gtm-bench-publish): the full-scale country database with one region per country,
an ISP line with topology records, MEMBERS members in services of 100 (two pools of 50 in two
datacenters, an access policy over the regions, a switch policy, a mix of pool methods), STATIC
static records, and FLAPPERS extra members whose health the caller drives.

  publish_scale_config.py OUT MEMBERS STATIC FLAPPERS PROBE_PORT FLAP_PORT GEO_DB [PREFIX]

Members are probed with `tcp` on PROBE_PORT at 127.1.x.y (PREFIX, e.g. 198.19 in a namespace),
every second; `mode: always-up` when PROBE_PORT is 0 (no probes: the configuration is the same
size, control does not probe). Flapper k is 127.2.0.(k+1):FLAP_PORT, probed every 100 ms with
rise 1 / fall 1, in the site-a pool of service k.
"""
import sys

# ISO 3166-1 alpha-2: the values of the database's `country_code` field.
COUNTRIES = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT
BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH
ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT
HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS
LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI
NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG
SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG
UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW EU AP
""".split()
PER_SERVICE = 40
METHODS = ["round-robin", "ratio", "[topology, ratio]", "persistence", "return-n", "global-availability"]
# The regions each service's first rule names (its primary is site-a for them).
NEAR_A = ["CN", "JP", "KR", "TW", "HK", "SG", "IN", "AU"]


def write(out, members, static, flappers, probe_port, flap_port, geo_db, prefix="127.1"):
    lines = ["options: {unknown_health: up}",
             "geo:", f"  databases: [{{name: country, path: {geo_db}}}]", "regions:"]
    for c in COUNTRIES:
        lines.append(f"  - {{name: cc-{c.lower()}, mmdb: {{field: country_code, values: [{c}]}}}}")
    lines += ["isp_lines:", "  - name: line-telco", "    cidr: ["
              + ", ".join(f"100.{64 + i}.0.0/16" for i in range(64)) + "]",
              "datacenters: [east, west]", "topology:",
              "  - {client: line-telco, datacenter: east, score: 200}",
              "  - {client: line-telco, datacenter: west, score: 100}",
              "  - {client: cc-us, datacenter: west, score: 150}",
              "  - {client: 0.0.0.0/0, datacenter: east, score: 10}",
              "  - {client: '::/0', datacenter: west, score: 10}",
              "zones:", "  - name: scale.example.", "    soa: {mname: ns1, rname: h, serial: 1}",
              "    ns: [ns1]", "    records:", "      - {name: ns1, type: A, data: 127.0.0.1}"]
    for i in range(static):
        kind = i % 4
        if kind == 0:
            lines.append(f"      - {{name: host{i}, type: A, data: 192.0.{(i // 256) % 256}.{i % 256}}}")
        elif kind == 1:
            lines.append(f"      - {{name: host{i}, type: TXT, data: '\"record {i}\"'}}")
        elif kind == 2:
            lines.append(f"      - {{name: mx{i}, type: MX, data: \"10 host{i - 2}\"}}")
        else:
            lines.append(f"      - {{name: alias{i}, type: CNAME, data: host{i - 3}}}")
    lines.append("monitors:")
    if probe_port:
        lines.append(f"  - {{name: m, type: tcp, port: {probe_port}, interval_ms: 1000, "
                     "timeout_ms: 500, rise: 2, fall: 2}")
    lines.append(f"  - {{name: flap, type: tcp, port: {flap_port}, interval_ms: 100, "
                 "timeout_ms: 50, rise: 1, fall: 1}")
    lines.append("services:")
    services = (members + PER_SERVICE - 1) // PER_SERVICE
    n = 0
    for s in range(services):
        method = METHODS[s % len(METHODS)]
        lines += [f"  - name: s{s}.scale.example.", "    ttl: 30",
                  "    switch_policy: {min_members: 1, min_percent: 50}", "    access_policy:",
                  "      - {regions: [" + ", ".join(f"cc-{c.lower()}" for c in NEAR_A)
                  + "], primary: site-a, secondary: site-b}",
                  "      - {regions: line-telco, primary: [site-a, site-b]}",
                  "      - {primary: site-b, secondary: site-a}", "    pools:"]
        for p, dc in (("site-a", "east"), ("site-b", "west")):
            lines += [f"      - name: {p}", f"        datacenter: {dc}", f"        method: {method}"]
            if method == "return-n":
                lines.append("        count: 2")
            if probe_port:
                lines.append("        monitors: [m]")
            lines.append("        members:")
            for _ in range(PER_SERVICE // 2):
                if n >= members:
                    break
                n += 1
                mode = "" if probe_port else ", mode: always-up"
                lines.append(f"          - {{address: {prefix}.{n // 256}.{n % 256}, "
                             f"weight: {1 + n % 5}{mode}}}")
            if p == "site-a" and s < flappers:
                lines.append(f"          - {{name: flap{s}, address: 127.2.0.{s + 1}, "
                             "monitors: [flap]}")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    a = sys.argv[1:]
    write(a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]), int(a[5]), a[6],
          a[7] if len(a) > 7 else "127.1")
