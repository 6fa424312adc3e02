"""The named input patterns every role checks its free-text values with (plugins/filter/input_checks.py)."""
import signal

import pytest

from ansible_collections.gigaflask.stack.plugins.filter.input_checks import KINDS, input_problems, value_problem

# Values an operator might paste that would add a line or a directive to some configuration file.
HOSTILE = ["x;", "x; return 200", "a{", "}", "x\nuser=root", "x y", "'x'", '"x"', "-x", "--upload-pack=touch /tmp/p", ""]

GOOD = {
    "dns_name": ["example.com", "www.example.com", "localhost", "a-b.example"],
    "fqdn": ["example.com", "www.example.co.uk"],
    "abs_path": ["/srv/gigaflask", "/etc/ssl/certs/site.pem", "/"],
    "url_path": ["/healthz", "/static/", "/"],
    "url_path_dir": ["/static/", "/"],
    "name": ["gigaflask", "my_app-2.0"],
    "login_name": ["gigaflask", "deploy", "gigaflask-app"],
    "env_name": ["SECRET_KEY", "_X1"],
    "email": ["admin@example.com"],
    "https_url": ["https://acme-v02.api.letsencrypt.org/directory", "https://pebble:14000/dir"],
    "ip": ["203.0.113.7", "2001:db8::1"],
    "ip_or_cidr": ["10.0.0.0/8", "203.0.113.7"],
    "host_port": ["127.0.0.1:8000", "[::1]:8000", "localhost:80"],
    "bind": ["127.0.0.1:8000", "unix:/run/gunicorn/app.sock"],
    "nginx_size": ["10m", "1G", "512"],
    "nginx_time": ["60s", "1h30m", "30d"],
    "supervisor_size": ["50MB", "1024"],
    "fail2ban_time": ["600", "10m", "-1"],
    "hhmm": ["04:00", "23:59"],
    "ssh_algorithm": ["curve25519-sha256@libssh.org", "aes256-gcm@openssh.com"],
    "git_ref": ["v1.0.0", "main", "HEAD", "0a1b2c3d", "release/2.0"],
    "wsgi_app": ["app:app", "myproject.wsgi:application", "app:create_app()"],
    "ssh_public_key": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGs you@laptop",
                       'from="10.0.0.1" ssh-rsa AAAAB3NzaC1yc2E= ops'],
    "crypt_hash": ["$6$salt$abcdefghijklmnop./"],
    "mime_type": ["text/css", "image/svg+xml", "application/vnd.ms-fontobject"],
}


@pytest.mark.parametrize("kind,value", [(k, v) for k, values in GOOD.items() for v in values])
def test_each_kind_accepts_its_values(kind, value):
    assert value_problem(value, kind) is None


# Kinds whose values are quoted where they are used and so may hold inner spaces (a ufw comment).
SPACED = {"label"}

# Kinds whose values are quoted where they are written (or are one directive by definition) and
# may hold spaces, ';' or braces: tested on their own below.
QUOTED_OR_DIRECTIVE = {"env_value", "http_header_value", "nginx_header_value", "nginx_directive"}


@pytest.mark.parametrize("kind", sorted(set(KINDS) - QUOTED_OR_DIRECTIVE))
@pytest.mark.parametrize("value", HOSTILE)
def test_no_kind_admits_a_value_that_adds_a_line_or_a_directive(kind, value):
    if kind == "ssh_public_key":
        value = "ssh-ed25519 AAAAC3 x\nssh-ed25519 AAAAC3 evil" if value == "x\nuser=root" else value
    if kind in SPACED and value == "x y":
        value = " x y"  # a leading space is still refused
    assert value_problem(value, kind) is not None, (kind, value)


@pytest.mark.parametrize("value", ["x\nuser=root", "a\rb", "nul\x00"])
def test_free_text_kinds_refuse_newlines(value):
    for kind in ("env_value", "http_header_value", "nginx_header_value", "nginx_directive"):
        assert value_problem(value, kind) is not None


def test_problems_name_the_variable_and_the_element():
    problems = input_problems([
        {"name": "nginx_site_domain", "value": "example.com; return 200", "kind": "dns_name"},
        {"name": "nginx_site_extra_names", "value": ["ok.example.com", "bad name"], "kind": "dns_name"},
        {"name": "python_app_env", "value": {"GOOD": "x", "BAD-NAME": "y", "NL": "a\nb"}, "kind": "env_value"},
        {"name": "certbot_acme_ca_bundle", "value": "", "kind": "abs_path", "optional": True},
        {"name": "gunicorn_supervisor_workers", "value": True, "kind": "name"},
    ])
    assert problems[0].startswith("nginx_site_domain must be a DNS name")
    assert problems[1].startswith("nginx_site_extra_names[1] must be")
    assert any(p.startswith("python_app_env key 'BAD-NAME'") for p in problems)
    assert any(p.startswith("python_app_env['NL']") for p in problems)
    assert problems[-1] == "gunicorn_supervisor_workers must be a name of letters, digits, '.', '_' or '-', got a bool"
    assert len(problems) == 5


