#!/usr/bin/env python3
"""`make audit`: ssh-audit, testssl.sh, gixy and lynis against a converged droplet -> bench/AUDIT.md.

    bench/audit.py [--smoke] [--out DIR] [--keep]

Converges a fresh droplet with site.yml over real SSH (not timed), starts an unconfigured container
from the same image for lynis's "before", and runs the four auditors. --smoke (part of `make test`):
a shorter testssl.sh run, report in bench/out/audit-smoke/. Nothing is asserted: the report says
what passed.
"""
import json
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gfbench as gf  # noqa: E402
from tests.lib.ssh import container_address, container_pid, ssh_audit as ssh_audit_policy  # noqa: E402

POLICY = "Hardened Ubuntu Server 20.04 LTS (version 5)"
SEVERITIES = ["DEBUG", "INFO", "OK", "LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN", "FATAL"]
# As in roles/nginx_site/molecule/default/tests/test_scanners.py, with the same reasons.
TESTSSL_EXPLAINED = {
    "cert_chain_of_trust": "self-signed: no certificate authority vouches for it (certbot replaces it)",
    "cert_revocation": "self-signed: no issuer to publish a CRL or OCSP responder",
    "cipher_order": "Mozilla intermediate sets ssl_prefer_server_ciphers off on purpose; every suite "
                    "offered is AEAD with forward secrecy. testssl.sh 3.0 (Debian 12) rates it HIGH, "
                    "3.2 rates it LOW",
}
# testssl.sh 3.0's resumption probes race TLS 1.3's NewSessionTicket: no severity either way.
TESTSSL_FLAKY = {"sessionresumption_ticket", "sessionresumption_ID"}
GIXY_EXPLAINED = {
    "hsts_header": "no HSTS while the certificate is self-signed (nginx_site_hsts: auto); it appears "
                   "with a trusted (Let's Encrypt) certificate",
}


def ssh_audit(target):
    # From inside the target's network namespace to its own address: ssh-audit opens many connections
    # at once, which ufw's `limit` on port 22 rightly refuses from outside.
    pid, address = container_pid(target), container_address(target)
    proc = ssh_audit_policy(address, POLICY, netns_pid=pid)
    passed = proc.returncode == 0 and "Passed" in proc.stdout
    return {"command": f"nsenter -t {pid} -n ssh-audit -n --skip-rate-test -P '{POLICY}' -p 22 {address}",
            "passed": passed, "output": proc.stdout.strip() + proc.stderr.strip()}


def testssl(target, out, smoke):
    report = out / "testssl.json"
    checks = ["-p", "-S"] if smoke else ["-p", "-s", "-f", "-P", "-S", "-h", "-U", "-c", "-E"]
    cmd = [shutil.which("testssl") or "testssl.sh", "--ip", container_address(target), "--quiet", "--color", "0",
           "--warnings", "off", *checks, "--jsonfile", str(report), f"https://{gf.DOMAIN}/"]
    proc = gf.run(cmd, check=False, timeout=1200)
    findings = json.loads(report.read_text()) if report.exists() else []
    (out / "testssl.txt").write_text(proc.stdout)
    serious = [f for f in findings if f.get("severity") in ("MEDIUM", "HIGH", "CRITICAL", "WARN", "FATAL")
               and f["id"] not in TESTSSL_FLAKY]
    return {"command": " ".join(cmd), "findings": len(findings),
            "explained": [f for f in serious if f["id"] in TESTSSL_EXPLAINED],
            "unexplained": [f for f in serious if f["id"] not in TESTSSL_EXPLAINED],
            "ran": bool(findings)}


def gixy(target, out):
    dump = gf.dexec(target, "nginx -T 2>/dev/null").stdout
    (out / "nginx-T.conf").write_text(dump)
    proc = subprocess.run([str(gf.VENV_BIN / "gixy"), "--format", "json", "-"], input=dump,
                          capture_output=True, text=True, check=False)
    issues = json.loads(proc.stdout or "[]") if proc.returncode in (0, 1) else None
    return {"command": f"docker exec {target} nginx -T | gixy --format json -", "issues": issues,
            "error": proc.stderr[-1000:] if issues is None else "",
            "unexplained": [i for i in issues or [] if i.get("plugin") not in GIXY_EXPLAINED],
            "explained": [i for i in issues or [] if i.get("plugin") in GIXY_EXPLAINED]}


def lynis_tree():
    """Debian 12's lynis (a shell script; tools/host-packages.txt installs it on the controller): its
    files, to copy into each container without touching the container's package database."""
    files = [f for f in gf.run(["dpkg-query", "-L", "lynis"]).stdout.splitlines()
             if f.startswith(("/usr/sbin/lynis", "/usr/share/lynis/", "/etc/lynis/"))]
    version = gf.run(["dpkg-query", "-W", "-f", "${Version}", "lynis"]).stdout.strip()
    return files, version


