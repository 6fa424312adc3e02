"""users_ssh's OpenSSH filters (plugins/filter/sshd.py) on real `sshd -T` answers.

The answers in fixtures/sshd/<release>/<case>.txt were captured from the test images with
fixtures/sshd/capture: users_ssh's sshd_config (rendered with the role's defaults) plus the drop-ins
of fixtures/sshd/cases/<case>/, asked about root and the deploy user `deploy` (in `sudo`) from a
public and a private address, with the very script the role runs.
"""
from pathlib import Path

import pytest

from ansible_collections.gigaflask.stack.plugins.filter.sshd import (
    sshd_connection_specs, sshd_drop_in_problems, sshd_effective_problems, sshd_listen_ports, sshd_test_results,
    ssh_key_file_problems, ssh_key_lines)

FIXTURES = Path(__file__).parent / "fixtures" / "sshd"
ALL_RELEASES = ["ubuntu2004", "ubuntu2204", "ubuntu2404"]

# What users_ssh sets with its defaults (vars/main.yml: __users_ssh_effective_single / _multi).
SINGLE = {
    "permitrootlogin": "no", "passwordauthentication": "no", "kbdinteractiveauthentication": "no",
    "challengeresponseauthentication": "no", "pubkeyauthentication": "yes", "permitemptypasswords": "no",
    "hostbasedauthentication": "no", "kerberosauthentication": "no", "gssapiauthentication": "no",
    "x11forwarding": "no", "authorizedkeysfile": ".ssh/authorized_keys", "maxauthtries": "3",
    "logingracetime": "30", "clientaliveinterval": "300", "clientalivecountmax": "2",
    "kexalgorithms": "curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,"
                     "diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256",
    "ciphers": "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,"
               "aes192-ctr,aes128-ctr",
    "macs": "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,umac-128-etm@openssh.com",
    "hostkeyalgorithms": "rsa-sha2-512,rsa-sha2-256,ssh-ed25519",
}
MULTI = {"port": ["22"], "hostkey": ["/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ed25519_key"],
         "allowusers": [], "allowgroups": [], "denyusers": [], "denygroups": []}
ROOT_PUBLIC = "user=root,host=users-ssh.invalid,addr=198.51.100.7"
ROOT_PRIVATE = "user=root,host=users-ssh.invalid,addr=10.0.0.7"
DEPLOY_PUBLIC = "user=deploy,host=users-ssh.invalid,addr=198.51.100.7"
DEPLOY_PRIVATE = "user=deploy,host=users-ssh.invalid,addr=10.0.0.7"


def answers(release, case):
    return sshd_test_results((FIXTURES / release / f"{case}.txt").read_text())


def drop_ins(case):
    directory = FIXTURES / "cases" / case / "sshd_config.d"
    return [[f"/etc/ssh/sshd_config.d/{p.name}", p.read_text()] for p in sorted(directory.glob("*.conf"))]


def problems(release, case):
    return sshd_effective_problems(answers(release, case), SINGLE, MULTI, "22")


def releases_with(case):
    return [r for r in ALL_RELEASES if (FIXTURES / r / f"{case}.txt").exists()]


# --- sshd -T answers ----------------------------------------------------------------------------

def test_the_script_answers_once_per_spec_in_order():
    found = answers("ubuntu2004", "clean")
    assert [r["spec"] for r in found] == (FIXTURES / "specs").read_text().split()
    assert all(r["rc"] == 0 and r["messages"] == [] for r in found)
    assert found[0]["settings"]["hostkey"] == MULTI["hostkey"]
    assert found[0]["settings"]["listenaddress"] == ["[::]:22", "0.0.0.0:22"]


def test_connection_specs_cover_every_user_from_every_address():
    assert sshd_connection_specs(["root", "deploy"], ["198.51.100.7", "10.0.0.7"]) == [
        ROOT_PUBLIC, ROOT_PRIVATE, DEPLOY_PUBLIC, DEPLOY_PRIVATE]


@pytest.mark.parametrize("release", ALL_RELEASES)
def test_the_role_settings_win_over_cloud_inits_drop_in(release):
    # 50-cloud-init.conf turns root and password login on; sshd keeps the first value it reads.
    assert problems(release, "clean") == []


@pytest.mark.parametrize("release", ALL_RELEASES)
def test_an_sshd_that_no_longer_prints_challengeresponseauthentication_is_judged_on_the_rest(release):
    settings = answers(release, "clean")[0]["settings"]
    assert ("challengeresponseauthentication" in settings) == (release == "ubuntu2004")
    assert settings["kbdinteractiveauthentication"] == ["no"]


