# -*- coding: utf-8 -*-
"""The status report's judgement (playbooks/status.yml): one filter per check, one for the report.

status.yml only reads (`nginx -t`, service_facts, `supervisorctl status`, `ufw status verbose`,
`ss -Hltn`, the http_probe of /healthz through nginx, `openssl x509` on the certificate nginx
showed); each filter here turns one reading into a check, `{name, ok, detail}`:

    - name: Judge every check
      ansible.builtin.set_fact:
        __status_checks:
          - "{{ __status_nginx_t | gigaflask.stack.status_nginx_t }}"
          - "{{ ansible_facts.services | gigaflask.stack.status_service('nginx') }}"
          ...

and `status_report` makes the lines printed for a host. The unit tests (tests/unit/test_status.py)
feed them outputs captured from converged and broken servers.
"""
import datetime
import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
  name: status_report
  short_description: The status report's checks and its printed lines
  description:
    - C(status_nginx_t), C(status_service), C(status_supervisor), C(status_ufw), C(status_listening),
      C(status_certificate), C(status_healthz), C(status_database_server), C(status_database_login),
      C(status_migrations) and C(status_backup) each judge one reading of status.yml and return
      C({name, ok, detail}); C(status_report) returns the report's lines for one host.
  positional: _input
  options:
    _input:
      description: The checks (a list of C({name, ok, detail})).
      type: list
      elements: dict
      required: true
"""


def check(name, ok, detail):
    return {"name": name, "ok": bool(ok), "detail": detail}


def _lines(result, stream="stdout"):
    return [line for line in (result or {}).get(stream, "").splitlines() if line.strip()]


def status_nginx_t(result):
    """`nginx -t` (command result): ok when it exits 0; the detail is its last line."""
    lines = _lines(result, "stderr") or _lines(result, "msg") or ["nginx not found"]
    return check("nginx -t", (result or {}).get("rc") == 0, lines[-1].strip())


def status_service(services, name):
    """A systemd service from service_facts: ok when running."""
    state = (services or {}).get(name + ".service", {}).get("state")
    return check(name, state == "running", state or "not installed")


def supervisor_states(lines):
    """`supervisorctl status` lines -> [(process, state)]."""
    states = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2:
            states.append((fields[0], fields[1]))
    return states


def status_supervisor(result, program, processes=2):
    """`supervisorctl status <program>:`: ok when all `processes` (gunicorn's two slots) run."""
    states = supervisor_states(_lines(result))
    ok = (result or {}).get("rc") == 0 and len(states) == processes and {s for _, s in states} == {"RUNNING"}
    detail = ", ".join("%s %s" % pair for pair in states) or \
        (result or {}).get("stderr", "").strip() or "no such program"
    return check("supervisor program %s" % program, ok, detail)


def ufw_rules(lines):
    """The rule lines of `ufw status verbose`, columns squeezed: '22/tcp LIMIT IN Anywhere # SSH'."""
    return [re.sub(r"\s{2,}", " ", line).strip() for line in lines
            if re.search(r" (ALLOW|LIMIT|DENY|REJECT) ", line)]


def status_ufw(result, ssh_port):
    """`ufw status verbose`: ok when active and SSH (allowed or limited), 80 and 443 are open to all."""
    lines = _lines(result)
    rules = ufw_rules(lines)

    def opened(pattern):
        return any(re.match(pattern, rule) for rule in rules)

    ok = ("Status: active" in lines and opened(r"%s/tcp (ALLOW|LIMIT) IN Anywhere" % int(ssh_port))
          and opened(r"80/tcp ALLOW IN Anywhere") and opened(r"443/tcp ALLOW IN Anywhere"))
    first = lines[0] if lines else (result or {}).get("stderr", "").strip()
    return check("ufw", ok, "%s; %s" % (first, ", ".join(r for r in rules if "(v6)" not in r)))


def listening_ports(lines):
    """`ss -Hltn` lines -> local addresses ('0.0.0.0:22', '[::]:22', '127.0.0.1:8000')."""
    return [line.split()[3] for line in lines if len(line.split()) >= 4]


def status_listening(result, ssh_port, bind, socket_is_there=False):
    """`ss -Hltn`: SSH, 80 and 443 on every address, and the app where nginx expects it (a TCP
    address, or a unix socket whose presence the caller read)."""
    ports = listening_ports(_lines(result))
    public = {re.sub(r"^.*:", "", p) for p in ports if re.match(r"^(0\.0\.0\.0|\*|\[::\]):", p)}
    missing = [port for port in (str(int(ssh_port)), "80", "443") if port not in public]
    app_there = socket_is_there if bind.startswith("unix:") else bind in ports
    if not app_there:
        missing.append(bind)
    unique = list(dict.fromkeys(ports))
    prefix = "nothing listens on %s; " % ", ".join(missing) if missing else ""
    return check("listening", not missing, prefix + " ".join(unique))


def certificate_fields(lines):
    """`openssl x509 -noout -subject -issuer -enddate` lines -> {subject, issuer, notAfter}."""
    fields = {}
    for line in lines:
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip()
    return fields


def status_certificate(result, min_days, now=None):
    """The certificate nginx showed: ok with at least `min_days` left; says who issued it."""
    fields = certificate_fields(_lines(result))
    if "notAfter" not in fields:
        return check("certificate", False, "no certificate served on port 443")
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    expires = datetime.datetime.strptime(fields["notAfter"], "%b %d %H:%M:%S %Y GMT")
    days = (expires - now).days
    issuer = fields.get("issuer", "?")
    own = " (self-signed)" if fields.get("subject") == issuer else ""
    return check("certificate", days >= int(min_days),
                 "%s, issued by %s%s, %d days left" % (fields.get("subject", "?"), issuer, own, days))


def status_healthz(probe, url):
    """The http_probe of /healthz through nginx: ok on 200 with a JSON body saying status ok."""
    probe = probe or {}
    status, body = probe.get("status"), probe.get("body") or ""
    answer = probe.get("json") if isinstance(probe.get("json"), dict) else {}
    ok = status == 200 and answer.get("status") == "ok"
    if status is None:
        detail = probe.get("error") or probe.get("msg") or "no answer"
    elif re.match(r"\s*[{\[]", body):
        detail = "%s %s" % (status, body.strip())
    else:
        detail = "%s %s" % (status, probe.get("reason", ""))
    return check(url, ok, detail.strip())


def status_database_server(result):
    """`pg_isready` (command result): ok when it exits 0 (the server accepts connections)."""
    result = result or {}
    lines = _lines(result) or _lines(result, "stderr") or _lines(result, "msg") or ["pg_isready not found"]
    return check("postgresql", result.get("rc") == 0, lines[-1].strip())


def status_database_login(result, app_user):
    """The app user's login with the DATABASE_URL of its environment file, printing
    `current_user|current_database`: ok when it exits 0."""
    result = result or {}
    if result.get("rc") == 0 and "|" in result.get("stdout", ""):
        role, database = result["stdout"].strip().split("|", 1)
        return check("database login", True, "%s logs in as %s to %s" % (app_user, role, database))
    lines = _lines(result, "stderr") or _lines(result) or _lines(result, "msg") or ["no answer"]
    return check("database login", False, "%s cannot log in: %s" % (app_user, lines[-1].strip()))


def status_migrations(record, probe, command_off=False):
    """Whether the serving release's release command (its migrations) succeeded: the stat of its
    .release-command.json. With the /healthz probe's JSON, the revision the database is at and the
    newest one the release ships are shown (a rolled-back release runs on a database ahead of it)."""
    answer = (probe or {}).get("json") if isinstance((probe or {}).get("json"), dict) else {}
    seen = ""
    if answer.get("revision") is not None or answer.get("head") is not None:
        seen = "; database at %s, the release's newest %s" % (answer.get("revision"), answer.get("head"))
    if command_off:
        return check("migrations", True, "no release command" + seen)
    if ((record or {}).get("stat") or {}).get("exists"):
        return check("migrations", True, "the serving release's release command succeeded" + seen)
    return check("migrations", False, "the serving release's release command never succeeded" + seen)


def _systemd_time(value):
    """`Thu 2026-12-03 03:15:00 UTC` from `systemctl show` (None for n/a or empty)."""
    match = re.match(r"\w{3} (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) UTC$", (value or "").strip())
    if not match:
        return None
    return datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)


