"""Shared plumbing of bench/bench and bench/audit: droplets, timed playbook runs, docker exec.

Everything runs from the repository root with the repository's ansible.cfg, against "droplets"
started by molecule/shared/droplets_create.yml (real SSH as root, like a fresh DigitalOcean droplet).
Nothing here asserts anything: these are measurements, written to a report.
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench and audit share the tests' helpers (tests/lib)
VENV_BIN = ROOT / ".venv" / "bin"
INSTANCE = os.environ.get("GF_INSTANCE", "bench")
SSHD_IMAGE = "gigaflask/ubuntu2004:sshd"
# The other releases the stack supports (figure 7: the cold converge and the no-change run on each).
RELEASE_IMAGES = {"jammy": "gigaflask/ubuntu2204:sshd", "noble": "gigaflask/ubuntu2404:sshd"}
DOMAIN = "example.com"  # group_vars/all.yml's gigaflask_domain


def command_line(doc, smoke_dir, full_dir):
    """The options bench.py and audit.py share, and the output directory they select."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="leave the containers running")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report from the last run's results.json (after editing bench/NOTES.md)")
    args = parser.parse_args()
    out = args.out or ROOT / "bench" / "out" / (smoke_dir if args.smoke else full_dir)
    return args, out.resolve()


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def base_env():
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PYTHONUNBUFFERED="1")
    return env


def run(cmd, check=True, **kwargs):
    """subprocess.run with text output captured."""
    kwargs.setdefault("capture_output", True)
    proc = subprocess.run(cmd, text=True, check=False, env=kwargs.pop("env", base_env()), **kwargs)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                           f"{(proc.stdout or '')[-3000:]}\n{(proc.stderr or '')[-3000:]}")
    return proc


def dexec(container, script, check=True, user=None, timeout=1800):
    """Run a bash script in a container (docker exec, as root unless user); return the process."""
    cmd = ["docker", "exec"] + (["-u", user] if user else []) + [container, "bash", "-c", script]
    return run(cmd, check=check, timeout=timeout)


def gateway(container):
    return run(["docker", "inspect", "-f",
                "{{range .NetworkSettings.Networks}}{{.Gateway}} {{end}}", container]).stdout.split()[0]


def name(role):
    return f"gf-{INSTANCE}-{role}"


class Droplets:
    """A set of fresh droplet containers with their own key pair and inventory in `directory`."""

    def __init__(self, directory, names, group_vars=None, image=SSHD_IMAGE):
        self.group_vars = group_vars or {}
        self.dir = Path(directory).resolve()
        self.names = list(names)
        self.image = image
        self.dir.mkdir(parents=True, exist_ok=True)
        self.extra = json.dumps({"droplets": [{"name": n, "groups": ["web"], "image": image} for n in self.names],
                                 "droplets_dir": str(self.dir)})

    @property
    def inventory(self):
        return self.dir / "inventory.yml"

    def create(self):
        # Leftovers of an interrupted run would be reused by docker_container: remove them first.
        run(["docker", "rm", "-f", *self.names], check=False)
        run(["ansible-playbook", "molecule/shared/droplets_create.yml", "-e", self.extra], cwd=ROOT)
        # What molecule/ssh gives group `web`: the deploy user gets this run's key, and fail2ban
        # ignores the controller (the bench's own logins come from the Docker gateway).
        (self.dir / "group_vars").mkdir(exist_ok=True)
        # The operator's settings, as the scenarios get them: group_vars/all.yml beside this
        # inventory (Ansible reads the root one only beside the root inventory).
        site_vars = self.dir / "group_vars" / "all.yml"
        site_vars.unlink(missing_ok=True)
        site_vars.symlink_to(ROOT / "group_vars" / "all.yml")
        (self.dir / "group_vars" / "web.yml").write_text(json.dumps({
            "users_ssh_authorized_key_files": [str(self.dir / "droplet_key.pub")],
            "hardening_ufw_fail2ban_ignore_ips": [gateway(self.names[0])],
            **self.group_vars,
        }) + "\n")
        return self

    def destroy(self):
        run(["ansible-playbook", "molecule/shared/droplets_destroy.yml", "-e", self.extra], cwd=ROOT,
            check=False)
        for cp in self.dir.glob("cp-*"):
            run(["rm", "-rf", str(cp)], check=False)


RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+"
                   r"skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)", re.M)
PROFILE = re.compile(r"^(.+?) -+ (\d+\.\d+)s$", re.M)


