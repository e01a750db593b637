#!/usr/bin/env python3
"""Turns a bench/run.sh result directory into a markdown report (printed on stdout).

    report.py DIR                    the report of one run
    report.py --summary DIR...       the performance targets over several scales
"""
import json
import statistics
import sys
from pathlib import Path


def kv(path):
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = v
    return out


def fmt(x, digits=4):
    if x is None:
        return "n/a"
    if x >= 100:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.3f}"
    return f"{x:.{digits}f}"


def load(d):
    """One result directory: metadata, socket counts and a row per command."""
    d = Path(d)
    meta = kv(d / "meta.txt")
    before = kv(d / "counts-before.txt")
    after = kv(d / "counts-after.txt")
    rows = []
    for line in (d / "commands.tsv").read_text().splitlines():
        f = line.split("\t")
        f += [""] * (5 - len(f))
        name, cmd, status, detail, rss_kb = f[:5]
        if meta.get("portctl"):
            cmd = cmd.replace(meta["portctl"], "portctl")
        if name == "floor":
            cmd = "floor (examples/floor.rs: one dump + one-thread /proc walk)"
        if name == "floor-bpf":
            cmd = "floor-bpf (bench/floor_bpf.c: one dump + one-thread task_file iterator read)"
        for suffix, what in (("-base", "again, right before the NAT rules"), ("-nat", "with 5,000 iptables-nft nat rules"),
                             ("-natnft", "with 5,000 nft rules in a nat chain")):
            if name.endswith(suffix):
                cmd = f"{cmd}` ({what})`"
                break
        r = {"name": name, "cmd": cmd, "status": status, "detail": detail,
             "rss_mib": int(rss_kb) / 1024 if rss_kb.strip().isdigit() and int(rss_kb) > 0 else None}
        js = d / f"{name}.json"
        if status == "ok" and js.exists():
            res = json.loads(js.read_text())["results"][0]
            times = res["times"]
            r.update(runs=len(times), median=statistics.median(times), min=min(times), max=max(times),
                     user=res.get("user"), system=res.get("system"))
        rows.append(r)
    return meta, before, after, rows


def median(by, name):
    return by.get(name, {}).get("median")


def ratio(by, a, b):
    ma, mb = median(by, a), median(by, b)
    return ma / mb if ma is not None and mb else None


def us_per_socket(by, before):
    m = median(by, "portctl-conns")
    n = before.get("tcp_all", "")
    return m / int(n) * 1e6 if m is not None and n.isdigit() and int(n) > 0 else None


# The targets (issue 14, BPF owners; the /proc path's from issue 5; NAT rules from issue 17):
# (scale, label, value function, limit). `portctl-X` ran with the default owner source (BPF as
# root), `portctl-X-proc` with --owners-from proc, in the same interleaved run; `-nat` with the
# NAT rules loaded against `-base` right before them.
TARGETS = [
    ("large", "listen / `listen --owners-from proc`", lambda by, b: ratio(by, "portctl-listen", "portctl-listen-proc"), 0.35),
    ("large", "listen / `ss -tlnp`", lambda by, b: ratio(by, "portctl-listen", "ss-tlnp"), 0.10),
    ("large", "who / `who --owners-from proc`", lambda by, b: ratio(by, "portctl-who", "portctl-who-proc"), 0.45),
    ("large", "who / `ss -tanp 'sport = :P'`", lambda by, b: ratio(by, "portctl-who", "ss-tanp-sport"), 0.12),
    ("large", "who / `lsof -nP -iTCP:P`", lambda by, b: ratio(by, "portctl-who", "lsof-iTCP-port"), 0.08),
    ("large", "conns / floor-bpf (C dump + C iterator read)", lambda by, b: ratio(by, "portctl-conns", "floor-bpf"), 1.0),
    ("large", "conns / `ss -tanp`", lambda by, b: ratio(by, "portctl-conns", "ss-tanp"), 0.06),
    ("large", "/proc path: conns / floor (dump + one-thread walk)", lambda by, b: ratio(by, "portctl-conns-proc", "floor"), 0.80),
    ("large", "listen with 5,000 NAT rules / without", lambda by, b: ratio(by, "portctl-listen-nat", "portctl-listen-base"), 1.2),
    ("large", "who with 5,000 NAT rules / without", lambda by, b: ratio(by, "portctl-who-nat", "portctl-who-base"), 1.2),
    ("large", "peak RSS of conns (MiB)", lambda by, b: by.get("portctl-conns", {}).get("rss_mib"), 64),
    ("large", "peak RSS of listen (MiB)", lambda by, b: by.get("portctl-listen", {}).get("rss_mib"), 16),
    ("large", "peak RSS of conns, /proc (MiB)", lambda by, b: by.get("portctl-conns-proc", {}).get("rss_mib"), 64),
    ("large", "peak RSS of listen, /proc (MiB)", lambda by, b: by.get("portctl-listen-proc", {}).get("rss_mib"), 16),
    ("small", "conns / `ss -tan`", lambda by, b: ratio(by, "portctl-conns", "ss-tan"), 2.0),
    ("small", "listen / `ss -tan`", lambda by, b: ratio(by, "portctl-listen", "ss-tan"), 2.0),
    ("small", "who / `ss -tan`", lambda by, b: ratio(by, "portctl-who", "ss-tan"), 2.0),
    ("unix", "conns -x --state all / `ss -xap`", lambda by, b: ratio(by, "portctl-conns-unix", "ss-xap"), 0.3),
] + [
    # Issue 18: a filter expression costs no more than the equivalent flags
    # (one bytecode program either way); 10% for run-to-run noise.
    (scale, "conns expression / the same flags", lambda by, b: ratio(by, "portctl-conns-expr", "portctl-conns-flags"), 1.10)
    for scale in ("small", "medium", "large")
]


