#!/usr/bin/env python3
"""Times commands interleaved: round after round, each command once (or a few
times, for fast ones) per round, so that a machine whose load drifts (a shared
one) weighs on every command alike and their ratios hold.

    interleave.py OUT ROUNDS PLAN.tsv

PLAN.tsv: one command per line, `name<TAB>repeats<TAB>command` (the command is
run by `bash -c "exec ..."`, stdout and stderr to /dev/null). One round of
warm-up, not counted. Writes OUT/<name>.json in hyperfine's export format
(`results[0].times` in seconds, `user`, `system` means), which
bench/report.py reads.
"""
import json
import os
import sys
import time


def run_once(cmd):
    """Wall time (s) and child user/system time (s) of one run."""
    devnull = os.open(os.devnull, os.O_RDWR)
    t = time.perf_counter()
    pid = os.posix_spawnp("bash", ["bash", "-c", "exec " + cmd], os.environ,
                          file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                                        (os.POSIX_SPAWN_DUP2, devnull, 2)])
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t
    os.close(devnull)
    return wall, usage.ru_utime, usage.ru_stime, os.waitstatus_to_exitcode(status)


def main():
    out, rounds, plan = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    cmds = []
    with open(plan) as f:
        for line in f:
            name, reps, cmd = line.rstrip("\n").split("\t", 2)
            cmds.append((name, int(reps), cmd))
    times = {name: [] for name, _, _ in cmds}
    cpu = {name: [0.0, 0.0] for name, _, _ in cmds}
    failed = {}
    for r in range(rounds + 1):
        for name, reps, cmd in cmds:
            if name in failed:
                continue
            for _ in range(reps):
                wall, user, system, code = run_once(cmd)
                # The probe vetted every command; portctl's own may still
                # fail mid-run (exit 2), the references' exit codes vary.
                if code not in (0, 1) and name.startswith(("portctl", "floor")):
                    failed[name] = code
                    break
                if r > 0:  # round 0 warms up
                    times[name].append(wall)
                    cpu[name][0] += user
                    cpu[name][1] += system
        print(f"[interleave] round {r}/{rounds} done", file=sys.stderr, flush=True)
    for name, _, cmd in cmds:
        if name in failed:
            print(f"[interleave] {name}: exit {failed[name]}", file=sys.stderr)
            continue
        n = len(times[name])
        result = {"command": name, "times": times[name], "mean": sum(times[name]) / n,
                  "user": cpu[name][0] / n, "system": cpu[name][1] / n}
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump({"results": [result]}, f)


if __name__ == "__main__":
    main()
