#!/usr/bin/env python3
"""Compares the map elements a wardgate nftables ruleset writes (its `add
element` commands) with what the kernel holds (`nft -j -n list table inet
wardgate` on stdin). Prints `exact` or the differences; exit 1 if any."""
import ipaddress
import json
import re
import sys


def num(kind, s):
    if kind == "addr":
        return int(ipaddress.ip_address(s))
    if kind == "classid":
        major, minor = s.split(":")
        return int(major, 16) << 16 | int(minor or "0", 16)
    return int(s)


def kinds_of(types):
    types = types if isinstance(types, list) else [types]
    return ["addr" if t.endswith("_addr") else "classid" if t == "classid" else "num" for t in types]


def written(path, kinds):
    out = {}
    text = open(path).read()
    for m in re.finditer(r"^add element inet wardgate (\w+) \{\n(.*?)\n\}$", text, re.S | re.M):
        name = m.group(1)
        for line in m.group(2).split("\n"):
            key, data = line.strip().rstrip(",").split(" : ", 1)
            fields = []
            for kind, part in zip(kinds[name], key.split(" . ")):
                lo, _, hi = part.partition("-") if kind != "addr" or "-" in part else (part, "", "")
                fields.append((num(kind, lo), num(kind, hi or lo)))
            data = data[5:] if data.startswith("goto ") else num("classid", data)
            out.setdefault(name, []).append((tuple(fields), data))
    return out


def field(kind, v):
    if isinstance(v, dict) and "prefix" in v:
        net = ipaddress.ip_network(f"{v['prefix']['addr']}/{v['prefix']['len']}")
        return (int(net.network_address), int(net.broadcast_address))
    if isinstance(v, dict) and "range" in v:
        return (num(kind, str(v["range"][0])), num(kind, str(v["range"][1])))
    return (num(kind, str(v)), num(kind, str(v)))


def main():
    back = json.load(sys.stdin)
    kinds, read = {}, {}
    for obj in back["nftables"]:
        if "map" not in obj:
            continue
        m = obj["map"]
        kinds[m["name"]] = kinds_of(m["type"])
        for key, data in m.get("elem", []):
            parts = key["concat"] if isinstance(key, dict) and "concat" in key else [key]
            fields = tuple(field(k, p) for k, p in zip(kinds[m["name"]], parts))
            data = data["goto"]["target"] if isinstance(data, dict) else num("classid", data)
            read.setdefault(m["name"], []).append((fields, data))
    wrote = written(sys.argv[1], kinds)
    bad = 0
    for name in sorted(set(wrote) | set(read)):
        w, r = sorted(wrote.get(name, [])), sorted(read.get(name, []))
        if w != r:
            bad += 1
            missing = len(set(w) - set(r))
            print(f"{name}: wrote {len(w)}, read back {len(r)}, {missing} differ")
    total = sum(len(v) for v in wrote.values())
    print(f"exact ({total} elements)" if not bad else "NOT exact")
    sys.exit(1 if bad else 0)


main()
