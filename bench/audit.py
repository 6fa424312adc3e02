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
# Every suggestion lynis leaves on the converged droplet, with why it stays: {test id, or (test id,
# a word of its text or the first word of its detail) where one id makes several: (category, reason)}.
# container: does not apply to a container (the droplet stands in for a VM); scope: outside a web
# server tutorial, with the change that adds it; declined: chosen otherwise on purpose; image: a
# property of the test image or of a host converged a minute ago.
LYNIS_CATEGORIES = {"container": "does not apply to a container", "scope": "outside the tutorial's scope",
                    "declined": "chosen otherwise on purpose",
                    "image": "property of the test image or of the audit run"}
_NO_PASSWORDS = ("no account has a password by default (SSH keys only, PasswordAuthentication no, "
                 "passwordless sudo)")
_PARTITION = ("a container has one overlay root file system; on a droplet the disk layout is fixed when the "
              "image is made, before any configuration management runs")
_MODULE = ("is a kernel module: a container can neither load nor blacklist modules (the host kernel decides); "
           "on a VM, `install {0} /bin/true` in /etc/modprobe.d/ disables it")
LYNIS_EXPLAINED = {
    "LYNIS": ("image", "lynis compares its own release date with today: this is about Debian 12's lynis package "
                       "on the controller, not about the droplet"),
    "DEB-0280": ("scope", "a per-user $TMPDIR matters where several people log in; here only the deploy user "
                          "does (root logins are refused, the app and build users have no shell). `apt install "
                          "libpam-tmpdir` adds it"),
    "DEB-0810": ("declined", "apt-listbugs looks packages up in Debian's bug tracker; this stack runs Ubuntu, "
                             "whose packages, versions and fixes are tracked in Launchpad"),
    "DEB-0811": ("scope", "it shows changelogs to a person running apt; here apt runs from Ansible and "
                          "unattended-upgrades with nobody watching. `apt install apt-listchanges` plus a mail "
                          "transport agent mails them instead"),
    "DEB-0831": ("scope", "unattended-upgrades installs security updates daily, but a running daemon keeps the "
                          "old library until it restarts; `apt install needrestart` lists or restarts those "
                          "services after each apt run"),
    "DEB-0880": ("declined", "hardening_ufw writes its sshd jail to "
                             "/etc/fail2ban/jail.d/hardening-ufw-sshd.local, which package updates leave alone "
                             "just as they do jail.local (and which is read after Debian's "
                             "defaults-debian.conf); lynis looks for a file named jail.local only"),
    "BOOT-5264": ("scope", "systemd-analyze rates each unit's sandboxing (ProtectSystem=, PrivateTmp=, ...), "
                           "which Ubuntu's units mostly leave out; the app itself runs as the unprivileged app "
                           "user. An operator adds sandboxing per unit with a drop-in (`systemctl edit nginx`)"),
    "KRNL-5788": ("container", "a container boots no kernel of its own, so it has no /boot/vmlinuz; a VM has "
                               "one"),
    "KRNL-5820": ("scope", "an operator who wants no core dumps adds `* hard core 0` to "
                           "/etc/security/limits.conf (logins) and `DefaultLimitCORE=0` to "
                           "/etc/systemd/system.conf (services)"),
    "KRNL-6000": ("container", "the kernel.*, fs.* and dev.* values are the host kernel's (not namespaced) and "
                               "the net.* ones are read-only in a container (Docker mounts /proc/sys "
                               "read-only); on a VM a file in /etc/sysctl.d/ sets them"),
    "AUTH-9230": ("scope", "hashing rounds apply to passwords set with passwd on the server, and "
                           + _NO_PASSWORDS + "; users_ssh_password_hash arrives hashed from the controller. "
                           "`SHA_CRYPT_MIN_ROUNDS 100000` in /etc/login.defs if wanted"),
    "AUTH-9262": ("scope", "password quality rules judge passwords typed into passwd, and " + _NO_PASSWORDS + ". "
                           "`apt install libpam-pwquality` if users will set passwords"),
    "AUTH-9284": ("declined", "the locked account is the deploy user: its password is locked (`!` in "
                              "/etc/shadow) because it logs in with its SSH key only; removing it would remove "
                              "the one login"),
    ("AUTH-9286", "minimum password age"): ("scope", "password ageing applies to passwords, and "
                                                     + _NO_PASSWORDS + ". `PASS_MIN_DAYS 1` in /etc/login.defs "
                                                     "(new accounts) or `chage -m 1 USER` if wanted"),
    ("AUTH-9286", "maximum password age"): ("scope", "password ageing applies to passwords, and "
                                                     + _NO_PASSWORDS + ". `PASS_MAX_DAYS 365` in "
                                                     "/etc/login.defs (new accounts) or `chage -M 365 USER` if "
                                                     "wanted"),
    "AUTH-9328": ("scope", "login.defs' UMASK also reaches sudo sessions through pam_umask, so Ansible's become "
                           "tasks would create every file they give no mode 0640; an operator who wants it sets "
                           "`UMASK 027` in /etc/login.defs after checking nginx (www-data) still reads what it "
                           "serves"),
    ("FILE-6310", "/home"): ("container", _PARTITION),
    ("FILE-6310", "/tmp"): ("container", _PARTITION),
    ("FILE-6310", "/var"): ("container", _PARTITION),
    "USB-1000": ("container", "USB storage " + _MODULE.format("usb-storage")),
    "STRG-1846": ("container", "firewire storage " + _MODULE.format("firewire-core")),
    "NAME-4028": ("container", "the test container's hostname is its name, without a domain, and Docker writes "
                               "its resolv.conf without a search domain; a droplet is named when it is created"),
    "PKGS-7370": ("scope", "debsums checks installed files against their packages' checksums, a file integrity "
                           "check (see FINT-4350); `apt install debsums` if wanted"),
    "PKGS-7392": ("image", "the test image is a snapshot of focal: unattended-upgrades, which hardening_ufw "
                           "switches on, installs the security updates on its daily timer, not during the "
                           "converge"),
    "PKGS-7394": ("scope", "lynis uses apt-show-versions to list upgradable packages; unattended-upgrades "
                           "applies the security updates without it. `apt install apt-show-versions` if wanted"),
    ("NETW-3200", "'dccp'"): ("container", "dccp " + _MODULE.format("dccp")),
    ("NETW-3200", "'sctp'"): ("container", "sctp " + _MODULE.format("sctp")),
    ("NETW-3200", "'rds'"): ("container", "rds " + _MODULE.format("rds")),
    ("NETW-3200", "'tipc'"): ("container", "tipc " + _MODULE.format("tipc")),
    "FIRE-4513": ("image", "lynis lists iptables rules with zero packets: on a host converged a minute ago "
                           "that is most of ufw's (DHCP, multicast DNS, UPnP, ICMP types, the web ports before "
                           "any visitor); not matched yet is not unused"),
    "HTTP-6710": ("declined", "lynis wants `ssl_prefer_server_ciphers on`; nginx_site follows Mozilla's "
                              "intermediate profile (TLS 1.2 and 1.3, ciphers and protocols set), which sets it "
                              "off on purpose: every suite offered is AEAD with forward secrecy, so the client "
                              "may pick the fastest for its hardware"),
    ("SSH-7408", "AllowTcpForwarding"): ("declined", "operators reach the loopback-only services (gunicorn on "
                                                     "127.0.0.1:8000, a local PostgreSQL) with `ssh -L`; and as "
                                                     "sshd_config(5) says, it gains nothing while users have a "
                                                     "shell, as they can install their own forwarders"),
    ("SSH-7408", "Compression"): ("declined", "OpenSSH compresses only after authentication (pre-auth "
                                              "compression was removed in 7.4) and only when the client asks "
                                              "(`ssh -C`), so only a logged-in user, who has a shell anyway, "
                                              "reaches zlib"),
    ("SSH-7408", "MaxSessions"): ("declined", "it caps the sessions multiplexed on one connection; 2 would "
                                              "refuse the third on a shared connection (ansible.cfg's "
                                              "ControlMaster and ControlPersist, an operator's own "
                                              "multiplexing), so OpenSSH's 10 stays"),
    ("SSH-7408", "Port"): ("declined", "22 is the tutorial's port; another one (users_ssh_port, which "
                                       "hardening_ufw follows) only moves the scanners' noise that ufw's "
                                       "`limit` and fail2ban already absorb, while key-only login is the "
                                       "protection"),
    ("SSH-7408", "TCPKeepAlive"): ("declined", "dead sessions end through the encrypted channel after "
                                               "ClientAliveInterval 300 x ClientAliveCountMax 2 (users_ssh), so "
                                               "a spoofed TCP keepalive, lynis's concern, cannot keep one open; "
                                               "OpenSSH's default stays"),
    ("SSH-7408", "AllowAgentForwarding"): ("declined", "the client decides: an agent is forwarded only when the "
                                                       "operator asks (`ssh -A`), which Ansible does not; and "
                                                       "as sshd_config(5) says, it gains nothing while users "
                                                       "have a shell"),
    "LOGG-2154": ("scope", "it needs a log host, which a one-droplet tutorial has not got; an operator who has "
                           "one forwards the journal (systemd-journal-upload, or rsyslog with `*.* "
                           "@@loghost:514`)"),
    "BANN-7126": ("scope", "a legal warning banner is a notice for lawyers, not a control; an operator who "
                           "wants one writes it to /etc/issue"),
    "BANN-7130": ("scope", "as BANN-7126, for remote logins: the text in /etc/issue.net and `Banner "
                           "/etc/issue.net` in a file in /etc/ssh/sshd_config.d/"),
    "ACCT-9622": ("container", "process accounting needs CAP_SYS_PACCT, which Docker does not give the droplet "
                               "container; on a VM, `apt install acct` starts it"),
    "ACCT-9626": ("scope", "sysstat keeps performance history (sar), not security data; `apt install sysstat` "
                           "and ENABLED=\"true\" in /etc/default/sysstat if wanted"),
    "ACCT-9628": ("container", "the kernel's audit subsystem is not namespaced and auditd needs "
                               "CAP_AUDIT_CONTROL, which the container lacks; on a VM, `apt install auditd` and "
                               "rules for it"),
    "FINT-4350": ("scope", "a file integrity monitor needs a new baseline after every deploy and someone "
                           "reading its reports; `apt install aide` and `aideinit` if wanted"),
    "FILE-7524": ("declined", "lynis wants 0600/0700 where Ubuntu ships readable modes, such as "
                              "/etc/ssh/sshd_config (users_ssh writes it 0644 as Ubuntu does: it holds no "
                              "secret, the host keys are 0600) and the /etc/cron.* directories (0755)"),
    "HOME-9304": ("scope", "the deploy user's home is 0755 as useradd makes it under Ubuntu's UMASK 022, and "
                           "what is private in it, ~/.ssh, is 0700; `chmod 750` on it if wanted"),
    "HRDN-7222": ("declined", "gcc and as come with build-essential, which python_app installs so that pip, "
                              "running as the unprivileged build user, can compile C extensions that have no "
                              "wheel; a root-only compiler would break those builds"),
    "HRDN-7230": ("scope", "a malware scanner needs its own updates and someone reading its reports; `apt "
                           "install rkhunter` (or chkrootkit, ClamAV) if wanted"),
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
    log = gf.dexec(container, "cat /tmp/lynis.log", check=False).stdout
    (out / f"lynis-{label}.log").write_text(log)
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
            "warnings": items("warning[]"), "suggestions": items("suggestion[]"),
            "found": lynis_found(values, log)}


