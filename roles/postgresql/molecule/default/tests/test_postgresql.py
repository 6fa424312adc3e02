"""postgresql: the app's database on loopback, a scram-sha-256 login role with a kept password.

Every fact is read through the server itself (psql over TCP with the password, pg_authid,
pg_settings, pg_hba_file_rules, ss), never from the role's own variables or the files it templated.
"""
import re
import shlex

import pytest

from conftest import assert_no_changes, assert_rejected_naming, journal
from tests.lib.hostile import PATTERNS, hostile_vars, unnamed
from tests.lib.listeners import connects
from tests.lib.ssh import container_address

DB = USER = "gigaflask"
PASSWORD_FILE = f"/etc/postgresql/gigaflask-{USER}.password"
BACKUP_DIR = "/var/backups/postgresql"
BACKUP_UNIT = "gigaflask-pg-backup"
BACKUP_FILES = (f"/etc/systemd/system/{BACKUP_UNIT}.service /etc/systemd/system/{BACKUP_UNIT}.timer "
                f"/usr/local/sbin/{BACKUP_UNIT}")
DUMP_NAME = re.compile(rf"{DB}-[0-9]{{8}}T[0-9]{{6}}Z\.dump")


def version(host):
    """The major version of the one cluster (pg_lsclusters: 'VER main PORT STATUS ...')."""
    return host.check_output("pg_lsclusters -h").split()[0]


def unit(host):
    return f"postgresql@{version(host)}-main"


def sql(host, query, db="postgres"):
    """One query as the superuser over the unix socket (peer authentication)."""
    return host.check_output(f"runuser -u postgres -- psql -XAtq -d {db} -c {shlex.quote(query)}")


def app_psql(host, password, query):
    """One query as the app's role over TCP on loopback, with a password."""
    return host.run(f"PGPASSWORD={shlex.quote(password)} PGCONNECT_TIMEOUT=10 "
                    f"psql -XAtq -h 127.0.0.1 -p 5432 -U {USER} -d {DB} -c {shlex.quote(query)}")


def stored_password(host):
    return host.check_output(f"cat {PASSWORD_FILE}")