def test_match_user_root_gives_root_its_login_back():
    assert problems("ubuntu2004", "match-user-root") == [
        f'permitrootlogin is "yes", not "no" (for {ROOT_PUBLIC}, {ROOT_PRIVATE})']


def test_match_group_sudo_gives_the_deploy_user_password_logins():
    assert problems("ubuntu2004", "match-group-sudo") == [
        f'passwordauthentication is "yes", not "no" (for {DEPLOY_PUBLIC}, {DEPLOY_PRIVATE})']


@pytest.mark.parametrize("release", releases_with("match-address"))
def test_match_address_opens_the_door_from_the_private_network_only(release):
    found = problems(release, "match-address")
    assert f'permitrootlogin is "yes", not "no" (for {ROOT_PRIVATE}, {DEPLOY_PRIVATE})' in found
    assert any(p.startswith('passwordauthentication is "yes"') and p.endswith(f"{ROOT_PRIVATE}, {DEPLOY_PRIVATE})")
               for p in found), found
    assert not any(ROOT_PUBLIC in p or DEPLOY_PUBLIC in p for p in found), found


def test_accumulated_keywords_a_drop_in_adds_are_named_for_every_connection():
    assert problems("ubuntu2004", "extra-port") == [
        'port adds "2222" (for every connection)', 'allowusers adds "someone" (for every connection)',
        'listenaddress adds "[::]:2222", "0.0.0.0:2222" (for every connection)']


def test_a_match_block_that_only_restricts_sessions_changes_nothing_judged():
    assert problems("ubuntu2004", "safe-match") == []


def test_a_match_block_ends_with_its_file():
    # 10-deploy.conf ends in a Match block; 50-cloud-init.conf's PasswordAuthentication after it is
    # global (and loses), not part of the block: sshd ends a Match block at the end of its file.
    deploy = [r for r in answers("ubuntu2004", "carry-over") if r["spec"] == DEPLOY_PUBLIC][0]
    assert deploy["settings"]["forcecommand"] == ["/bin/true"]
    assert problems("ubuntu2004", "carry-over") == []
    assert sshd_drop_in_problems(drop_ins("carry-over")) == []


@pytest.mark.parametrize("release", releases_with("rejected"))
def test_a_configuration_sshd_rejects_has_a_non_zero_code_and_sshds_reason(release):
    found = answers(release, "rejected")
    assert {r["rc"] for r in found} == {255}
    assert "Bad SSH2 cipher spec 'rot13-cbc,aes256-ctr'" in found[0]["messages"][0]
    assert sshd_effective_problems(found, SINGLE, MULTI, "22") == []  # judged by rc, not here


def test_a_value_sshd_prints_as_its_synonym_is_the_same_value():
    result = [{"spec": "s", "rc": 0, "settings": {"permitrootlogin": ["without-password"]}}]
    assert sshd_effective_problems(result, {"permitrootlogin": "prohibit-password"}, {}) == []
    assert sshd_effective_problems(result, {"permitrootlogin": "no"}, {}) == [
        'permitrootlogin is "without-password", not "no" (for every connection)']


def test_an_answer_cut_short_is_an_error():
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError):
        sshd_test_results("### user=root\nport 22\n")


# --- drop-ins ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case, expected", [
    ("match-user-root", ["/etc/ssh/sshd_config.d/60-root.conf line 2: 'Match User root' (line 1) sets "
                         "PermitRootLogin for the connections it matches"]),
    ("match-group-sudo", ["/etc/ssh/sshd_config.d/60-sudo.conf line 2: 'Match Group sudo' (line 1) sets "
                          "PasswordAuthentication for the connections it matches"]),
    ("match-address", ["/etc/ssh/sshd_config.d/60-lan.conf line 2: 'Match Address 10.0.0.0/8,192.168.0.0/16' "
                       "(line 1) sets PasswordAuthentication for the connections it matches",
                       "/etc/ssh/sshd_config.d/60-lan.conf line 3: 'Match Address 10.0.0.0/8,192.168.0.0/16' "
                       "(line 1) sets PermitRootLogin for the connections it matches"]),
], ids=["user", "group", "address"])
def test_a_match_block_that_changes_authentication_is_refused_naming_file_and_line(case, expected):
    assert sshd_drop_in_problems(drop_ins(case)) == expected


@pytest.mark.parametrize("case", ["clean", "safe-match", "extra-port"])
def test_global_settings_and_session_only_match_blocks_pass_the_drop_in_rule(case):
    # Global lines lose to the role's (first value wins) or are judged by sshd -T (extra-port).
    assert sshd_drop_in_problems(drop_ins(case)) == []


