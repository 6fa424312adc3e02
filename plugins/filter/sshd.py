# -*- coding: utf-8 -*-
"""What users_ssh reads about OpenSSH, judged in Python instead of Jinja.

- `sshd_connection_specs`: the `-C` connection specs `sshd -T` is asked about.
- `sshd_test_results`: the answers of `sshd -T`, one per spec, from the script in users_ssh's
  vars (`### <spec>`, sshd's output, `### rc=<code>`).
- `sshd_effective_problems`: what in those answers differs from what the role sets.
- `sshd_drop_in_problems`: the lines of /etc/ssh/sshd_config.d/*.conf that could give some user,
  group or address more than the role allows (a Match block that changes authentication, an Include).
- `ssh_key_lines`, `ssh_key_file_problems`: the public keys in a key file, and the files that hold
  anything else (without showing what: it may be a private key).
- `sshd_listen_ports`: the TCP ports sshd accepts connections on now, from `ss -Hltnp` (sshd binds
  them itself) or `systemctl show ssh.socket --property=Listen` (systemd holds them for sshd).
"""
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.gigaflask.stack.plugins.filter.input_checks import value_problem

DOCUMENTATION = r"""
  name: sshd_effective_problems
  short_description: Judge what sshd -T says about the configuration users_ssh is about to write
  description:
    - Filters of the gigaflask.stack collection for OpenSSH's server configuration and public keys
      (sshd_connection_specs, sshd_test_results, sshd_effective_problems, sshd_drop_in_problems,
      ssh_key_lines, ssh_key_file_problems, sshd_listen_ports).
  positional: _input
  options:
    _input:
      description: The output of users_ssh's sshd -T script, or the list its other filters take.
      type: raw
      required: true
"""

MARK = "### "

# Spellings sshd -T prints for the same value (OpenSSH 8.2 prints "without-password").
SYNONYMS = {"prohibit-password": "without-password"}
# Keywords an sshd may no longer print (ChallengeResponseAuthentication became an alias of
# KbdInteractiveAuthentication in OpenSSH 8.7): judged only when printed.
RETIRED = {"challengeresponseauthentication"}

# Keywords a Match block in a drop-in may set: none of them decides who may log in or how (they
# restrict sessions, forwarding and what runs). Everything else in a Match block is refused:
# PermitRootLogin, PasswordAuthentication, AuthenticationMethods, AuthorizedKeysFile, ...
SAFE_IN_MATCH = {
    "allowagentforwarding", "allowstreamlocalforwarding", "allowtcpforwarding", "banner",
    "chrootdirectory", "denygroups", "denyusers", "forcecommand", "gatewayports", "ipqos",
    "maxsessions", "permitlisten", "permitopen", "permittty", "permittunnel", "permituserrc",
    "streamlocalbindmask", "streamlocalbindunlink", "x11displayoffset", "x11uselocalhost",
}


def sshd_connection_specs(users, addresses, host="users-ssh.invalid"):
    """`user=U,host=H,addr=A` for every user and address, users first."""
    return ["user=%s,host=%s,addr=%s" % (user, host, address) for user in users for address in addresses]


def sshd_test_results(stdout):
    """[{spec, rc, settings: {keyword: [values]}, messages: [other lines]}] from the script's output."""
    if not isinstance(stdout, str):
        raise AnsibleFilterError("sshd_test_results expects the script's output as a string")
    results, current = [], None
    for line in stdout.splitlines():
        if line.startswith(MARK):
            body = line[len(MARK):]
            if current is not None and body.startswith("rc="):
                current["rc"] = int(body[3:])
                results.append(current)
                current = None
            else:
                current = {"spec": body, "rc": None, "settings": {}, "messages": []}
            continue
        if current is None:
            continue
        match = re.match(r"([a-z0-9]+) (.*)$", line)
        if match:
            current["settings"].setdefault(match.group(1), []).append(match.group(2))
        elif line.strip():
            current["messages"].append(line.strip())
    if current is not None:
        raise AnsibleFilterError("sshd_test_results: the answer for %s has no exit code" % current["spec"])
    return results


def _normal(value):
    return SYNONYMS.get(value, value)


def _connection_problems(result, single, multi, port):
    settings = result["settings"]
    problems = []
    for keyword, expected in single.items():
        values = settings.get(keyword)
        if values is None and keyword in RETIRED:
            continue
        if values is None or [_normal(v) for v in values] != [_normal(str(expected))]:
            problems.append('%s is "%s", not "%s"' % (keyword, " ".join(values or ["(unset)"]), expected))
    for keyword, expected in multi.items():
        values = settings.get(keyword, [])
        expected = [str(v) for v in expected]
        added = [v for v in values if v not in expected]
        missing = [v for v in expected if v not in values]
        if added:
            problems.append('%s adds "%s"' % (keyword, '", "'.join(added)))
        if missing:
            problems.append('%s lacks "%s"' % (keyword, '", "'.join(missing)))
    if port is not None:
        ports = [str(p) for p in (port if isinstance(port, (list, tuple)) else [port])]
        stray = [v for v in settings.get("listenaddress", []) if v.rpartition(":")[2] not in ports]
        if stray:
            problems.append('listenaddress adds "%s"' % '", "'.join(stray))
    return problems


