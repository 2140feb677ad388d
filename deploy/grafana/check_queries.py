#!/usr/bin/env python3
"""Check the PromQL of the dashboard and the alerts against metrics/metrics.go.

    python3 deploy/grafana/check_queries.py [DASHBOARD.json [ALERTS.yml]]

Every metric an expression of deploy/grafana/vsl-milter.json or
deploy/prometheus/alerts.yml names must be one metrics.go registers (the
histogram's _bucket, _sum and _count series included), or Prometheus's own
`up`. When promtool is on PATH, every expression is also parsed by it (as a
recording rule in a temporary rules file). Exits 1 on any problem.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
METRICS_GO = os.path.join(ROOT, "metrics", "metrics.go")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "vsl-milter.json")
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")

# Metrics that are not vsl-milter's but may be named.
EXTERNAL = {"up"}

# Values for Grafana's variables, so that the expressions parse.
GRAFANA_VARS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$job": "vsl-milter",
    "$instance": ".*",
}

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan"}


def registered_metrics(path):
    """The full names of the metrics metrics.go registers."""
    src = open(path, encoding="utf-8").read()
    ns = re.search(r'const namespace = "(\w+)"', src).group(1)
    names = set()
    for kind, body in re.findall(r"prometheus\.New(\w+?)(?:Vec)?\(prometheus\.\w+Opts\{(.*?)\}", src, re.S):
        name = re.search(r'Name:\s*"(\w+)"', body).group(1)
        full = ns + "_" + name
        names.add(full)
        if kind == "Histogram":
            names.update({full + "_bucket", full + "_sum", full + "_count"})
    return names


def grafana_exprs(path):
    """(where, expr) of every panel target and query variable."""
    dash = json.load(open(path, encoding="utf-8"))
    out = []

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(dash.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append(("panel %r %s" % (p.get("title"), t.get("refId")), t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", q)
        if m:  # label_values(SELECTOR, label): the selector is PromQL
            out.append(("variable %s" % v["name"], m.group(1)))
    return out


def alert_exprs(path):
    try:
        import yaml
    except ImportError:
        print("note: python3-yaml missing, alerts.yml not checked")
        return []
    doc = yaml.safe_load(open(path, encoding="utf-8"))
    return [("rule %s" % (r.get("alert") or r.get("record")), r["expr"])
            for g in doc["groups"] for r in g["rules"]]


def substitute(expr):
    for k in sorted(GRAFANA_VARS, key=len, reverse=True):
        expr = expr.replace(k, GRAFANA_VARS[k])
    return expr


def metric_names(expr):
    """The metric names an expression selects."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                                           # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                                          # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)  # label lists
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if word.lower() in KEYWORDS or rest.startswith("("):
            continue  # keyword or function
        if re.fullmatch(r"\d+(\.\d+)?([smhdwy]|ms)?", word):
            continue
        names.add(word)
    return names


def promtool_parse(exprs):
    promtool = shutil.which("promtool")
    if not promtool:
        print("note: promtool not on PATH, expressions not parsed")
        return True
    try:
        import yaml
    except ImportError:
        print("note: python3-yaml missing, expressions not parsed")
        return True
    rules = [{"record": "check:expr_%d" % i, "expr": substitute(e)} for i, (_, e) in enumerate(exprs)]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}, f)
    try:
        r = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    print("promtool check rules (%d expressions): %s" % (len(rules), "ok" if r.returncode == 0 else "FAILED"))
    if r.returncode != 0:
        print(r.stdout + r.stderr)
    return r.returncode == 0


def main():
    args = sys.argv[1:] + [DASHBOARD, ALERTS][len(sys.argv) - 1:]
    known = registered_metrics(METRICS_GO)
    exprs = grafana_exprs(args[0]) + alert_exprs(args[1])
    ok = True
    used = set()
    for where, expr in exprs:
        names = metric_names(substitute(expr))
        used |= names
        unknown = names - known - EXTERNAL
        if unknown:
            ok = False
            print("UNKNOWN metric %s in %s: %s" % (", ".join(sorted(unknown)), where, expr))
        if not names:
            ok = False
            print("NO metric found in %s: %s" % (where, expr))
    print("%d expressions; metrics named: %s" % (len(exprs), ", ".join(sorted(used))))
    unused = sorted(n for n in known - used
                    if n + "_bucket" not in known and not re.search(r"_(sum|count)$", n))
    if unused:
        print("registered but never queried: %s" % ", ".join(unused))
    ok = promtool_parse(exprs) and ok
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