class PlaybookRun:
    def __init__(self, argv, env_overrides, seconds, proc, logfile):
        self.argv, self.env_overrides, self.seconds = argv, env_overrides, seconds
        self.rc = proc.returncode
        self.output = proc.stdout
        self.log = logfile
        self.recap = {m[0]: dict(zip(["ok", "changed", "unreachable", "failed", "skipped", "rescued",
                                      "ignored"], map(int, m[1:]))) for m in RECAP.findall(self.output)}
        tail = self.output.split("TASKS RECAP", 1)[-1] if "TASKS RECAP" in self.output else ""
        self.slowest = [(t.strip(), float(s)) for t, s in PROFILE.findall(tail)]

    def breakdown(self):
        """Where the time went, from profile_tasks' per-task time stamps: per role, and tasks of one
        second or more (package installs, venvs, key generation) vs the many shorter ones."""
        stamps = re.findall(r"^TASK \[(.+?)\] \*+\n.*?\((\d+):(\d+):(\d+\.\d+)\)", self.output, re.M | re.S)
        durations = []
        for (name, *_), (_, h, m, sec) in zip(stamps, stamps[1:]):
            durations.append((name, int(h) * 3600 + int(m) * 60 + float(sec)))
        roles = {}
        for name, seconds in durations:
            role = name.split(" : ")[0] if " : " in name else "(plays without a role)"
            entry = roles.setdefault(role, [0.0, 0])
            entry[0] += seconds
            entry[1] += 1
        long_ = [d for _, d in durations if d >= 1.0]
        short = [d for _, d in durations if d < 1.0]
        return {"roles": roles, "long": [len(long_), sum(long_)], "short": [len(short), sum(short)]}

    @property
    def changed(self):
        return sum(h["changed"] for h in self.recap.values())

    @property
    def ok(self):
        return self.rc == 0 and self.recap and all(h["failed"] == 0 and h["unreachable"] == 0
                                                    for h in self.recap.values())

    @property
    def tasks(self):
        """Tasks run per host (ok counts changed ones too), averaged over the hosts."""
        if not self.recap:
            return 0
        return round(sum(h["ok"] + h["failed"] for h in self.recap.values()) / len(self.recap))

    def command(self):
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env_overrides.items())
        argv = " ".join(shlex.quote(str(a)) for a in self.argv)
        return (env + " " if env else "") + argv

    def summary(self):
        return (f"{self.seconds:.1f} s, rc={self.rc}, tasks/host={self.tasks}, changed={self.changed}, "
                f"hosts={len(self.recap)}")


_RUNS = {"n": 0}


def playbook(droplets, playbook_path, logdir, label, extra_vars=None, env=None, tags=None, check=True):
    """Time `ansible-playbook <playbook> -i <droplets' inventory>` with profile_tasks on.

    Each run gets fresh SSH control sockets, so no run rides on a previous run's connection."""
    _RUNS["n"] += 1
    overrides = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
                 "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "10",
                 "ANSIBLE_SSH_CONTROL_PATH_DIR": str(droplets.dir / f"cp-{_RUNS['n']}")}
    overrides.update(env or {})
    # Run from the repository root: the inventory path relative to it is shorter in the report.
    inventory = droplets.inventory
    argv = ["ansible-playbook", playbook_path, "-i",
            str(inventory.relative_to(ROOT)) if inventory.is_relative_to(ROOT) else str(inventory)]
    for key, value in (extra_vars or {}).items():
        argv += ["-e", json.dumps({key: value})]
    if tags:
        argv += ["--tags", tags]
    logfile = Path(logdir) / f"{label}.log"
    log(f"{label}: {' '.join(argv[:2])} ...")
    start = time.monotonic()
    proc = run(argv, check=False, cwd=ROOT, env={**base_env(), **overrides}, capture_output=False,
               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - start
    logfile.write_text(proc.stdout)
    result = PlaybookRun(argv, {k: v for k, v in overrides.items() if k != "ANSIBLE_SSH_CONTROL_PATH_DIR"},
                         seconds, proc, logfile)
    log(f"{label}: {result.summary()}")
    # Close the run's control masters: they would otherwise linger for ControlPersist.
    for sock in (droplets.dir / f"cp-{_RUNS['n']}").glob("*"):
        run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "x"], check=False)
    if check and not result.ok:
        raise RuntimeError(f"{label} failed, see {logfile}:\n{proc.stdout[-4000:]}")
    return result


def machine():
    """What the numbers were measured on."""
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo)[1])
    cpu = re.search(r"model name\s+:\s+(.+)", Path("/proc/cpuinfo").read_text())
    core = run([str(VENV_BIN / "ansible"), "--version"], check=False).stdout.splitlines()
    os_release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines()
                      if "=" in line)
    return {
        "cores": os.cpu_count(),
        "cpu": cpu[1] if cpu else "?",
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": os.uname().release,
        "os": os_release.get("PRETTY_NAME", "?").strip('"'),
        "docker": run(["docker", "version", "-f", "{{.Server.Version}}"], check=False).stdout.strip(),
        "ansible-core": core[0] if core else "?",
        "python": sys.version.split()[0],
        "load": Path("/proc/loadavg").read_text().split()[:3],
        "recipe": run(["docker", "inspect", "-f", '{{index .Config.Labels "org.gigaflask.recipe"}}', SSHD_IMAGE],
                      check=False).stdout.strip(),
    }


def machine_markdown(info, load_after=None):
    lines = [
        f"- {info['cores']} cores ({info['cpu']}), {info['memory']} memory, kernel {info['kernel']}, "
        f"{info['os']}",
        f"- Docker {info['docker']}; {info['ansible-core']} on Python {info['python']} (.venv, "
        "requirements.txt)",
        f"- Targets: `{SSHD_IMAGE}` (molecule/images/build ubuntu2004 --flavor sshd: Ubuntu 20.04 minbase "
        "+ systemd + openssh-server, host keys made at first boot; "
        f"recipe {info.get('recipe', '?')}), containers with the shared settings of "
        ".config/molecule/config.yml; apt through the local apt-cacher-ng (warm), pip from PyPI.",
        f"- Load average at the start: {' '.join(info['load'])}"
        + (f"; at the end: {' '.join(load_after)}" if load_after else "")
        + " (the machine is shared; other engineers' test runs may have been running).",
    ]
    return "\n".join(lines)
