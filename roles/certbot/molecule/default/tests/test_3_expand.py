"""Adding a name expands the same certificate lineage, and nginx serves it for every name."""
from certbot_helpers import EXTRA, NAMES, served
from certbot_helpers import pebble, pebble_root, target_ip  # noqa: F401  (fixtures)

testinfra_hosts = ["web"]


# ---------------------------------------------------------------------------------------------
# more names


def test_adding_a_name_expands_the_certificate(host, ansible_playbook, target_ip, pebble_root):
    # nginx_site first (it must answer for the new name on port 80), then certbot: site.yml's order.
    run = ansible_playbook("converge.yml", extra_vars={
        "certbot_domains": NAMES + [EXTRA], "nginx_site_extra_names": [EXTRA]}, tags=["nginx", "certbot"])
    assert run.rc == 0 and run.failed == 0, run.describe()
    assert any("Order the certificate with certbot" in task for task in run.changed_tasks), run.describe()
    for name in NAMES + [EXTRA]:
        tls = served(target_ip, name, pebble_root)
        assert tls.verify == (0, "ok"), tls.output[-2000:]
        assert tls.names == sorted(NAMES + [EXTRA]), tls.names
    # Same lineage, expanded: no gigaflask.test-0001 next to it.
    assert sorted(host.check_output("ls /etc/letsencrypt/live").split()) == ["README", "gigaflask.test"]