def sshd_effective_problems(results, single, multi, port=None):
    """One message per difference between what sshd -T answered and what the role sets, naming
    the connections it concerns ("every connection" when all of them).

    `single`: {keyword: value} sshd must print exactly; `multi`: {keyword: [values]} sshd
    accumulates across files, which must be exactly these; `port`: every ListenAddress must use it (or
    one of them, given a list: sshd listens on the old and the new port while users_ssh moves it).
    Answers with a non-zero exit code are not judged here (see `rc`).
    """
    if not isinstance(results, list) or not isinstance(single, dict) or not isinstance(multi, dict):
        raise AnsibleFilterError("sshd_effective_problems expects results, {keyword: value}, {keyword: [values]}")
    judged = [r for r in results if r.get("rc") == 0]
    found = {}
    for result in judged:
        for problem in _connection_problems(result, single, multi, port):
            found.setdefault(problem, []).append(result["spec"])
    messages = []
    for problem, specs in found.items():
        who = "every connection" if len(specs) == len(judged) else ", ".join(specs)
        messages.append("%s (for %s)" % (problem, who))
    return messages


def _keyword(line):
    return re.split(r"[\s=]", line, maxsplit=1)[0].lower()


def sshd_drop_in_problems(files):
    """Problems in the drop-ins sshd reads after our sshd_config, each naming file and line.

    `files`: [[path, text], ...] (or [{path, content}]). A Match block may only set keywords of
    SAFE_IN_MATCH; an Include is refused because the role cannot see what it would bring in.
    """
    problems = []
    for entry in files or []:
        path, text = (entry["path"], entry["content"]) if isinstance(entry, dict) else entry
        match_line = None
        for number, raw in enumerate(str(text).splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keyword = _keyword(line)
            if keyword == "include":
                problems.append("%s line %d: '%s' reads files this check cannot see; put their settings in "
                                "the drop-in itself" % (path, number, line))
            elif keyword == "match":
                match_line = (number, " ".join(line.split()))
            elif match_line and keyword not in SAFE_IN_MATCH:
                problems.append("%s line %d: '%s' (line %d) sets %s for the connections it matches"
                                % (path, number, match_line[1], match_line[0], line.split()[0].split("=")[0]))
    return problems


def _is_key_line(line):
    return value_problem(line, "ssh_public_key") is None


def ssh_key_lines(text):
    """The public key lines of a key file (blank lines and # comments skipped), stripped."""
    lines = [line.strip() for line in str(text).splitlines()]
    return [line for line in lines if line and not line.startswith("#") and _is_key_line(line)]


def ssh_key_file_problems(files, variable="users_ssh_authorized_key_files"):
    """One message per key file (`[[path, text], ...]`) that holds no key, or a line that is not a
    public key. The lines themselves are never shown: a private key may have been given by mistake."""
    problems = []
    for path, text in files or []:
        lines = [(n, line.strip()) for n, line in enumerate(str(text).splitlines(), 1)]
        lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
        bad = [n for n, line in lines if not _is_key_line(line)]
        if "PRIVATE KEY" in str(text):
            problems.append("%s: %s holds a private key; give the .pub file" % (variable, path))
        elif bad:
            problems.append("%s: %s line %s is not an OpenSSH public key line ('ssh-ed25519 AAAA... comment')"
                            % (variable, path, ", ".join(str(n) for n in bad)))
        elif not lines:
            problems.append("%s: %s holds no public key" % (variable, path))
    return problems


# `ss -Hltnp`: "LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=34,fd=3))", IPv6 as [::]:22.
SS_LINE = re.compile(r"^\S+\s+\d+\s+\d+\s+(\S+):(\d+)\s+\S+\s+users:\((.*)\)\s*$")
# `systemctl show ssh.socket --property=Listen`: "Listen=0.0.0.0:22 (Stream)", one line per address.
SOCKET_LINE = re.compile(r"^Listen=(\S+):(\d+) \(Stream\)$")


def sshd_listen_ports(text):
    """The sorted TCP ports sshd takes connections on, from either probe's output.

    ss lines count only when an `sshd` process holds the socket (other daemons' ports are not
    sshd's to move); ssh.socket's Listen lines all belong to sshd.
    """
    if not isinstance(text, str):
        raise AnsibleFilterError("sshd_listen_ports expects the output of ss or systemctl show as a string")
    ports = set()
    for line in text.splitlines():
        line = line.strip()
        ss = SS_LINE.match(line)
        socket = SOCKET_LINE.match(line)
        if ss and '("sshd",' in ss.group(3):
            ports.add(int(ss.group(2)))
        elif socket:
            ports.add(int(socket.group(2)))
    return sorted(ports)


class FilterModule(object):
    def filters(self):
        return {
            "sshd_connection_specs": sshd_connection_specs,
            "sshd_test_results": sshd_test_results,
            "sshd_effective_problems": sshd_effective_problems,
            "sshd_drop_in_problems": sshd_drop_in_problems,
            "ssh_key_lines": ssh_key_lines,
            "ssh_key_file_problems": ssh_key_file_problems,
            "sshd_listen_ports": sshd_listen_ports,
        }