def lynis_found(values, log):
    """What lynis named behind some suggestions ({test id: [thing, ...]}), from the report and the log."""
    found = {"AUTH-9284": values.get("locked_account[]", []),
             "HRDN-7222": values.get("compiler_world_executable[]", []),
             "KRNL-6000": [], "FILE-7524": [], "HOME-9304": []}
    for value in values.get("details[]", []):
        parts = value.split("|")
        fields = dict(f.split(":", 1) for f in parts[2].split(";") if ":" in f) if len(parts) > 2 else {}
        if parts[0] == "KRNL-6000" and "field" in fields:
            found["KRNL-6000"].append(f"{fields['field']} = {fields.get('value')} "
                                      f"(lynis: {fields.get('prefval')})")
    test = None
    for line in log.splitlines():
        started = re.search(r"Performing test ID (\S+)", line)
        test = started.group(1) if started else test
        perms = re.search(r"permissions of file (\S+) are not matching expected value \((\d+) != (\d+)\)", line)
        if test == "FILE-7524" and perms:
            found["FILE-7524"].append(f"{perms.group(1)} {perms.group(2)} (lynis: {perms.group(3)})")
        home = re.search(r"permissions of home directory (\S+) of user (\S+) are not strict", line)
        if test == "HOME-9304" and home:
            found["HOME-9304"].append(f"{home.group(1)} ({home.group(2)})")
    return {test: list(dict.fromkeys(things)) for test, things in found.items() if things}


