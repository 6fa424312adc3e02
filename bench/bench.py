#!/usr/bin/env python3
"""`make bench`: the six figures of issue 8, measured in one run, written to bench/REPORT.md + chart.

    bench/bench.py [--smoke] [--out DIR] [--keep]

--smoke (what `make test` runs): tiny durations, 1 vs 2 hosts, A/B on one tag, then the smoke form
of bench/audit.py on one of those hosts; writes to bench/out/smoke/ and proves both still run. It
never judges a time.
Without --smoke: the full figures, written to bench/REPORT.md and bench/chart.png (scratch and logs
in bench/out/full/). See bench/README.md.
"""
import json
import shlex
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gfbench as gf  # noqa: E402

from tests.lib.apps import write_app  # noqa: E402

# The bench opens many fresh SSH connections from one address in a short time (every timed run gets
# new control sockets); ufw's `limit` on port 22 would refuse the 6th within 30 s. bench/audit.py
# and every scenario keep the default (on).
BENCH_VARS = {"hardening_ufw_ssh_rate_limit": False}
LOADCLIENT = gf.ROOT / "tests" / "lib" / "loadclient.py"
MITOGEN = "mitogen==0.3.54"


# ---------------------------------------------------------------------------- figure 1: floor
def manual_packages(container):
    return set(gf.dexec(container, "apt-mark showmanual").stdout.split())


def installed_packages(container):
    return set(gf.dexec(container, "dpkg-query -W -f='${Package}\\n'").stdout.split())


def venvs_of(container):
    """{venv dir: pip freeze --all} for every virtualenv the converge made."""
    found = gf.dexec(container, "find / -xdev -name pyvenv.cfg -not -path '/proc/*' 2>/dev/null",
                     check=False).stdout.split()
    result = {}
    for cfg in sorted(found):
        venv = str(Path(cfg).parent)
        if "/releases/" in venv and gf.dexec(container, f"test -e {venv}/../.failed", check=False).returncode == 0:
            continue
        freeze = gf.dexec(container, f"{venv}/bin/python -m pip freeze --all --disable-pip-version-check")
        # Not installable: editable/URL installs, and Ubuntu's "pkg-resources==0.0.0" artefact.
        lines = [l for l in freeze.stdout.splitlines()
                 if l and not l.startswith("-e") and " @ " not in l and not l.startswith("pkg-resources==")]
        result[venv] = lines
    return result


def floor_script(packages, venvs):
    """The converge's apt packages and pip installs, done directly in one shell script."""
    lines = ["set -e", "export DEBIAN_FRONTEND=noninteractive", "apt-get update -q",
             "apt-get install -y -q " + " ".join(sorted(packages))]
    for index, requirements in enumerate(venvs.values()):
        lines.append(f"python3 -m venv /floor/venv{index}")
        lines.append(f"/floor/venv{index}/bin/pip install -q --disable-pip-version-check "
                     + " ".join(shlex.quote(r) for r in requirements))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- figure 4: wrk
def parse_wrk(text):
    def ms(value):
        for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
            if value.endswith(unit):
                return float(value[:-len(unit)]) * factor
        return float(value)
    result = {"rps": 0.0, "p50": None, "p99": None, "non2xx": 0, "socket_errors": 0, "requests": 0}
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            result["p" + parts[0][:-1]] = ms(parts[1])
        elif "Non-2xx or 3xx responses:" in line:
            result["non2xx"] = int(parts[-1])
        elif line.strip().startswith("Socket errors:"):
            result["socket_errors"] = sum(int(p.strip(",")) for p in parts if p.strip(",").isdigit())
        elif "requests in" in line:
            result["requests"] = int(parts[0])
    result["errors"] = result["non2xx"] + result["socket_errors"]
    return result


WRK_IMAGE = "gigaflask/debian12:base"


def wrk_sidecar(container):
    """A container that shares the target's network namespace, with Debian 12's wrk.

    Ubuntu 20.04 has no wrk package (it arrived in 22.04) and Debian's binary needs a newer glibc, so
    wrk runs from Debian 12 in the target's network namespace: it connects to the target's loopback
    exactly as a process inside the target would (and shares the same CPUs, as it would)."""
    sidecar = container + "-wrk"
    gf.run(["docker", "rm", "-f", sidecar], check=False)
    gf.run(["docker", "run", "-d", "--name", sidecar, "--network", f"container:{container}", WRK_IMAGE,
            "sleep", "infinity"])
    gf.dexec(sidecar, "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk")
    return sidecar