def test_an_unknown_kind_is_an_error_of_the_role_not_of_the_input():
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError):
        input_problems([{"name": "x", "value": "y", "kind": "no-such-kind"}])


def test_records_are_checked_field_by_field_and_unknown_fields_are_named():
    fields = {"port": "regex:[0-9]{1,5}(?::[0-9]{1,5})?", "proto": "regex:tcp|udp|any", "from": "ip_or_cidr"}
    problems = input_problems([{"name": "hardening_ufw_rules", "fields": fields, "value": [
        {"port": 5432, "proto": "tcp", "from": "10.0.0.0/8"},
        {"port": "22; drop", "from": "anywhere"},
        {"port": 80, "comment": "web"},
        "8080",
    ]}])
    assert problems == [
        "hardening_ufw_rules[1].from must be an IPv4 or IPv6 address or network (CIDR), got 'anywhere'",
        "hardening_ufw_rules[1].port must be a value matching [0-9]{1,5}(?::[0-9]{1,5})?, got '22; drop'",
        "hardening_ufw_rules[2] has an unknown field 'comment' (known: from, port, proto)",
        "hardening_ufw_rules[3] must be a mapping with the fields from, port, proto",
    ]


@pytest.mark.parametrize("kind,value", [
    ("version", "23.0.0"), ("apt_package", "python3-venv"), ("apt_package", "nginx=1.18.0-0ubuntu1"),
    ("octal_mode", "0660"), ("python_dotted", "gunicorn.workers.gthread"), ("url", "http://pypi.example/simple"),
    ("pip_location", "/opt/wheels"), ("git_url", "https://github.com/you/app.git"),
    ("git_url", "git@github.com:you/app.git"), ("git_url", "file:///srv/repo.git"),
    ("ssh_private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----\n"),
])
def test_more_kinds_accept_their_values(kind, value):
    assert value_problem(value, kind) is None


@pytest.mark.parametrize("value", ["--upload-pack=touch /tmp/pwned", "-oProxyCommand=x", "https://x y", "ext::sh -c x"])
def test_a_git_url_cannot_be_an_option_or_a_transport_helper(value):
    assert value_problem(value, "git_url") is not None


@pytest.mark.parametrize("kind,value", [
    ("port_or_range", "22"), ("port_or_range", "65535"), ("port_or_range", "60000:61000"), ("port_or_range", 5432),
    ("ip_or_cidr_or_any", "any"), ("ip_or_cidr_or_any", "10.0.0.0/8"), ("ip_or_cidr_or_any", "2001:db8::/32"),
    ("label", "PostgreSQL from the private network"), ("label", "mosh (60000:61000)"),
])
def test_firewall_kinds_accept_their_values(kind, value):
    assert value_problem(value, kind) is None


@pytest.mark.parametrize("kind,value", [
    ("port_or_range", "0"), ("port_or_range", "65536"), ("port_or_range", "22 from 1.2.3.4"), ("port_or_range", "80:"),
    ("ip_or_cidr_or_any", "anywhere"), ("ip_or_cidr_or_any", "10.0.0.0/33"),
    ("label", "x' proto udp '"), ("label", "x" * 81),
])
def test_firewall_kinds_refuse_what_would_add_an_option(kind, value):
    assert value_problem(value, kind) is not None


def test_a_secret_value_is_named_but_never_shown():
    problems = input_problems([{"name": "users_ssh_password_hash", "value": "hunter2", "kind": "crypt_hash",
                                "secret": True}])
    assert problems == ["users_ssh_password_hash must be a crypt(3) password hash (openssl passwd -6)"]


def test_a_long_word_is_refused_as_a_public_key_without_backtracking_for_ever():
    # The key options were once `(word,?)+`: on a long word with no key after it, the regular
    # expression tried every way to split the word, 2**n of them (48 letters: days).
    assert value_problem("not-a-key-just-a-long-hyphenated-phrase-pasted-by-mistake!", "ssh_public_key") is not None


