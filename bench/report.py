#!/usr/bin/env python3
"""Turns a bench/run.sh result directory into a markdown report (printed on stdout)."""
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


def main():
    d = Path(sys.argv[1])
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
        r = {"name": name, "cmd": cmd, "status": status, "detail": detail,
             "rss_mib": int(rss_kb) / 1024 if rss_kb.strip().isdigit() and int(rss_kb) > 0 else None}
        js = d / f"{name}.json"
        if status == "ok" and js.exists():
            res = json.loads(js.read_text())["results"][0]
            times = res["times"]
            r.update(runs=len(times), median=statistics.median(times), min=min(times), max=max(times),
                     user=res.get("user"), system=res.get("system"))
        rows.append(r)
    by = {r["name"]: r for r in rows}

    p = []
    p.append(f"## portctl benchmark — scale `{meta.get('scale', '?')}`\n")
    p.append(f"kernel {meta.get('kernel', '?')}, {meta.get('cpus', '?')} CPUs, {meta.get('hyperfine', '')}, "
             f"{meta.get('ss', '')}, lsof {meta.get('lsof', '')}\n")
    p.append(f"sockpop {meta.get('sockpop_args', '')} — ready in {before.get('build_secs', '?')} s "
             f"with {before.get('holders', '?')} holder processes\n")
    p.append("### Population (network namespace)\n")
    p.append("| sockets | before | after |")
    p.append("|---|---:|---:|")
    labels = [("tcp_established", "TCP established"), ("tcp_time_wait", "TCP time-wait (topped up)"),
              ("tcp_close_wait", "TCP close-wait"), ("tcp_fin_wait_2", "TCP fin-wait-2"),
              ("tcp_listening", "TCP listening"), ("tcp_all", "TCP total (ss -tan)"), ("udp", "UDP"),
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
            p.append(f"| `{r['cmd']}` | {r['runs']} | {fmt(r['median'])} | {fmt(r['min'])} | {fmt(r['max'])} | {rss} |")
        else:
            why = f"{r['status']}: {r['detail']}".strip()
            p.append(f"| `{r['cmd']}` | – | n/a ({why}) | n/a | n/a | {rss} |")
    p.append("")

    p.append("### Ratios (portctl median / reference median; < 1 means portctl is faster)\n")
    p.append("| portctl | reference | ratio |")
    p.append("|---|---|---:|")
    for a, b in [("portctl-conns", "ss-tanp"), ("portctl-conns", "floor"), ("portctl-listen", "ss-tlnp"),
                 ("portctl-who", "ss-tanp-sport"), ("portctl-who", "lsof-iTCP-port")]:
        ra, rb = by.get(a, {}), by.get(b, {})
        if "median" in ra and "median" in rb and rb["median"] > 0:
            q = ra["median"] / rb["median"]
            txt = f"{q:.3f} ({1 / q:.1f}x faster)" if q < 1 else f"{q:.3f} ({q:.1f}x slower)"
        else:
            txt = "n/a"
        p.append(f"| `{ra.get('cmd', a)}` | `{rb.get('cmd', b)}` | {txt} |")
    print("\n".join(p))


if __name__ == "__main__":
    main()