def lynis_explained(item):
    """(category, reason) for a lynis suggestion or warning, or None: an (id, word) entry whose word is the
    first word of the item's detail or part of its text, else the id's own entry."""
    first = item["detail"].split(" ")[0] if item["detail"] else ""
    for key, value in LYNIS_EXPLAINED.items():
        if isinstance(key, tuple) and key[0] == item["test"] and (key[1] == first or key[1] in item["text"]):
            return value
    return LYNIS_EXPLAINED.get(item["test"])


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
    unexplained = [x for x in la["suggestions"] if lynis_explained(x) is None]
    add(f"| lynis suggestions left | {len(unexplained)} unexplained ({len(la['suggestions']) - len(unexplained)} "
        f"explained below, of {len(la['suggestions'])}) | 0 | {'**met**' if not unexplained else '**NOT met**'} |")
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
        why = lynis_explained(w)
        add(f"- `{w['test']}` {w['text']}" + (f" ({w['detail']})" if w["detail"] else "")
            + (f" — {why[0]}: {why[1]}." if why else ""))
    add("")
    fixed = sorted({(x["test"], x["text"]) for x in lb["suggestions"]}
                   - {(x["test"], x["text"]) for x in la["suggestions"]})
    add(f"Suggestions of the unconfigured container that the converge addressed ({len(fixed)}):")
    add("")
    for test, text in fixed:
        add(f"- `{test}` {text}")
    add("")
    explained = [(x, lynis_explained(x)) for x in la["suggestions"] if lynis_explained(x)]
    counts = {c: sum(1 for _, why in explained if why[0] == c) for c in LYNIS_CATEGORIES}
    add(f"Every suggestion left in the converged droplet ({len(la['suggestions'])}, lynis's order), with why it "
        "stays: " + "; ".join(f"**{c}** ({counts[c]}): {meaning}" for c, meaning in LYNIS_CATEGORIES.items())
        + ". The droplet container stands in for a VM: where a suggestion does not apply to a container, the "
        "reason says what a VM needs.")
    add("")
    add("| id | suggestion | category | why |")
    add("|---|---|---|---|")
    for x, why in explained:
        add(f"| {x['test']} | {x['text']}" + (f" ({x['detail']})" if x["detail"] else "")
            + f" | {why[0]} | {why[1]} |")
    add("")
    found = {test: things for test, things in la.get("found", {}).items()
             if test in {x["test"] for x in la["suggestions"]}}
    if found:
        add("What lynis named behind some of them (bench/out/.../lynis-after.dat and .log):")
        add("")
        for test, things in found.items():
            add(f"- `{test}`: " + ", ".join(f"`{t}`" for t in things))
        add("")
    if unexplained:
        add("### Unexplained")
        add("")
        add("Suggestions with no entry in `LYNIS_EXPLAINED` (bench/audit.py): each needs a reason or a fix.")
        add("")
        for x in unexplained:
            add(f"- `{x['test']}` {x['text']}" + (f" ({x['detail']})" if x["detail"] else ""))
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