def lynis(container, tree, out, label):
    # The files only (no package database change): usr/sbin/lynis, usr/share/lynis, etc/lynis.
    regular = [f for f in tree if Path(f).is_file()]
    tar = subprocess.run(["tar", "-C", "/", "-cf", "-", *[f.lstrip("/") for f in regular]],
                         capture_output=True, check=True).stdout
    subprocess.run(["docker", "exec", "-i", container, "tar", "-C", "/", "-xf", "-"], input=tar,
                   capture_output=True, check=True)
    cmd = ("lynis audit system --quick --no-colors --quiet --report-file /tmp/lynis-report.dat "
           "--logfile /tmp/lynis.log")
    gf.dexec(container, cmd, check=False, timeout=900)
    data = gf.dexec(container, "cat /tmp/lynis-report.dat").stdout
    (out / f"lynis-{label}.dat").write_text(data)
    values = {}
    for line in data.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)

    def items(key):
        result = []
        for value in values.get(key, []):
            parts = value.split("|")
            result.append({"test": parts[0], "text": parts[1] if len(parts) > 1 else "",
                           "detail": parts[2] if len(parts) > 2 and parts[2] != "-" else ""})
        return result
    return {"command": f"docker exec {container} {cmd}",
            "index": int((values.get("hardening_index") or ["0"])[0]),
            "tests": int((values.get("lynis_tests_done") or ["0"])[0]),
            "warnings": items("warning[]"), "suggestions": items("suggestion[]")}


def audit(target, unconfigured, out, smoke):
    gf.log("audit: lynis (unconfigured and converged), ssh-audit, gixy, testssl.sh")
    tree, version = lynis_tree()
    with ThreadPoolExecutor(max_workers=2) as pool:
        before = pool.submit(lynis, unconfigured, tree, out, "before")
        after = pool.submit(lynis, target, tree, out, "after")
        results = {"ssh": ssh_audit(target), "gixy": gixy(target, out)}
        results["testssl"] = testssl(target, out, smoke)
        results["lynis"] = {"before": before.result(), "after": after.result(), "version": version}
    return results


