# -*- coding: utf-8 -*-
"""Input checks shared by every role of the collection: one definition of each pattern.

Every value that reaches a file on a server is checked before anything changes: argument specs say
the type and the choices, and each role's `validate.yml` lists its free-text values with the kind
of value each must be. The `input_problems` filter judges that list and names every variable that
fails, so no value can add a line, a directive or an option to a configuration file:

    - name: Check the values that reach nginx's files
      ansible.builtin.assert:
        that: __problems | length == 0
        fail_msg: "nginx_site: {{ __problems | join('; ') }}"
        quiet: true
      vars:
        __problems: "{{ __nginx_site_input_checks | gigaflask.stack.input_problems }}"

where `__nginx_site_input_checks` is a list of `{name, value, kind}`: a list value is checked
element by element; a dict value has its keys checked as `key_kind` (default `env_name`) and its
values as `kind`; `optional: true` accepts an empty value; `secret: true` keeps the value out of
the message (a password hash, say). A list of records (firewall rules, say) is checked with
`fields: {field: kind}` instead of `kind`: every record may hold only those fields, each of its kind.
"""
import ipaddress
import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
  name: input_problems
  short_description: Judge a role's input against the collection's named patterns
  description:
    - Takes a list of C({name, value, kind}) and returns one message per value that is not of its kind.
    - Kinds are the patterns every role shares (DNS names, absolute paths, URLs, sizes, login names, ...).
  positional: _input
  options:
    _input:
      description: The checks, each C({name, value, kind}); C(optional=true) accepts an empty value.
      type: list
      elements: dict
      required: true