def verdict(value, limit, strict=False):
    if value is None:
        return "n/a"
    ok = value < limit if strict else value <= limit
    return "met" if ok else "**missed**"


def target_rows(runs):
    """runs: {scale: (meta, before, by)}. Rows of the targets table."""
    out = []
    for scale, label, fn, limit in TARGETS:
        if scale not in runs:
            continue
        _, before, by = runs[scale]
        v = fn(by, before)
        strict = scale == "small"
        shown = "n/a" if v is None else f"{v:.1f}" if limit >= 10 else f"{v:.3f}"
        out.append(f"| {scale} | {label} | {shown} | "
                   f"{'<' if strict else '<='} {limit} | {verdict(v, limit, strict)} |")
    if "large" in runs and "medium" in runs:
        big = us_per_socket(runs["large"][2], runs["large"][1])
        mid = us_per_socket(runs["medium"][2], runs["medium"][1])
        q = big / mid if big and mid else None
        detail = f"{fmt(q, 3)} ({big:.2f} µs/socket at large, {mid:.2f} at medium)" if q else "n/a"
        out.append(f"| large vs medium | conns time per TCP socket | {detail} | <= 1.3 | {verdict(q, 1.3)} |")
    return out


def report(d):
    meta, before, after, rows = load(d)
    by = {r["name"]: r for r in rows}
    p = []
    p.append(f"## portctl benchmark — scale `{meta.get('scale', '?')}`\n")
    p.append(f"kernel {meta.get('kernel', '?')}, {meta.get('cpus', '?')} CPUs, {meta.get('timing', '')}, "
             f"{meta.get('ss', '')}, lsof {meta.get('lsof', '')}\n")
    p.append(f"default owner source: {meta.get('owners', '?')}\n")
    p.append(f"sockpop {meta.get('sockpop_args', '')} — ready in {before.get('build_secs', '?')} s "
             f"with {before.get('holders', '?')} holder processes\n")
    p.append("### Population (network namespace)\n")
    p.append("| sockets | before | after |")
    p.append("|---|---:|---:|")
    labels = [("tcp_established", "TCP established"), ("tcp_time_wait", "TCP time-wait (topped up)"),
              ("tcp_close_wait", "TCP close-wait"), ("tcp_fin_wait_2", "TCP fin-wait-2"),
              ("tcp_listening", "TCP listening"), ("tcp_all", "TCP total (ss -tan)"), ("udp", "UDP"),
              ("unix_all", "unix (ss -xa)"), ("unix_listening", "unix listening (ss -xl)"),
              (next((k for k in before if k.startswith("port_")), "port_"), "TCP on the `who` port")]
    for key, label in labels:
        p.append(f"| {label} | {before.get(key, '?')} | {after.get(key, '?')} |")
    p.append(f"\n`ss -s` TCP line before: `{before.get('ss_s_tcp', '?')}`\n")

    p.append("### Timings\n")
    p.append("| command | runs | median (s) | min (s) | max (s) | peak RSS (MiB) |")
    p.append("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        rss = f"{r['rss_mib']:.1f}" if r["rss_mib"] is not None else "n/a"
        if "median" in r:
            p.append(f"| `{r['cmd']}` | {r['runs']} | {fmt(r['median'])} | {fmt(r['min'])} | {fmt(r['max'])} | {rss} |".replace("``", ""))
        else:
            why = f"{r['status']}: {r['detail']}".strip()
            p.append(f"| `{r['cmd']}` | – | n/a ({why}) | n/a | n/a | {rss} |".replace("``", ""))
    p.append("")

    p.append("### Ratios (portctl median / reference median; < 1 means portctl is faster)\n")
    p.append("| portctl | reference | ratio |")
    p.append("|---|---|---:|")
    for a, b in [("portctl-listen", "portctl-listen-proc"), ("portctl-who", "portctl-who-proc"),
                 ("portctl-conns", "portctl-conns-proc"), ("portctl-conns", "floor-bpf"),
                 ("portctl-conns-proc", "floor"), ("floor-bpf", "floor"),
                 ("portctl-conns", "ss-tanp"), ("portctl-listen", "ss-tlnp"),
                 ("portctl-who", "ss-tanp-sport"), ("portctl-who", "lsof-iTCP-port"),
                 ("portctl-conns", "ss-tan"), ("portctl-listen", "ss-tan"), ("portctl-who", "ss-tan"),
                 ("portctl-conns-unix", "ss-xap"), ("portctl-conns-unix", "ss-xa"), ("portctl-conns-unix", "lsof-U"),
                 ("portctl-listen-unix", "ss-xlp"), ("portctl-who-unix", "ss-xap"),
                 ("portctl-listen-nat", "portctl-listen-base"), ("portctl-who-nat", "portctl-who-base"),
                 ("portctl-listen-natnft", "portctl-listen-base"), ("portctl-who-natnft", "portctl-who-base")]:
        if a not in by and b not in by:
            continue
        ra, rb = by.get(a, {}), by.get(b, {})
        if a not in by:
            continue
        q = ratio(by, a, b)
        if q is None:
            txt = "n/a"
        else:
            txt = f"{q:.3f} ({1 / q:.1f}x faster)" if q < 1 else f"{q:.3f} ({q:.1f}x slower)"
        p.append(f"| `{ra.get('cmd', a)}` | `{rb.get('cmd', b)}` | {txt} |".replace("``", ""))
    per = us_per_socket(by, before)
    if per is not None:
        p.append(f"\n`conns` costs {per:.2f} µs per TCP socket at this scale.")
    cmp = compare(d)
    skipped = compare_skipped(d)
    if cmp or skipped:
        p.append(f"\n### Before/after: `{meta.get('baseline', 'baseline')}` (old) and this portctl (new), "
                 "interleaved on the same population\n")
    if cmp:
        p.append("| command | runs | old median (s) | new median (s) | new/old | old user+sys (s) | new user+sys (s) "
                 "| old peak RSS (MiB) | new peak RSS (MiB) |")
        p.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        p.extend(cmp)
    if skipped:
        p.append(("\n" if cmp else "") + "Left out, the baseline cannot run them: "
                 + ", ".join(f"`{name}` (exit {rc})" for name, rc in skipped) + ".")
    rows_t = target_rows({meta.get("scale"): (meta, before, by)})
    if rows_t:
        p.append("\n### Targets of the performance issue at this scale\n")
        p.append("| scale | measure | value | target | |")
        p.append("|---|---|---:|---:|---|")
        p.extend(rows_t)
    return "\n".join(p)


def compare_skipped(d):
    """(name, exit status) of the commands the baseline could not run."""
    path = Path(d) / "compare-skipped.txt"
    if not path.exists():
        return []
    return [tuple(line.split("\t")[:2]) for line in path.read_text().splitlines() if "\t" in line]


def compare(d):
    """Rows of the before/after table from compare.txt (`--baseline`)."""
    path = Path(d) / "compare.txt"
    if not path.exists():
        return []
    runs = {}
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) != 6 or f[1] not in ("old", "new"):
            continue
        try:
            wall, user, sys_, rss = float(f[2]), float(f[3]), float(f[4]), int(f[5])
        except ValueError:
            continue
        runs.setdefault(f[0], {}).setdefault(f[1], []).append((wall, user + sys_, rss / 1024))
    rows = []
    for name, by in runs.items():
        old, new = by.get("old", []), by.get("new", [])
        if not old or not new:
            continue
        med = lambda v, i: statistics.median(x[i] for x in v)
        q = med(new, 0) / med(old, 0) if med(old, 0) else None
        rows.append(f"| `{name}` | {min(len(old), len(new))} | {fmt(med(old, 0))} | {fmt(med(new, 0))} | "
                    f"{'n/a' if q is None else f'{q:.3f}'} | {fmt(med(old, 1))} | {fmt(med(new, 1))} | "
                    f"{med(old, 2):.1f} | {med(new, 2):.1f} |")
    return rows


def summary(dirs):
    """The targets table over several runs (`run.sh --scale all`)."""
    runs = {}
    for d in dirs:
        meta, before, _, rows = load(d)
        runs[meta.get("scale", "?")] = (meta, before, {r["name"]: r for r in rows})
    p = ["## Targets of the performance issue\n",
         "| scale | measure | value | target | |", "|---|---|---:|---:|---|"]
    p.extend(target_rows(runs))
    return "\n".join(p)


def main():
    args = sys.argv[1:]
    if args and args[0] == "--summary":
        print(summary(args[1:]))
    else:
        print(report(args[0]))


if __name__ == "__main__":
    main()