def write(results, path, info, smoke, converge_command, wall):
    out = []
    add = out.append
    add("# gigaflask security audit")
    add("")
    if smoke:
        add("**SMOKE RUN** (`bench/bench.py --smoke`, part of `make test`): testssl.sh runs its protocol and "
            "server-default checks only. It proves the audit runs.")
        add("")
    add(f"Generated by `make audit` (`bench/audit.py`) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"in {wall / 60:.1f} min, against a fresh droplet converged with `{converge_command}` (the deploy "
        "user, ufw, fail2ban, supervisor + gunicorn, nginx with the self-signed certificate; no "
        "Let's Encrypt). Machine:")
    add("")
    add(gf.machine_markdown(info))
    add("")
    s, t, g, l = results["ssh"], results["testssl"], results["gixy"], results["lynis"]
    lb, la = l["before"], l["after"]
    add("| auditor | result | goal | |")
    add("|---|---|---|---|")
    add(f"| ssh-audit, policy \"{POLICY}\" | {'Passed' if s['passed'] else 'Failed'} | pass | "
        f"{'**met**' if s['passed'] else '**NOT met**'} |")
    add(f"| testssl.sh against 443 | {len(t['unexplained'])} unexplained MEDIUM+ findings "
        f"({len(t['explained'])} explained below; {t['findings']} findings in all) | 0 beyond the self-signed "
        f"trust ones | {'**met**' if t['ran'] and not t['unexplained'] else '**NOT met**'} |")
    add(f"| gixy on `nginx -T` | {len(g['unexplained'])} issues ({len(g['explained'])} explained below) | 0 | "
        f"{'**met**' if g['issues'] is not None and not g['unexplained'] else '**NOT met**'} |")
    add(f"| lynis {l['version']} hardening index | {lb['index']} unconfigured -> **{la['index']}** converged | "
        f"(reported) | |")
    add(f"| lynis warnings | {len(lb['warnings'])} -> {len(la['warnings'])} | (reported) | |")
    add("")
    add("## ssh-audit")
    add("")
    add(f"`{s['command']}`, run inside the droplet's network namespace (ufw's `limit` on port 22 would "
        "refuse ssh-audit's burst of connections from outside, which is the firewall working):")
    add("")
    add("```\n" + s["output"][-3000:] + "\n```")
    add("")
    add("## testssl.sh")
    add("")
    add(f"`{t['command']}` (testssl.sh from Debian 12; full output in bench/out/). Findings of MEDIUM or "
        "higher:")
    add("")
    add("| id | severity | finding | why it is expected |")
    add("|---|---|---|---|")
    for f in t["explained"]:
        add(f"| {f['id']} | {f['severity']} | {f['finding']} | {TESTSSL_EXPLAINED[f['id']]} |")
    for f in t["unexplained"]:
        add(f"| {f['id']} | {f['severity']} | {f['finding']} | **not explained** |")
    add("")
    add("## gixy")
    add("")
    add(f"`{g['command']}` (gixy-ng, requirements.txt):")
    add("")
    if g["issues"] is None:
        add(f"gixy failed: `{g['error']}`")
    for i in g["explained"]:
        names = ", ".join(sorted(set(re.findall(r"server_name ([^;]+);", i.get("config", ""))))) or "?"
        add(f"- {i['plugin']} ({i.get('severity')}) in server `{names}`: expected, "
            f"{GIXY_EXPLAINED[i['plugin']]}.")
    for i in g["unexplained"]:
        add(f"- **{i['plugin']} ({i.get('severity')})**: {i.get('summary')} — not explained.")
    if g["issues"] == []:
        add("No issues.")
    add("")
    add("## lynis")
    add("")
    add(f"lynis {l['version']} (Debian 12's package, its files copied into each container), `lynis audit "
        "system --quick` in an unconfigured container from the same image (`gigaflask/ubuntu2004:sshd`) "
        "and in the converged droplet:")
    add("")
    add("| | unconfigured | converged |")
    add("|---|---:|---:|")
    add(f"| hardening index | {lb['index']} | {la['index']} |")
    add(f"| tests performed | {lb['tests']} | {la['tests']} |")
    add(f"| warnings | {len(lb['warnings'])} | {len(la['warnings'])} |")
    add(f"| suggestions | {len(lb['suggestions'])} | {len(la['suggestions'])} |")
    add("")
    add("Warnings in the converged droplet:")
    add("")
    for w in la["warnings"] or [{"test": "-", "text": "none", "detail": ""}]:
        add(f"- `{w['test']}` {w['text']}" + (f" ({w['detail']})" if w["detail"] else ""))
    add("")
    fixed = sorted({(x["test"], x["text"]) for x in lb["suggestions"]}
                   - {(x["test"], x["text"]) for x in la["suggestions"]})
    add(f"Suggestions of the unconfigured container that the converge addressed ({len(fixed)}):")
    add("")
    for test, text in fixed:
        add(f"- `{test}` {text}")
    add("")
    add("Suggestions we have not addressed (converged droplet, lynis's order):")
    add("")
    for x in la["suggestions"][:15]:
        add(f"- `{x['test']}` {x['text']}" + (f" ({x['detail']})" if x["detail"] else ""))
    if len(la["suggestions"]) > 15:
        add(f"- ... and {len(la['suggestions']) - 15} more (bench/out/.../lynis-after.dat)")
    add("")
    add("AUDIT_NOTES")
    notes_path = path.parent / "NOTES.md"
    notes = ""
    if not smoke and notes_path.exists():
        text = notes_path.read_text()
        if "@@ AUDIT_NOTES" in text:
            notes = text.split("@@ AUDIT_NOTES", 1)[1].split("\n@@ ", 1)[0].strip()
    path.write_text("\n".join(out).replace("AUDIT_NOTES", notes) + "\n")


def main():
    args, out = gf.command_line(__doc__, "audit-smoke", "audit")
    if args.report_only:
        saved = json.loads((out / "results.json").read_text())
        write(saved["results"], gf.ROOT / "bench" / "AUDIT.md", saved["info"], args.smoke, saved["converge"],
              saved["wall"])
        return 0
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    path = out / "AUDIT.md" if args.smoke else gf.ROOT / "bench" / "AUDIT.md"
    started = time.monotonic()
    info = gf.machine()
    target_d = gf.Droplets(out / "target", [gf.name("audit")])
    plain_d = gf.Droplets(out / "plain", [gf.name("audit-plain")])
    try:
        target_d.create()
        plain_d.create()
        converge = gf.playbook(target_d, "site.yml", out, "converge")
        results = audit(target_d.names[0], plain_d.names[0], out, args.smoke)
    finally:
        if not args.keep:
            target_d.destroy()
            plain_d.destroy()
    wall = time.monotonic() - started
    (out / "results.json").write_text(json.dumps({"results": results, "info": info, "converge": converge.command(),
                                                  "wall": wall}, indent=1) + "\n")
    write(results, path, info, args.smoke, converge.command(), wall)
    gf.log(f"wrote {path} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
