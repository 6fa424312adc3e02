# -*- coding: utf-8 -*-
"""Judge whether the certbot role must order a certificate, from what the host holds.

The role reads the current certificate with `openssl x509 -noout -enddate -ext subjectAltName
-checkend <seconds>` and its renewal configuration (/etc/letsencrypt/renewal/<name>.conf), then
asks this filter for the reasons to order one; no reason means certbot is not run at all:

    - name: Decide whether to order a certificate
      ansible.builtin.set_fact:
        __certbot_order_reasons: "{{ __certbot_state | gigaflask.stack.certbot_order_reasons }}"
"""
import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
  name: certbot_order_reasons
  short_description: The reasons to order a certificate, from the current one and the wanted names
  description:
    - Takes a dict describing the current certificate and what the role wants, returns a list of
      reasons (empty when the current certificate is fine).
  positional: _input
  options:
    _input:
      description: >-
        C(cert_name), C(exists) (a certificate is there), C(openssl) (the output of openssl x509
        -noout -enddate -ext subjectAltName -checkend), C(expiring) (checkend said it expires within
        C(min_days)), C(min_days), C(renewal_conf) (the renewal configuration's text), C(domains)
        (wanted names), C(directory) (wanted ACME directory URL).
      type: dict
      required: true
"""

REQUIRED = ("cert_name", "exists", "domains", "directory")


def certificate_names(openssl_text):
    """The DNS names of a certificate, lower case and sorted, from openssl's subjectAltName text."""
    return sorted({name.lower() for name in re.findall(r"DNS:([^,\s]+)", openssl_text or "")})


def not_after(openssl_text):
    """openssl's `notAfter=...` line, or an empty string."""
    match = re.search(r"(?m)^notAfter=.*$", openssl_text or "")
    return match.group(0) if match else ""


def renewal_server(conf_text):
    """The ACME directory URL a certbot renewal configuration names (`server = ...`), or ''."""
    match = re.search(r"(?m)^server\s*=\s*(\S+)\s*$", conf_text or "")
    return match.group(1) if match else ""


def certbot_order_reasons(state):
    """Why a certificate must be ordered now; an empty list when the current one will do."""
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED):
        raise AnsibleFilterError("certbot_order_reasons expects a dict with %s" % ", ".join(REQUIRED))
    if not state["exists"]:
        return ["there is no certificate %s yet" % state["cert_name"]]
    reasons = []
    has = certificate_names(state.get("openssl"))
    wants = sorted(name.lower() for name in state["domains"])
    if has != wants:
        reasons.append("the names change from %s to %s" % (", ".join(has), ", ".join(wants)))
    if state.get("expiring"):
        reasons.append("it expires within %s days (%s)" % (state.get("min_days"), not_after(state.get("openssl"))))
    server = renewal_server(state.get("renewal_conf"))
    if server != state["directory"]:
        reasons.append("it comes from %s, not from %s" % (server or "an unknown server", state["directory"]))
    return reasons


class FilterModule(object):
    def filters(self):
        return {"certbot_order_reasons": certbot_order_reasons}