"""

LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DNS_NAME = r"(?=.{1,253}$)%s(?:\.%s)*" % (LABEL, LABEL)
# No pattern may give the regex engine two ways to split the same text (like `(?:[a-z]+/?)*`): a
# value that fails at its end would then be tried in exponentially many ways, and a long hostile
# value would hang the play. Each repeated part below ends in a character the next part cannot
# start with.
ABS_PATH = r"/(?:[A-Za-z0-9_.@+-]+/)*[A-Za-z0-9_.@+-]*"
NGINX_TIME = r"(?=[0-9])(?:[0-9]+(?:ms|s|m|h|d|w|M|y))*[0-9]*"
SSH_KEY_OPTION = r"[a-z][a-z-]*(?:=\"[^\"\n]*\")?"

# Each kind: (regular expression the whole value must match, what the message says it must be).
# No pattern admits a newline, a `;`, `{`, `}`, a quote or a leading `-` unless the kind says so.
KINDS = {
    "dns_name": (DNS_NAME, "a DNS name like example.com"),
    "dns_name_or_wildcard": (r"(?:\*\.)?" + DNS_NAME, "a DNS name like example.com or *.example.com"),
    "fqdn": (r"(?=.{1,253}$)(?:%s\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?" % LABEL,
             "a fully qualified DNS name like example.com (no wildcard)"),
    "abs_path": (ABS_PATH, "an absolute path of letters, digits and ._@+- (no spaces)"),
    "url_path": (r"/[A-Za-z0-9_.~/%+-]*", "a URL path starting with / (letters, digits, ._~/%+-)"),
    "url_path_dir": (r"/(?:[A-Za-z0-9_.~%+-]+/)*", "a URL path that starts and ends with /"),
    "name": (r"[A-Za-z0-9][A-Za-z0-9_.-]*", "a name of letters, digits, '.', '_' or '-'"),
    "login_name": (r"[a-z_][a-z0-9_-]{0,31}", "a lowercase login name (letters, digits, '_', '-'; at most 32)"),
    "env_name": (r"[A-Za-z_][A-Za-z0-9_]*", "a shell variable name"),
    "env_value": (r"[^\n\r\x00]*", "a value without newlines"),
    "email": (r"(?![.-])[A-Za-z0-9._%+-]+@" + DNS_NAME, "an email address like admin@example.com"),
    "https_url": (r"https://%s(?::[0-9]{1,5})?(?:/[A-Za-z0-9_.~/%%+=&?:-]*)?" % DNS_NAME,
                  "an https:// URL"),
    "ip": (None, "an IPv4 or IPv6 address"),
    "ip_or_cidr": (None, "an IPv4 or IPv6 address or network (CIDR)"),
    "host_port": (r"(?:%s|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}" % DNS_NAME, "host:port"),
    "bind": (r"(?:unix:/[A-Za-z0-9_.@/+-]+|(?:%s|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5})" % DNS_NAME,
             "host:port or unix:/absolute/path"),
    "nginx_size": (r"[0-9]+[kKmMgG]?", "an nginx size like 10m (digits, then k, m or g)"),
    "nginx_time": (NGINX_TIME, "an nginx time like 60s or 1h30m"),
    "supervisor_size": (r"[0-9]+(?:KB|MB|GB)?", "a supervisor size like 50MB"),
    "fail2ban_time": (r"-?[0-9]+[smhdw]?", "a fail2ban time like 600, 10m or 1h"),
    "hhmm": (r"(?:[01][0-9]|2[0-3]):[0-5][0-9]", "a time of day HH:MM"),
    "ssh_algorithm": (r"[a-z0-9][a-z0-9.@+-]*", "an OpenSSH algorithm name"),
    "git_ref": (r"(?!-)(?!.*\.\.)[A-Za-z0-9_./+@^~-]+", "a git tag, branch or commit (no leading '-')"),
    "http_header_name": (r"[A-Za-z0-9][A-Za-z0-9-]*", "an HTTP header name"),
    "http_header_value": (r"[^\"\n\r\x00\\]*", "a header value without quotes, backslashes or newlines"),
    # One simple directive: a name, arguments without anything that ends it, opens or closes a block,
    # quotes or comments (so no second directive can follow), and one ';' at the end.
    "nginx_directive": (r"[a-z_][a-z0-9_]*(?:[ \t]+[^\x00-\x1f\x7f;{}\"'#\\ \t][^\x00-\x1f\x7f;{}\"'#\\]*)?;",
                        "one nginx directive like 'access_log off;' (a name, arguments, one ';' at the end; "
                        "no braces, quotes, '#', backslashes or newlines)"),
    # The inside of a double-quoted nginx string: no quote or backslash to end or escape it, no '$'
    # (nginx would expand a variable), no control characters.
    "nginx_header_value": (r"[^\x00-\x1f\x7f\"\\$]*",
                           "a header value without double quotes, backslashes, '$' or control characters"),
    "mime_type": (r"[a-z0-9][a-z0-9.+-]*/[a-z0-9*][a-z0-9.+*-]*", "a MIME type like text/css"),
    "crypt_hash": (r"\$(?:1|2[abxy]?|5|6|y|gy|7)\$[./A-Za-z0-9$=]+", "a crypt(3) password hash (openssl passwd -6)"),
    "ssh_public_key": (r"(?:%s(?:,%s)* )?" % (SSH_KEY_OPTION, SSH_KEY_OPTION) +
                       r"(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp[0-9]+|sk-[a-z0-9-]+@openssh\.com)"
                       # The comment is free text, but nothing that could look like syntax to a
                       # reader of the file: no braces, quotes, ';', backslash or control character.
                       r"(?:-cert-v01@openssh\.com)? AAAA[0-9A-Za-z+/]+=*(?: [^\x00-\x1f\x7f{}\"'\\;]*)?",
                       "an OpenSSH public key line ('ssh-ed25519 AAAA... comment'; no braces, quotes or ';' "
                       "in the comment)"),
    "wsgi_app": (r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*(?:\(\))?", "module:variable, like app:app"),
    "shell_word": (r"(?!-)[A-Za-z0-9_./:=@%+-]+", "one word of letters, digits and ._/:=@%+- (no spaces or quotes)"),
    "version": (r"[0-9]+(?:\.[0-9A-Za-z]+)*", "a version like 23.0.0"),
    "apt_package": (r"[a-z0-9][a-z0-9+.-]+(?:=[A-Za-z0-9.+:~-]+)?", "a Debian package name (optionally =version)"),
    "group_name": (r"[a-z_][a-z0-9_-]{0,31}", "a lowercase group name"),
    "octal_mode": (r"0[0-7]{3}", "a file mode like 0660"),
    "python_dotted": (r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*", "a Python name or dotted path"),
    "url": (r"https?://%s(?::[0-9]{1,5})?(?:/[A-Za-z0-9_.~/%%+=&?:@-]*)?" % DNS_NAME, "an http:// or https:// URL"),
    "pip_location": (r"(?:https?://%s(?::[0-9]{1,5})?(?:/[A-Za-z0-9_.~/%%+=&?:@-]*)?|%s)"
                     % (DNS_NAME, ABS_PATH), "an http(s):// URL or an absolute path"),
    "git_url": (r"(?:(?:https|ssh|git|file)://[A-Za-z0-9_.~/%%+:@-]+|[A-Za-z0-9_.-]+@%s:[A-Za-z0-9_.~/+-]+)"
                % DNS_NAME, "a repository URL (https://, ssh://, git://, file:// or user@host:path)"),
    "port_or_range": (r"%s(?::%s)?" % ((r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}"
                                         r"|655[0-2][0-9]|6553[0-5])",) * 2),
                      "a port 1-65535 or a range like 8000:8010"),
    "ip_or_cidr_or_any": (None, "an IPv4 or IPv6 address or network (CIDR), or 'any'"),
    "label": (r"[A-Za-z0-9][A-Za-z0-9 _.:/()+,@-]{0,79}",
              "a short label of letters, digits, spaces and _.:/()+,@- (no quotes; at most 80)"),
    "ssh_private_key": (r"-----BEGIN [A-Z ]*PRIVATE KEY-----\n[A-Za-z0-9+/=\n:,-]+\n-----END [A-Z ]*PRIVATE KEY-----\n?",
                        "a PEM or OpenSSH private key block"),
}


def _is_ip(value, network=False):
    try:
        if network:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def value_problem(value, kind, secret=False):
    """None when `value` is of `kind`, else a short phrase saying what it must be (and, unless
    `secret`, what it got)."""
    if kind.startswith("regex:"):
        pattern, what = kind[len("regex:"):], "a value matching %s" % kind[len("regex:"):]
    elif kind in KINDS:
        pattern, what = KINDS[kind]
    else:
        raise AnsibleFilterError("input_problems: unknown kind %r" % kind)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return "must be %s, got a %s" % (what, type(value).__name__)
    text = str(value)
    if kind == "ip":
        ok = _is_ip(text)
    elif kind == "ip_or_cidr":
        ok = _is_ip(text, network=True)
    elif kind == "ip_or_cidr_or_any":
        ok = text == "any" or _is_ip(text, network=True)
    else:
        ok = re.fullmatch(pattern, text) is not None
    if ok:
        return None
    return "must be %s" % what if secret else "must be %s, got %r" % (what, text)


def input_problems(checks):
    """One message naming the variable for every value in `checks` that is not of its kind."""
    if not isinstance(checks, list):
        raise AnsibleFilterError("input_problems expects a list of {name, value, kind}")
    problems = []
    for check in checks:
        name, value = check["name"], check.get("value")
        if check.get("optional") and value in ("", None, [], {}):
            continue
        if "fields" in check:
            problems.extend(_record_problems(name, value, check["fields"]))
            continue
        kind = check["kind"]
        if isinstance(value, dict):
            items = [("%s key %r" % (name, key), key, check.get("key_kind", "env_name")) for key in value]
            items += [("%s[%r]" % (name, key), val, kind) for key, val in value.items()]
        elif isinstance(value, list):
            items = [("%s[%d]" % (name, index), item, kind) for index, item in enumerate(value)]
        else:
            items = [(name, value, kind)]
        for label, item, item_kind in items:
            problem = value_problem(item, item_kind, secret=check.get("secret", False))
            if problem:
                problems.append("%s %s" % (label, problem))
    return problems


def _record_problems(name, value, fields):
    records = value if isinstance(value, list) else [value]
    problems = []
    for index, record in enumerate(records):
        label = "%s[%d]" % (name, index) if isinstance(value, list) else name
        if not isinstance(record, dict):
            problems.append("%s must be a mapping with the fields %s" % (label, ", ".join(sorted(fields))))
            continue
        for field in sorted(set(record) - set(fields)):
            problems.append("%s has an unknown field %r (known: %s)" % (label, field, ", ".join(sorted(fields))))
        for field, kind in sorted(fields.items()):
            if field in record:
                problem = value_problem(record[field], kind)
                if problem:
                    problems.append("%s.%s %s" % (label, field, problem))
    return problems


class FilterModule(object):
    def filters(self):
        return {"input_problems": input_problems}