def wrk(sidecar, url, seconds, connections=64, threads=2):
    cmd = (f"wrk -t{threads} -c{connections} -d{seconds}s --latency -H 'Host: {gf.DOMAIN}' {url}")
    proc = gf.dexec(sidecar, cmd)
    result = parse_wrk(proc.stdout)
    result.update(command=f"docker exec {sidecar} {cmd}", output=proc.stdout)
    gf.log(f"wrk {url}: {result['rps']:.0f} req/s, p50 {result['p50']} ms, p99 {result['p99']} ms, "
           f"errors {result['errors']}")
    return result


# ---------------------------------------------------------------------------- figure 5: load
class Load:
    """tests/lib/loadclient.py inside the container (a new connection every 5 ms, counts failures)."""

    def __init__(self, container, target, label):
        self.container, self.target = container, target
        self.out = f"/tmp/gf-bench-{label}.json"

    def start(self):
        gf.run(["docker", "cp", str(LOADCLIENT), f"{self.container}:/usr/local/bin/gf-loadclient"])
        gf.dexec(self.container, f"rm -f {self.out} {self.out}.stop")
        gf.run(["docker", "exec", "-d", self.container, "python3", "/usr/local/bin/gf-loadclient",
                self.target, self.out, "0.005", "/"])
        deadline = time.monotonic() + 30
        while not (self.read() or {}).get("requests"):
            if time.monotonic() > deadline:
                raise RuntimeError("the load client did not start")
            time.sleep(0.2)

    def read(self):
        proc = gf.dexec(self.container, f"cat {self.out} 2>/dev/null", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else None

    def stop(self):
        gf.dexec(self.container, f"touch {self.out}.stop")
        deadline = time.monotonic() + 30
        while not (self.read() or {}).get("stopped"):
            if time.monotonic() > deadline:
                raise RuntimeError("the load client did not stop")
            time.sleep(0.2)
        stats = self.read()
        stats["seconds"] = stats["stopped"] - stats["started"]
        stamps = [float(e.split()[0]) for e in stats["errors"]]
        # How long requests failed: first to last failure (0 when none failed).
        stats["outage"] = (max(stamps) - min(stamps)) if stamps else 0.0
        stats["errors"] = stats["errors"][:10]
        return stats


TUTORIAL_SETUP = r"""
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3-venv git supervisor
id gigaflask >/dev/null 2>&1 || useradd -m -s /bin/bash gigaflask
# The app's "GitHub" repository, here a local one.
rm -rf /srv/origin /home/gigaflask/deploy-linux
cp -r /tmp/gf-app /srv/origin && chown -R gigaflask: /srv/origin
G="runuser -u gigaflask -- git -c user.name=bench -c user.email=bench@localhost"
cd /srv/origin && $G init -q && $G add -A && $G commit -qm v1
# The tutorial: clone, venv in the checkout, pip install, supervisor [program:deploy].
cd /home/gigaflask && runuser -u gigaflask -- git clone -q /srv/origin deploy-linux
cd deploy-linux && runuser -u gigaflask -- python3 -m venv venv
runuser -u gigaflask -- venv/bin/pip install -q --disable-pip-version-check -r requirements.txt gunicorn==23.0.0
cat > /etc/supervisor/conf.d/deploy.conf <<'EOF'
[program:deploy]
command=/home/gigaflask/deploy-linux/venv/bin/gunicorn -b localhost:8000 -w 4 app:app
directory=/home/gigaflask/deploy-linux
user=gigaflask
autostart=true
autorestart=true
stopasgroup=true
killasgroup=true
EOF
supervisorctl reload
for i in $(seq 60); do python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8000/")' 2>/dev/null && exit 0; sleep 1; done
exit 1
"""

TUTORIAL_NEW_VERSION = r"""
set -e
cd /srv/origin && echo "$1" > VERSION
runuser -u gigaflask -- git -c user.name=bench -c user.email=bench@localhost commit -qam "$1"
"""

TUTORIAL_UPDATE = ("cd /home/gigaflask/deploy-linux && runuser -u gigaflask -- git pull -q && "
                   "supervisorctl stop deploy && supervisorctl start deploy")


def setup_tutorial(droplets, out):
    tut = droplets.create().names[0]
    gf.run(["docker", "cp", str(app_copy(out / "app-tutorial", "1.0.0")), f"{tut}:/tmp/gf-app"])
    gf.log("fig5: the tutorial's setup in a fresh container")
    gf.dexec(tut, TUTORIAL_SETUP)


def app_copy(directory, version):
    shutil.rmtree(directory, ignore_errors=True)
    return write_app(directory, version)


# ---------------------------------------------------------------------------- the run
def main():
    args, out = gf.command_line(__doc__, "smoke", "full")
    smoke = args.smoke
    report_path = out / "REPORT.md" if smoke else gf.ROOT / "bench" / "REPORT.md"
    chart_path = out / "chart.png" if smoke else gf.ROOT / "bench" / "chart.png"
    if args.report_only:
        import report  # noqa: E402
        report.write(json.loads((out / "results.json").read_text()), report_path, chart_path)
        return 0
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wrk_seconds = 3 if smoke else 30
    scale_hosts = 2 if smoke else 4
    # Smoke: the A/B, the second run and the scale converge on a few tags only (the code paths, not
    # the numbers, are what a smoke run checks).
    ab_tags = "certbot" if smoke else None
    scale_tags = "users" if smoke else None
    started = time.monotonic()
    info = gf.machine()
    r = {"smoke": smoke, "machine": info}

    main_d = gf.Droplets(out / "main", [gf.name("bench")], group_vars=BENCH_VARS)
    floor_d = gf.Droplets(out / "floor", [gf.name("floor")])
    tut_d = gf.Droplets(out / "tutorial", [gf.name("tutorial")])
    scale_d = gf.Droplets(out / "scale", [gf.name(f"scale{i}") for i in range(1, scale_hosts + 1)],
                          group_vars=BENCH_VARS)
    everything = [main_d, floor_d, tut_d, scale_d]
    target = main_d.names[0]
    tutorial_ready = None
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        if smoke:
            # Smoke only: set the tutorial's container up while figure 1 runs (it is not timed, and
            # smoke numbers mean nothing); the full run keeps the machine to one measurement at a time.
            tutorial_ready = pool.submit(setup_tutorial, tut_d, out)
        # ------------------------------------------------------------ 1. cold converge vs floor
        main_d.create()
        floor_d.create()
        before_manual, before_all = manual_packages(target), installed_packages(target)
        cold = gf.playbook(main_d, "site.yml", out, "fig1-cold-converge")
        new_manual = sorted(manual_packages(target) - before_manual)
        new_all = sorted(installed_packages(target) - before_all)
        venvs = venvs_of(target)
        script = floor_script(new_manual, venvs)
        (out / "floor.sh").write_text(script + "\n")
        gf.run(["docker", "cp", str(out / "floor.sh"), f"{floor_d.names[0]}:/floor.sh"])
        gf.log("fig1: the floor (same apt packages and pip installs, directly)")
        t0 = time.monotonic()
        gf.dexec(floor_d.names[0], "bash /floor.sh")
        floor_seconds = time.monotonic() - t0
        floor_pkgs = sorted(installed_packages(floor_d.names[0]) - before_all)
        gf.log(f"fig1: floor {floor_seconds:.1f} s; converge {cold.seconds:.1f} s")
        r["fig1"] = {"converge": cold.seconds, "command": cold.command(), "floor": floor_seconds,
                     "floor_command": f"docker exec {floor_d.names[0]} bash /floor.sh",
                     "floor_script": script, "manual": new_manual, "installed": len(new_all),
                     "floor_installed": len(floor_pkgs),
                     "missing_in_floor": sorted(set(new_all) - set(floor_pkgs)),
                     "venvs": venvs, "ratio": cold.seconds / floor_seconds, "slowest": cold.slowest,
                     "changed": cold.changed, "tasks": cold.tasks, "breakdown": cold.breakdown()}
        gf.run(["docker", "rm", "-f", floor_d.names[0]], check=False)

        # ------------------------------------------------------------ 2. second run
        noop = gf.playbook(main_d, "site.yml", out, "fig2-second-run", tags=ab_tags)
        r["fig2"] = {"seconds": noop.seconds, "tasks": noop.tasks, "changed": noop.changed,
                     "command": noop.command(), "slowest": noop.slowest, "breakdown": noop.breakdown(),
                     "share": noop.seconds / cold.seconds}

        # ------------------------------------------------------------ 3. A/B connection settings
        mitogen_dir = out / "mitogen"
        mitogen = gf.run([str(gf.VENV_BIN / "pip"), "install", "-q", "--target", str(mitogen_dir), MITOGEN],
                         check=False)
        facts_cache = out / "facts"
        # The baseline (ansible.cfg as shipped) is figure 2's run, measured just before.
        variants = [
            ("pipelining off", {"ANSIBLE_PIPELINING": "False"}),
            ("facts: subset min,hardware,network", {"ANSIBLE_GATHER_SUBSET": "!all,min,hardware,network"}),
            ("facts: jsonfile cache (smart)", {"ANSIBLE_GATHERING": "smart", "ANSIBLE_CACHE_PLUGIN": "jsonfile",
                                               "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(facts_cache),
                                               "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "86400"}),
        ]
        if mitogen.returncode == 0:
            variants.append(("mitogen 0.3.54 (mitogen_linear)", {
                "PYTHONPATH": str(mitogen_dir),
                "ANSIBLE_STRATEGY_PLUGINS": str(mitogen_dir / "ansible_mitogen" / "plugins" / "strategy"),
                "ANSIBLE_STRATEGY": "mitogen_linear",
                # Mitogen checks host keys itself and ignores the inventory's StrictHostKeyChecking=no
                # for these throwaway droplets; this says the same thing in its terms.
                "ANSIBLE_HOST_KEY_CHECKING": "False"}))
        ab = [{"label": "baseline: ansible.cfg as shipped (= figure 2)", "seconds": noop.seconds,
               "ok": bool(noop.ok), "changed": noop.changed, "tasks": noop.tasks, "command": noop.command()}]
        # Prime the fact cache (not timed; one tag is enough, the play gathers facts whatever the
        # tags): the cached variant measures a run after the first.
        gf.playbook(main_d, "site.yml", out, "fig3-prime-fact-cache", env=variants[2][1], tags="certbot",
                    check=False)
        for index, (label, env) in enumerate(variants, 1):
            slug = f"fig3-{index}-" + "-".join("".join(c if c.isalnum() else " " for c in label).split())
            result = gf.playbook(main_d, "site.yml", out, slug, env=env, tags=ab_tags, check=False)
            ab.append({"label": label, "seconds": result.seconds, "ok": bool(result.ok),
                       "changed": result.changed, "tasks": result.tasks, "command": result.command()})
        r["fig3"] = {"variants": ab, "mitogen_install": mitogen.returncode == 0,
                     "mitogen_error": (mitogen.stderr or "")[-500:], "tags": ab_tags}

        # ------------------------------------------------------------ 4. serving
        sidecar = wrk_sidecar(target)
        serving = {"https_tcp": wrk(sidecar, "https://127.0.0.1:443/", wrk_seconds),
                   "direct_tcp": wrk(sidecar, "http://127.0.0.1:8000/", wrk_seconds)}

        # ------------------------------------------------------------ 5. updates under load
        update = {}
        deploy_playbook = "playbooks/deploy.yml" if (gf.ROOT / "playbooks" / "deploy.yml").exists() else None
        if deploy_playbook:
            new_app = app_copy(out / "app-v2", "2.0.0-bench")
            load = Load(target, "127.0.0.1:8000", "ours")
            load.start()
            time.sleep(1)
            deploy = gf.playbook(main_d, deploy_playbook, out, "fig5-deploy-under-load",
                                 extra_vars={"python_app_src": str(new_app)})
            time.sleep(2)
            ours = load.stop()
            window = ours["seconds"]
            update["ours"] = {"command": deploy.command(), "deploy_seconds": deploy.seconds, **ours}
        else:
            window = 20.0
            update["ours"] = None
        tut = tut_d.names[0]
        if tutorial_ready is not None:
            tutorial_ready.result()
        else:
            setup_tutorial(tut_d, out)
        gf.dexec(tut, TUTORIAL_NEW_VERSION.replace('"$1"', "2.0.0-bench"))
        load = Load(tut, "127.0.0.1:8000", "tutorial")
        load.start()
        t0 = time.monotonic()
        time.sleep(1)
        gf.dexec(tut, TUTORIAL_UPDATE)
        time.sleep(max(0.0, window - (time.monotonic() - t0)))
        update["tutorial"] = {"command": f"docker exec {tut} bash -c {shlex.quote(TUTORIAL_UPDATE)}",
                              **load.stop()}
        gf.run(["docker", "rm", "-f", tut], check=False)
        r["fig5"] = update

        # ------------------------------------------------------------ 4b. unix socket bind
        unix = gf.playbook(main_d, "site.yml", out, "fig4-switch-to-unix-bind",
                           extra_vars={"gunicorn_supervisor_bind": "unix:/run/gigaflask/gunicorn.sock"},
                           tags="gunicorn,nginx")
        serving["https_unix"] = wrk(sidecar, "https://127.0.0.1:443/", wrk_seconds)
        gf.run(["docker", "rm", "-f", sidecar], check=False)
        serving["unix_switch_command"] = unix.command()
        serving["nginx_cost"] = 1 - serving["https_tcp"]["rps"] / serving["direct_tcp"]["rps"]
        r["fig4"] = serving

        if smoke:
            # The smoke form of `make audit` too, on this converged droplet.
            import audit  # noqa: E402
            audit_started = time.monotonic()
            plain_d = gf.Droplets(out / "audit-plain", [gf.name("audit-plain")])
            everything.append(plain_d)
            plain_d.create()
            findings = audit.audit(target, plain_d.names[0], out, smoke=True)
            (out / "audit.json").write_text(json.dumps(findings, indent=1) + "\n")
            audit.write(findings, out / "AUDIT.md", info, True, cold.command(),
                        time.monotonic() - audit_started)
            plain_d.destroy()

        # ------------------------------------------------------------ 6. scale
        main_d.destroy()
        scale_d.create()
        many = gf.playbook(scale_d, "site.yml", out, f"fig6-converge-{scale_hosts}-hosts", tags=scale_tags)
        r["fig6"] = {"hosts": scale_hosts, "seconds": many.seconds, "one": cold.seconds,
                     "command": many.command(), "ratio": many.seconds / cold.seconds}

        # ------------------------------------------------------------ 7. the other releases
        # Figures 1 and 2 on 20.04; here the same cold converge and no-change run on 22.04 and 24.04,
        # one fresh droplet at a time (smoke: 24.04 on the scale tags only).
        releases = {}
        for release, image in gf.RELEASE_IMAGES.items():
            if smoke and release != "noble":
                continue
            release_d = gf.Droplets(out / release, [gf.name(release)], group_vars=BENCH_VARS, image=image)
            everything.append(release_d)
            release_d.create()
            first = gf.playbook(release_d, "site.yml", out, f"fig7-{release}-cold-converge", tags=scale_tags)
            again = gf.playbook(release_d, "site.yml", out, f"fig7-{release}-second-run", tags=scale_tags)
            releases[release] = {"image": image, "cold": first.seconds, "cold_tasks": first.tasks,
                                 "cold_changed": first.changed, "command": first.command(),
                                 "second": again.seconds, "second_tasks": again.tasks,
                                 "second_changed": again.changed, "share": again.seconds / first.seconds}
            release_d.destroy()
        r["fig7"] = {"focal": {"image": gf.SSHD_IMAGE, "cold": cold.seconds, "cold_tasks": cold.tasks,
                               "cold_changed": cold.changed, "command": cold.command(),
                               "second": noop.seconds, "second_tasks": noop.tasks,
                               "second_changed": noop.changed, "share": noop.seconds / cold.seconds},
                     **releases}

    finally:
        pool.shutdown(wait=True)
        gf.run(["docker", "rm", "-f", target + "-wrk"], check=False)
        if not args.keep:
            for droplets in everything:
                droplets.destroy()

    r["wall"] = time.monotonic() - started
    r["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    r["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    (out / "results.json").write_text(json.dumps(r, indent=1, default=str) + "\n")
    import report  # noqa: E402 (matplotlib is only needed here)
    report.write(r, report_path, chart_path)
    gf.log(f"wrote {report_path} and {chart_path} in {r['wall']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