# Long values made of the characters each kind allows, with a bad last character: a pattern with
# two ways to match the same text (`(segment/?)*`, `(digits unit?)+`) tries all 2**n of them before
# it fails, and the play hangs for hours on one pasted value. Not a speed goal: a matcher that ends
# takes microseconds here, one that does not is stopped after 10 s.
PIECES = ["a", "a-", "a.", "a/", "/a", "a:", "a@", "a1", "A", "0", "a=", "a,", "-", "aa.b", "$a", "a+", "%2"]
HEADS = ["", "/", "https://a.b/", "ssh-ed25519 AAAA", "$6$", "a@b.c:"]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_kind_backtracks_for_ever_on_a_long_bad_value(kind):
    import signal

    def stop(*_):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, stop)
    try:
        for head in HEADS:
            for piece in PIECES:
                for tail in ("!", "; x", "\n"):
                    value = head + piece * 40 + tail
                    signal.alarm(10)
                    try:
                        value_problem(value, kind)
                    except TimeoutError:
                        pytest.fail("%s: no answer after 10 s for %r" % (kind, value))
                    finally:
                        signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("value", ["access_log off;", "client_body_timeout 10s;", "http2_max_requests 500;",
                                   "add_header X-Request-Id $request_id always;", "limit_rate 100k;", "gzip_static on ;"])
def test_an_nginx_directive_is_one_simple_directive(value):
    assert value_problem(value, "nginx_directive") is None


@pytest.mark.parametrize("value", [
    "access_log off; return 200 pwned;",       # a second directive
    "access_log off",                          # no end: the next line would continue it
    "location /x { return 200; }",             # a block
    "}",                                       # closes the server block
    "return 200 'pwned';",                     # quotes can hide a ';' from a pattern
    'add_header X "a;b";',
    "access_log off; # comment",
    "access_log off;\nreturn 200;",            # a second line
    "access_log off;\rreturn 200;",
    "access_log\toff;\x00",
    "-access_log off;",                        # not a directive name
    "Access_log off;",
    "access_log \\; off;",                    # an escaped ';'
    ";",
    "",
])
def test_an_nginx_directive_cannot_smuggle_a_second_one_or_a_block(value):
    assert value_problem(value, "nginx_directive") is not None, value


@pytest.mark.parametrize("value", ["frame-ancestors 'none'", "default-src 'self'; img-src *", "nosniff",
                                   "strict-origin-when-cross-origin", "a{b}c", ""])
def test_an_nginx_header_value_may_hold_what_a_quoted_string_keeps_harmless(value):
    assert value_problem(value, "nginx_header_value") is None


@pytest.mark.parametrize("value", ['x" always; return 200 "', "x\\", "$http_cookie", "a\nb", "a\tb", "a\x7fb"])
def test_an_nginx_header_value_cannot_leave_its_quotes_or_expand_a_variable(value):
    assert value_problem(value, "nginx_header_value") is not None, value


def test_dict_keys_are_checked_with_their_own_kind():
    problems = input_problems([{"name": "nginx_site_security_headers", "kind": "nginx_header_value",
                                "key_kind": "http_header_name",
                                "value": {"X-Frame-Options": "DENY", "X Bad": "ok", "X-Ok": 'bad"'}}])
    assert problems == [
        "nginx_site_security_headers key 'X Bad' must be an HTTP header name, got 'X Bad'",
        "nginx_site_security_headers['X-Ok'] must be a header value without double quotes, backslashes, '$' "
        "or control characters, got 'bad\"'",
    ]


@pytest.mark.parametrize("value", ["-admin@example.com", "--email=x@example.com", ".x@example.com"])
def test_an_email_cannot_be_read_as_an_option(value):
    assert value_problem(value, "email") is not None


@pytest.mark.parametrize("kind,value", [("abs_path", "/"), ("abs_path", "/srv/app/"), ("abs_path", "/a/b.c"),
                                        ("nginx_time", "60"), ("nginx_time", "1h30m"), ("nginx_time", "1h30"),
                                        ("nginx_time", "500ms"),
                                        ("ssh_public_key", 'no-pty,from="10.0.0.1" ssh-ed25519 AAAAC3Nz x')])
def test_the_unambiguous_patterns_accept_what_the_old_ones_did(kind, value):
    assert value_problem(value, kind) is None


@pytest.mark.parametrize("kind,value", [("abs_path", "//srv"), ("abs_path", "relative/path"), ("nginx_time", ""),
                                        ("nginx_time", "s")])
def test_the_unambiguous_patterns_refuse_what_the_old_ones_did(kind, value):
    assert value_problem(value, kind) is not None


@pytest.mark.parametrize("kind,value", [(k, v) for k, values in GOOD.items() for v in values
                                        if k not in ("fail2ban_time",)])
def test_a_good_value_with_a_leading_dash_is_refused(kind, value):
    # fail2ban_time: -1 means "forever" to fail2ban, and reaches no command line.
    assert value_problem("-" + value, kind) is not None, (kind, value)