def status_backup(found, timer, max_hours, enabled=True, now=None):
    """The newest dump (ansible.builtin.find of the backup directory) and the backup timer
    (`systemctl show -p LastTriggerUSec -p ActiveState`): ok when backups are off, when the newest
    dump is younger than max_hours, or when there is none yet and the timer, active, never fired."""
    if not enabled:
        return check("backup", True, "nightly backups are off (postgresql_backup_enabled)")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    shown = dict(line.split("=", 1) for line in _lines(timer) if "=" in line)
    active = shown.get("ActiveState") == "active"
    files = (found or {}).get("files") or []
    if not files:
        if active and _systemd_time(shown.get("LastTriggerUSec")) is None:
            return check("backup", True, "no dump yet; the timer has not fired since it was set up")
        return check("backup", False, "no dump in the backup directory (timer %s)" % shown.get("ActiveState", "?"))
    newest = max(files, key=lambda f: f.get("mtime", 0))
    made = datetime.datetime.fromtimestamp(newest.get("mtime", 0), datetime.timezone.utc)
    hours = (now - made).total_seconds() / 3600
    detail = "newest %s, %.1f hours old" % (newest.get("path", "?").rsplit("/", 1)[-1], hours)
    if not active:
        return check("backup", False, detail + "; the timer is %s" % shown.get("ActiveState", "?"))
    return check("backup", hours <= float(max_hours), detail + ("" if hours <= float(max_hours)
                                                               else " (more than %s)" % max_hours))


def status_report(checks, host, domain):
    """The report's lines for one host: a headline, then one line per check."""
    if not isinstance(checks, list):
        raise AnsibleFilterError("status_report expects the list of checks")
    healthy = all(c["ok"] for c in checks)
    lines = ["%s (%s): %s" % (host, domain, "healthy" if healthy else "UNHEALTHY")]
    lines += ["  %s%s: %s" % ("ok    " if c["ok"] else "FAIL  ", c["name"], c["detail"]) for c in checks]
    return lines


class FilterModule(object):
    def filters(self):
        return {
            "status_nginx_t": status_nginx_t,
            "status_service": status_service,
            "status_supervisor": status_supervisor,
            "status_ufw": status_ufw,
            "status_listening": status_listening,
            "status_certificate": status_certificate,
            "status_healthz": status_healthz,
            "status_database_server": status_database_server,
            "status_database_login": status_database_login,
            "status_migrations": status_migrations,
            "status_backup": status_backup,
            "status_report": status_report,
        }
