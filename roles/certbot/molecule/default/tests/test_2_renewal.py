"""Renewal against Pebble: dry run, deploy hook, and a renewal that fails."""
from certbot_helpers import DIRECTORY, NAMES, certbot, certbot_log, file_serial, nginx_main_pid, served
from certbot_helpers import served_once_reloaded
from certbot_helpers import pebble, pebble_root, target_ip  # noqa: F401  (fixtures)

testinfra_hosts = ["web"]


# ---------------------------------------------------------------------------------------------
# renewal


def test_dry_run_renewal_passes_against_pebble(host):
    serial = file_serial(host)
    # --server is explicit: a dry run otherwise swaps in Let's Encrypt's staging directory.
    result = certbot(host, f"renew --dry-run --server {DIRECTORY}")
    assert result.rc == 0, result.stdout + result.stderr + certbot_log(host)
    assert "simulat" in (result.stdout + result.stderr).lower(), result.stdout + result.stderr
    assert file_serial(host) == serial, "a dry run must not replace the certificate"


def test_deploy_hook_reloads_nginx_with_the_renewed_certificate(host, target_ip, pebble_root):
    old = served(target_ip, NAMES[0], pebble_root).serial
    pid = nginx_main_pid(host)
    # Nobody but certbot's deploy hook reloads nginx here.
    result = certbot(host, "renew --force-renewal")
    assert result.rc == 0, result.stdout + result.stderr + certbot_log(host)
    assert "deploy hook: nginx reloaded" in result.stdout + result.stderr + certbot_log(host)
    tls = served_once_reloaded(target_ip, NAMES[0], pebble_root, old)
    assert tls.verify == (0, "ok"), tls.output[-2000:]
    assert tls.serial != old, "nginx still serves the previous certificate: the deploy hook did not reload it"
    assert tls.serial == file_serial(host)
    assert nginx_main_pid(host) == pid, "nginx was restarted, not reloaded"


def test_failed_renewal_leaves_nginx_serving_the_previous_certificate(host, pebble, target_ip, pebble_root):
    before = served(target_ip, NAMES[0], pebble_root).serial
    pid = nginx_main_pid(host)
    # Pebble's DNS now sends the validation to a host with nothing on port 80: the renewal fails.
    set_ip = "curl -sS --fail -X POST -d '{\"ip\": \"%s\"}' http://localhost:8055/set-default-ipv4"
    pebble.check_output(set_ip % "127.0.0.1")
    try:
        result = certbot(host, "renew --force-renewal")
    finally:
        pebble.check_output(set_ip % target_ip)
    assert result.rc != 0, result.stdout + result.stderr
    assert host.service("nginx").is_running
    assert nginx_main_pid(host) == pid
    tls = served(target_ip, NAMES[0], pebble_root)
    assert tls.verify == (0, "ok") and tls.serial == before, tls.output[-2000:]
    assert file_serial(host) == before
