"""Markdown tables of a provider_bench.py run: ours, upstream, floor, and ours ÷ upstream."""


def _ratio(a, b):
    return f"{a / b:.2f}" if b else "–"


def _per_mount(calls, mounts, prefix):
    return sum(v for k, v in calls.items() if k.startswith(prefix)) / max(mounts, 1)


CRED = ("eks-pod-identity-agent:", "eks-auth:", "sts:", "unknown:AssumeRole")


def _auth(case):
    return {"pod_identity": "Pod Identity", "irsa": "IRSA"}.get(case.get("auth"), "Pod Identity")


def render(res, names):
    up = "upstream" in names
    out = ["### Mount latency (ms), each mount a new pod", "",
           "| auth | secrets | mode | floor p50 | ours p50 | ours p99 |"
           + (" upstream p50 | upstream p99 | p50 ours÷up | p99 ours÷up | ours p50 ÷ floor |" if up else "")]
    out.append("|" + "---|" * (6 + (5 if up else 0)))
    for c in res["cases"]:
        o, f = c["lat"]["ours"], c["lat"]["floor"]
        row = [_auth(c), str(c["secrets"]), c["mode"], f"{_p(f, .5):.1f}", f"{_p(o, .5):.1f}", f"{_p(o, .99):.1f}"]
        if up:
            u = c["lat"]["upstream"]
            row += [f"{_p(u, .5):.1f}", f"{_p(u, .99):.1f}", _ratio(_p(o, .5), _p(u, .5)),
                    _ratio(_p(o, .99), _p(u, .99)), _ratio(_p(o, .5), _p(f, .5))]
        out.append("| " + " | ".join(row) + " |")
    out += ["", "### AWS calls per mount (counted by the stand-in)", "",
            "| auth | secrets | mode | ours: Secrets Manager | ours: credentials |"
            + (" upstream: Secrets Manager | upstream: credentials | SM ours÷up |" if up else "")]
    out.append("|" + "---|" * (5 + (3 if up else 0)))
    for c in res["cases"]:
        row = [_auth(c), str(c["secrets"]), c["mode"]]
        sm = {}
        for name in names:
            calls, m = c["calls"].get(name, {}), c["mounts"][name]
            sm[name] = _per_mount(calls, m, "secretsmanager:")
            cred = sum(_per_mount(calls, m, p) for p in CRED)
            row += [f"{sm[name]:.2f}", f"{cred:.2f}"]
        if up:
            row.append(_ratio(sm["ours"], sm["upstream"]))
        out.append("| " + " | ".join(row) + " |")
    out += ["", "### Remount (rotation poll, nothing changed), one pod", "",
            "| secrets | provider | p50 ms | p99 ms | AWS calls per remount |", "|---|---|---|---|---|"]
    for r in res["remount"]:
        calls = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["calls_per_remount"].items())) or "0"
        out.append(f"| {r['secrets']} | {r['provider']} | {r['p50']:.1f} | {r['p99']:.1f} | {calls} |")
    out += ["", "### Resident memory (MiB)", "",
            "| provider | idle | peak (VmHWM) | after N mounts (RSS) | 12 s later | threads idle → after |",
            "|---|---|---|---|---|---|"]
    mem = res["memory"]
    for name in names:
        m = mem[name]
        steps = " → ".join(f"{k}: {v / 1024:.1f}" for k, v in m.get("rss_after_kib", []))
        out.append(f"| {name} | {m['idle_kib'] / 1024:.1f} | {m.get('peak_kib', 0) / 1024:.1f} | {steps} | "
                   f"{m.get('settled_kib', 0) / 1024:.1f} | {m['threads']} → {m.get('threads_after', '?')} |")
    if up:
        o, u = mem["ours"], mem["upstream"]
        out.append(f"| ours ÷ upstream | {_ratio(o['idle_kib'], u['idle_kib'])} | "
                   f"{_ratio(o.get('peak_kib', 0), u.get('peak_kib', 0))} | "
                   f"{_ratio(o['rss_after_kib'][-1][1], u['rss_after_kib'][-1][1])} | "
                   f"{_ratio(o.get('settled_kib', 0), u.get('settled_kib', 0))} | |")
    return "\n".join(out)


def _p(xs, q):
    import math
    s = sorted(xs)
    if q == .5:
        mid = len(s) // 2
        return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


if __name__ == "__main__":
    import json
    import sys
    with open(sys.argv[1]) as f:
        res = json.load(f)
    names = [n for n in ("ours", "upstream") if n in res["memory"]]
    print(render(res, names))