def stored_hash(host):
    return sql(host, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{USER}'")


def started_at(host):
    return sql(host, "SELECT pg_postmaster_start_time()")


def setting_bytes(host, name):
    return int(sql(host, f"SELECT pg_size_bytes(current_setting('{name}'))"))


def memtotal_mb(host):
    """The host's memory as Ansible's ansible_memtotal_mb counts it (MemTotal in kB // 1024)."""
    meminfo = host.check_output("grep MemTotal /proc/meminfo")
    return int(meminfo.split()[1]) // 1024


def role_state(host):
    """What the role writes and what the server has loaded: what 'nothing changed' means here."""
    config = f"/etc/postgresql/{version(host)}/main"
    return (host.check_output(f"sha256sum {config}/pg_hba.conf {config}/conf.d/* {PASSWORD_FILE}")
            + stored_hash(host) + started_at(host)
            + sql(host, "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database")
            + host.check_output("sha256sum /var/lib/dpkg/status")
            + host.check_output(f"sha256sum {BACKUP_FILES}")
            + host.check_output(f"systemctl is-enabled {BACKUP_UNIT}.timer; systemctl is-active {BACKUP_UNIT}.timer; true"))


@pytest.fixture(scope="module")
def address(host):
    return container_address(host.backend.get_hostname())


def test_server_is_active(host):
    assert host.service(unit(host)).is_running, journal(host, unit(host))
    assert "online" in host.check_output("pg_lsclusters -h")


def test_server_listens_on_loopback_port_5432_only(host):
    # ss cannot name the processes in this container: judge by port (nothing else here uses 5432).
    out = host.check_output("ss -Hltn")
    listening = {line.split()[3] for line in out.splitlines() if line.split()[3].endswith(":5432")}
    assert "127.0.0.1:5432" in listening, out
    assert listening <= {"127.0.0.1:5432", "[::1]:5432"}, out
    assert sql(host, "SHOW port") == "5432"


def test_server_is_not_reachable_on_the_container_address(host, address):
    assert not connects(address, 5432), f"{address}:5432 accepts connections from outside"


def test_app_role_logs_in_over_tcp_with_the_stored_password_and_creates_a_table(host):
    password = stored_password(host)
    # psql -c prints the result of the last statement only.
    run = app_psql(host, password, "DROP TABLE IF EXISTS verify_probe; CREATE TABLE verify_probe (id int); "
                                   "INSERT INTO verify_probe VALUES (1); SELECT count(*) FROM verify_probe")
    assert run.rc == 0, run.stderr + journal(host, unit(host))
    assert run.stdout.strip() == "1", run.stdout
    assert sql(host, "SELECT tableowner FROM pg_tables WHERE tablename = 'verify_probe'", db=DB) == USER
    assert app_psql(host, password, "DROP TABLE verify_probe").rc == 0
    assert sql(host, f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{DB}'") == USER


def test_wrong_password_is_refused(host):
    run = app_psql(host, stored_password(host) + "x", "SELECT 1")
    assert run.rc != 0, run.stdout
    assert "password authentication failed" in run.stderr, run.stderr


def test_app_role_is_no_superuser_and_cannot_reach_other_databases(host):
    assert sql(host, f"SELECT rolsuper OR rolcreatedb OR rolcreaterole FROM pg_roles WHERE rolname = '{USER}'") == "f"
    run = host.run(f"PGPASSWORD={shlex.quote(stored_password(host))} psql -XAtq -h 127.0.0.1 -U {USER} "
                   "-d postgres -c 'SELECT 1'")
    assert run.rc != 0 and "no pg_hba.conf entry" in run.stderr, run.stderr


def test_passwords_are_stored_as_scram_sha_256(host):
    run = app_psql(host, stored_password(host), "SHOW password_encryption")
    assert run.rc == 0 and run.stdout.strip() == "scram-sha-256", run.stdout + run.stderr
    assert stored_hash(host).startswith("SCRAM-SHA-256$"), "the role's password is not a SCRAM verifier"


def test_password_file_is_root_only(host):
    f = host.file(PASSWORD_FILE)
    assert (f.user, f.group, f.mode) == ("root", "root", 0o600), oct(f.mode)
    assert len(f.content_string) >= 32


def test_pg_hba_has_no_errors_and_lets_the_remote_client_in_with_scram(host):
    assert sql(host, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0"
    rules = sql(host, "SELECT type, database[1], user_name[1], address, netmask, auth_method "
                      "FROM pg_hba_file_rules WHERE address LIKE '192.0.2.%' OR address = '2001:db8::10'")
    assert sorted(rules.splitlines()) == sorted([
        f"host|{DB}|{USER}|192.0.2.0|255.255.255.0|scram-sha-256",
        f"host|{DB}|{USER}|2001:db8::10|ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff|scram-sha-256",
    ]), rules
    assert sql(host, "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method IN ('trust', 'md5', 'password')") == "0"


def test_pg_hba_postgresql_refuses_is_put_back_and_never_loaded(host, ansible_playbook):
    # A scoped IPv6 address passes the collection's address check, but PostgreSQL cannot resolve an
    # interface that does not exist: only pg_hba_file_rules can tell.
    config = f"/etc/postgresql/{version(host)}/main"
    before = role_state(host)
    reloads = host.run(f"journalctl -u {unit(host)} --no-pager | grep -c Reloading").stdout
    run = ansible_playbook("converge.yml", extra_vars={"postgresql_hba_clients": [{"address": "fe80::1%nosuchif"}]})
    assert run.rc != 0, run.describe()
    assert any("pg_hba.conf was not loaded" in message for message in run.failure_messages), run.describe()
    assert role_state(host) == before
    assert host.run(f"journalctl -u {unit(host)} --no-pager | grep -c Reloading").stdout == reloads
    assert host.check_output(f"find {config} -name 'pg_hba.conf.*'") == "", "the copy of the old file is left"
    assert sql(host, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL") == "0"
    assert app_psql(host, stored_password(host), "SELECT 1").rc == 0


def test_memory_settings_are_sized_from_the_host_memory(host):
    mb = memtotal_mb(host)
    # A quarter, at most 8 GB (the filter's unit tests cover hosts above 32 GB).
    assert setting_bytes(host, "shared_buffers") == min(mb // 4, 8192) * 1024 * 1024
    assert setting_bytes(host, "effective_cache_size") == mb * 3 // 4 * 1024 * 1024
    assert sql(host, "SHOW work_mem") == "4MB"


def test_password_and_hash_are_kept_by_another_converge(host, ansible_playbook):
    before = stored_password(host), stored_hash(host)
    run = ansible_playbook("converge.yml")
    assert_no_changes(run)
    assert (stored_password(host), stored_hash(host)) == before


def test_check_mode_on_converged_host_changes_nothing(host, ansible_playbook):
    before = role_state(host)
    run = ansible_playbook("converge.yml", check=True, diff=True)
    assert_no_changes(run)
    assert role_state(host) == before


def forget_password(host):
    """Give the role another password behind the role's back, so the next converge sets it again."""
    sql(host, f"SET password_encryption = 'scram-sha-256'; ALTER ROLE {USER} PASSWORD 'not-the-stored-one'")


@pytest.mark.parametrize("callback", ["default", "ansible.posix.json"])
def test_password_appears_nowhere_in_a_verbose_diff_converge(host, ansible_playbook, callback):
    password = stored_password(host)
    forget_password(host)
    assert app_psql(host, password, "SELECT 1").rc != 0
    run = ansible_playbook("converge.yml", diff=True, args=["-vv"], env={"ANSIBLE_STDOUT_CALLBACK": callback})
    assert run.rc == 0, run.output[-3000:]
    # The converge did handle the password: it set it again.
    assert re.search(r"Create the app's login role with its password\][^\n]*\n(?:(?!TASK \[).*\n)*?changed:", run.output) \
        or any("login role" in task for task in run.changed_tasks), run.output[-3000:]
    assert app_psql(host, password, "SELECT 1").rc == 0
    assert password not in run.output, "the password is in the converge output"
    assert stored_password(host) == password


def test_override_variables_win_and_only_start_settings_restart(host, ansible_playbook):
    start = started_at(host)
    run = ansible_playbook("converge.yml", extra_vars={"postgresql_work_mem": "8MB"})
    assert run.rc == 0, run.describe()
    assert sql(host, "SHOW work_mem") == "8MB"
    assert started_at(host) == start, "a work_mem change restarted the server instead of reloading it"
    run = ansible_playbook("converge.yml", extra_vars={"postgresql_shared_buffers": "64MB",
                                                       "postgresql_effective_cache_size": "1GB"})
    assert run.rc == 0, run.describe()
    try:
        assert sql(host, "SHOW shared_buffers") == "64MB"
        assert sql(host, "SHOW effective_cache_size") == "1GB"
        assert sql(host, "SHOW work_mem") == "4MB"
        assert started_at(host) != start, "a shared_buffers change needs a restart"
    finally:
        run = ansible_playbook("converge.yml")
        assert run.rc == 0, run.describe()
    assert setting_bytes(host, "shared_buffers") == int(memtotal_mb(host) * 0.25) * 1024 * 1024


@pytest.mark.parametrize("extra_vars, variable", [
    ({"postgresql_database": "gigaflask db"}, "postgresql_database"),
    ({"postgresql_database": "gigaflask;drop"}, "postgresql_database"),
    ({"postgresql_database": "template1"}, "postgresql_database"),
    ({"postgresql_user": "postgres"}, "postgresql_user"),
    ({"postgresql_listen_addresses": ["127.0.0.1", "localhost"]}, "postgresql_listen_addresses[1]"),
    ({"postgresql_hba_clients": [{"address": "10.0.0.0/33"}]}, "postgresql_hba_clients[0].address"),
    ({"postgresql_hba_clients": [{"address": "web1"}]}, "postgresql_hba_clients[0].address"),
    ({"postgresql_shared_buffers": "-128MB"}, "postgresql_shared_buffers"),
    ({"postgresql_shared_buffers": "lots"}, "postgresql_shared_buffers"),
    ({"postgresql_work_mem": "4 MB"}, "postgresql_work_mem"),
    ({"postgresql_port": 70000}, "postgresql_port"),
    ({"postgresql_port": "abc"}, "postgresql_port"),
    ({"postgresql_backup_on_calendar": "daily\nExecStart=/bin/sh"}, "postgresql_backup_on_calendar"),
    ({"postgresql_backup_on_calendar": "every day"}, "postgresql_backup_on_calendar"),
    ({"postgresql_backup_keep": 0}, "postgresql_backup_keep"),
    ({"postgresql_backup_dir": "/"}, "postgresql_backup_dir"),
    ({"postgresql_backup_dir": "/var/backups/../.."}, "postgresql_backup_dir"),
], ids=["database-with-space", "database-with-semicolon", "system-database", "superuser", "listen-not-an-ip",
        "client-bad-cidr", "client-not-an-address", "negative-shared-buffers", "garbage-shared-buffers",
        "work-mem-with-space", "port-out-of-range", "port-not-a-number", "calendar-with-directive",
        "calendar-systemd-refuses", "keep-zero", "backup-dir-root", "backup-dir-dot-dot"])
def test_bad_input_fails_before_any_change(host, ansible_playbook, extra_vars, variable):
    before = role_state(host)
    run = ansible_playbook("converge.yml", extra_vars=extra_vars)
    assert_rejected_naming(run, variable)
    assert role_state(host) == before


# Every free-text variable of the role, with a good value; tests.lib.hostile spoils them. The password
# may hold any text but a control character: only the newline must be refused.
GOOD = {
    "postgresql_database": DB,
    "postgresql_user": USER,
    "postgresql_password": "Good-Password-1",
    "postgresql_password_file": PASSWORD_FILE,
    "postgresql_listen_addresses": ["127.0.0.1"],
    "postgresql_shared_buffers": "64MB",
    "postgresql_effective_cache_size": "1GB",
    "postgresql_work_mem": "4MB",
    "postgresql_client_host": "127.0.0.1",
    "postgresql_packages": ["postgresql"],
    "postgresql_backup_dir": BACKUP_DIR,
    "postgresql_backup_on_calendar": "*-*-* 03:15:00",
}
# An OnCalendar expression has spaces (systemd-analyze on the host refuses a stray word).
ALLOWED = {"postgresql_password": set(PATTERNS) - {"newline"}, "postgresql_backup_on_calendar": {"space"}}


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_hostile_values_are_refused_naming_each_variable_and_change_nothing(host, ansible_playbook, pattern):
    before = role_state(host)
    extra_vars = hostile_vars(GOOD, pattern, ALLOWED)
    extra_vars["postgresql_hba_clients"] = [{"address": PATTERNS[pattern]("192.0.2.0/24")}]
    run = ansible_playbook("converge.yml", extra_vars=extra_vars)
    assert run.rc != 0 and run.changed == 0, run.describe()
    labels = [name for name in extra_vars if name != "postgresql_hba_clients"] + ["postgresql_hba_clients[0].address"]
    assert not unnamed(run, labels), (unnamed(run, labels), run.describe())
    assert "Good-Password-1" not in run.output
    assert role_state(host) == before


def dumps(host):
    """The database's dumps in the backup directory, oldest first."""
    return sorted(name for name in host.check_output(f"ls -1A {BACKUP_DIR}").split() if DUMP_NAME.fullmatch(name))


def back_up(host):
    """Start the timer's service as the timer does (a oneshot start returns when it ended); the new dump."""
    before = dumps(host)
    run = host.run(f"systemctl start {BACKUP_UNIT}.service")
    assert run.rc == 0, run.stderr + journal(host, f"{BACKUP_UNIT}.service")
    new = sorted(set(dumps(host)) - set(before))
    assert len(new) == 1, (before, dumps(host))
    return new[0]


def test_backup_timer_is_enabled_and_active_with_the_configured_time(host):
    out = host.check_output(f"systemctl show {BACKUP_UNIT}.timer -p UnitFileState -p ActiveState -p TimersCalendar "
                            "-p Persistent")
    timer = dict(line.split("=", 1) for line in out.splitlines())
    assert (timer["UnitFileState"], timer["ActiveState"], timer["Persistent"]) == ("enabled", "active", "yes"), out
    assert "OnCalendar=*-*-* 03:15:00 " in timer["TimersCalendar"], out
    out = host.check_output(f"systemctl show {BACKUP_UNIT}.service -p Type -p User")
    assert sorted(out.splitlines()) == ["Type=oneshot", "User=postgres"], out


def test_a_backup_is_a_custom_format_dump_only_postgres_can_read(host):
    name = back_up(host)
    directory, dump = host.file(BACKUP_DIR), host.file(f"{BACKUP_DIR}/{name}")
    assert (directory.user, directory.group, directory.mode) == ("postgres", "postgres", 0o700), oct(directory.mode)
    assert (dump.user, dump.group, dump.mode) == ("postgres", "postgres", 0o600), oct(dump.mode)
    listing = host.run(f"runuser -u postgres -- pg_restore --list {BACKUP_DIR}/{name}")
    assert listing.rc == 0, listing.stderr
    assert "Format: CUSTOM" in listing.stdout and f"dbname: {DB}" in listing.stdout, listing.stdout
    assert not [n for n in host.check_output(f"ls -1A {BACKUP_DIR}").split() if n.startswith(".")], "a temporary file is left"


def test_only_the_newest_dumps_are_kept(host):
    # converge.yml keeps 2.
    made = [back_up(host) for _ in range(3)]
    assert dumps(host) == made[1:], (made, dumps(host))


def test_a_failed_dump_replaces_and_counts_as_no_backup(host):
    before = dumps(host)
    sql(host, f"ALTER DATABASE {DB} ALLOW_CONNECTIONS false")
    try:
        run = host.run(f"systemctl start {BACKUP_UNIT}.service")
    finally:
        sql(host, f"ALTER DATABASE {DB} ALLOW_CONNECTIONS true")
    assert run.rc != 0, journal(host, f"{BACKUP_UNIT}.service")
    assert host.check_output(f"ls -1A {BACKUP_DIR}").split() == before


def test_restore_brings_back_the_rows_of_a_backup(host, ansible_playbook, tmp_path):
    password = stored_password(host)
    run = app_psql(host, password, "DROP TABLE IF EXISTS restore_probe; CREATE TABLE restore_probe (id int); "
                                   "INSERT INTO restore_probe SELECT generate_series(1, 100)")
    assert run.rc == 0, run.stderr
    # The operator's playbooks; connect.yml's [web] is empty here, Molecule's inventory gets in as root.
    run = ansible_playbook("playbooks/backup.yml", extra_vars={"gigaflask_db_hosts": "all",
                                                               "gigaflask_backup_fetch_dir": str(tmp_path)})
    assert run.rc == 0, run.describe()
    name = dumps(host)[-1]
    assert name in run.output, run.describe()
    fetched = list(tmp_path.rglob(name))
    assert len(fetched) == 1 and fetched[0].read_bytes()[:5] == b"PGDMP", list(tmp_path.rglob("*"))
    assert app_psql(host, password, "DROP TABLE restore_probe").rc == 0
    try:
        run = ansible_playbook("playbooks/restore.yml", extra_vars={"gigaflask_db_hosts": "all",
                                                                    "gigaflask_restore_dump": name})
        assert run.rc == 0, run.describe()
        rows = app_psql(host, password, "SELECT count(*) FROM restore_probe")
        assert rows.rc == 0 and rows.stdout.strip() == "100", rows.stdout + rows.stderr
        assert sql(host, "SELECT tableowner FROM pg_tables WHERE tablename = 'restore_probe'", db=DB) == USER
    finally:
        app_psql(host, password, "DROP TABLE IF EXISTS restore_probe")


@pytest.mark.parametrize("extra_vars, variable", [
    ({}, "gigaflask_restore_dump"),
    ({"gigaflask_restore_dump": "../../etc/shadow"}, "gigaflask_restore_dump"),
    ({"gigaflask_restore_dump": "-fdump"}, "gigaflask_restore_dump"),
    ({"gigaflask_restore_dump": f"{DB}-19700101T000000Z.dump"}, "postgresql_restore_dump"),
], ids=["missing", "path", "option", "absent"])
def test_restore_refuses_a_dump_it_cannot_find_naming_the_variable(host, ansible_playbook, extra_vars, variable):
    before = stored_hash(host), sql(host, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", db=DB)
    run = ansible_playbook("playbooks/restore.yml", extra_vars={"gigaflask_db_hosts": "all", **extra_vars})
    assert_rejected_naming(run, variable)
    assert (stored_hash(host), sql(host, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", db=DB)) == before


def test_disabled_backups_stop_the_timer(host, ansible_playbook):
    run = ansible_playbook("converge.yml", extra_vars={"postgresql_backup_enabled": False})
    try:
        assert run.rc == 0, run.describe()
        state = host.run(f"systemctl is-enabled {BACKUP_UNIT}.timer; systemctl is-active {BACKUP_UNIT}.timer")
        assert state.stdout.split() == ["disabled", "inactive"], state.stdout
    finally:
        run = ansible_playbook("converge.yml")
        assert run.rc == 0, run.describe()
    assert host.check_output(f"systemctl is-active {BACKUP_UNIT}.timer") == "active"