@pytest.mark.parametrize("text, keyword", [
    ("match user alice\n    passwordauthentication yes\n", "passwordauthentication"),
    ("Match all\nPermitRootLogin=yes\n", "PermitRootLogin"),
    ("Match User *,!deploy\n\tAuthenticationMethods any\n", "AuthenticationMethods"),
    ("Match LocalPort 2222\n  AuthorizedKeysFile /tmp/%u\n", "AuthorizedKeysFile"),
    ("Match Group sftponly\n  ForceCommand internal-sftp\n  PubkeyAuthentication no\n", "PubkeyAuthentication"),
], ids=["lowercase", "equals-sign", "negation", "keys-file", "mixed-block"])
def test_any_spelling_of_a_match_block_that_touches_logins_is_refused(text, keyword):
    found = sshd_drop_in_problems([["/etc/ssh/sshd_config.d/70-x.conf", text]])
    assert len(found) == 1 and f"sets {keyword} " in found[0], found


def test_an_include_in_a_drop_in_is_refused_because_its_files_are_not_read():
    found = sshd_drop_in_problems([{"path": "/etc/ssh/sshd_config.d/70-more.conf",
                                    "content": "Include /etc/ssh/more/*.conf\n"}])
    assert found == ["/etc/ssh/sshd_config.d/70-more.conf line 1: 'Include /etc/ssh/more/*.conf' reads files this "
                     "check cannot see; put their settings in the drop-in itself"]


# --- public keys ---------------------------------------------------------------------------------

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBGyZ2Hm1y7tAQhz5SxRYwfMBHqFpnvJGC4e5QlK2f5P you@laptop"


def test_key_lines_skip_blank_lines_and_comments():
    assert ssh_key_lines(f"# my laptop\n\n  {KEY}  \n") == [KEY]


def test_a_key_file_with_something_else_is_named_without_showing_it():
    found = ssh_key_file_problems([["/keys/ok.pub", KEY + "\n"], ["/keys/typo.pub", KEY + "\nnot a key; rm -rf /\n"],
                                   ["/keys/empty.pub", "\n# nothing\n"]])
    assert found == [
        "users_ssh_authorized_key_files: /keys/typo.pub line 2 is not an OpenSSH public key line "
        "('ssh-ed25519 AAAA... comment')",
        "users_ssh_authorized_key_files: /keys/empty.pub holds no public key"]
    assert "rm -rf" not in " ".join(found)


def test_a_private_key_given_as_key_file_is_named_and_never_shown():
    private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    found = ssh_key_file_problems([["/home/me/.ssh/id_ed25519", private]])
    assert found == ["users_ssh_authorized_key_files: /home/me/.ssh/id_ed25519 holds a private key; give the .pub file"]


# What sshd listens on, captured from the test images: `ss -Hltnp` on 20.04 while sshd took an old
# and a new port; on 24.04 `ss` while ssh.socket holds port 22 before any connection started
# ssh.service (systemd's sockets only), `ss` once it has, and ssh.socket's own Listen property.
def listen_fixture(name):
    return (FIXTURES / "listen" / f"{name}.txt").read_text()


def test_listen_ports_are_the_sockets_sshd_holds_other_daemons_left_out():
    assert sshd_listen_ports(listen_fixture("ubuntu2004-ss-two-ports")) == [22, 2222]
    assert sshd_listen_ports(listen_fixture("ubuntu2404-ss-activated")) == [22, 2222]


def test_listen_ports_of_a_socket_activated_sshd_come_from_ssh_socket_not_ss():
    # Before the first connection only systemd holds the socket: ss names no sshd, hence the
    # per-release probe (users_ssh vars/main.yml) asks ssh.socket on 24.04.
    assert sshd_listen_ports(listen_fixture("ubuntu2404-ss-not-activated")) == []
    assert sshd_listen_ports(listen_fixture("ubuntu2404-socket-2222")) == [2222]
    assert sshd_listen_ports("") == []


def test_listen_ports_refuse_what_is_not_text():
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError):
        sshd_listen_ports(None)


def test_listen_addresses_on_any_of_the_ports_being_moved_between_are_accepted():
    result = [{"spec": "s", "rc": 0, "settings": {"port": ["22", "2222"],
                                                  "listenaddress": ["0.0.0.0:2222", "0.0.0.0:22", "[::]:2222"]}}]
    assert sshd_effective_problems(result, {}, {"port": ["22", "2222"]}, [22, 2222]) == []
    assert sshd_effective_problems(result, {}, {"port": ["22", "2222"]}, 2222) == [
        'listenaddress adds "0.0.0.0:22" (for every connection)']
