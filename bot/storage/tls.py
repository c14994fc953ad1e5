"""TLS for ``rediss://`` URLs: the query options redis-py reads, as an ``ssl.SSLContext``."""

from __future__ import annotations

import ssl

# The TLS options of a rediss:// URL's query, named as redis-py names them, so one URL serves
# both clients: ?ssl_ca_certs=/etc/redis/ca.pem&ssl_certfile=…&ssl_keyfile=…
_TLS_OPTIONS = frozenset(
    {
        "ssl_ca_certs",  # CA bundle (PEM) the server's certificate must chain to
        "ssl_ca_path",  # or a directory of hashed CA certificates
        "ssl_ca_data",  # or the PEM text itself
        "ssl_cert_reqs",  # required (default) | optional | none
        "ssl_check_hostname",  # true (default when required) | false
        "ssl_certfile",  # client certificate (PEM), for servers with tls-auth-clients
        "ssl_keyfile",  # its key (default: in ssl_certfile)
        "ssl_password",  # the key's passphrase
        "ssl_min_version",  # TLSv1_2 | TLSv1_3
    }
)
_CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def tls_options(query: dict[str, str]) -> dict[str, str]:
    """The ``ssl_*`` options of a URL's query; ValueError naming an unknown one."""
    tls = {k: v for k, v in query.items() if k.startswith("ssl_")}
    unknown = sorted(set(tls) - _TLS_OPTIONS)
    if unknown:
        # A typo (ssl_ca_cert) silently ignored would connect without the operator's CA.
        raise ValueError(
            f"Redis URL has unknown TLS option(s) {', '.join(unknown)}"
            f" (known: {', '.join(sorted(_TLS_OPTIONS))})"
        )
    return tls


def tls_context(options: dict[str, str]) -> ssl.SSLContext:
    """The SSL context a rediss:// URL's options describe; ValueError naming a bad one.

    Verification is on by default (the system's CAs, the host name checked); ``ssl_cert_reqs=
    none`` turns it off, for a test server only.
    """
    reqs_name = options.get("ssl_cert_reqs", "required").strip().lower()
    if reqs_name not in _CERT_REQS:
        raise ValueError(f"ssl_cert_reqs must be one of none, optional, required: {reqs_name!r}")
    reqs = _CERT_REQS[reqs_name]
    check = options.get("ssl_check_hostname", "").strip().lower()
    if check and check not in _TRUE | _FALSE:
        raise ValueError(f"ssl_check_hostname must be true or false: {check!r}")
    check_hostname = (check in _TRUE) if check else reqs == ssl.CERT_REQUIRED
    if check_hostname and reqs == ssl.CERT_NONE:
        raise ValueError("ssl_check_hostname needs ssl_cert_reqs optional or required")
    try:
        context = ssl.create_default_context(
            cafile=options.get("ssl_ca_certs"),
            capath=options.get("ssl_ca_path"),
            cadata=options.get("ssl_ca_data"),
        )
        context.check_hostname = check_hostname  # before verify_mode: NONE needs it off
        context.verify_mode = reqs
        if "ssl_min_version" in options:
            name = options["ssl_min_version"].strip().replace(".", "_").upper()
            version = getattr(ssl.TLSVersion, name, None)
            if version is None:
                raise ValueError(f"ssl_min_version: unknown TLS version {name!r}")
            context.minimum_version = version
        if "ssl_certfile" in options:
            context.load_cert_chain(
                options["ssl_certfile"], options.get("ssl_keyfile"), options.get("ssl_password")
            )
        elif "ssl_keyfile" in options:
            raise ValueError("ssl_keyfile without ssl_certfile")
    except (OSError, ssl.SSLError) as exc:  # a missing file, a bad PEM, a wrong passphrase
        raise ValueError(f"Redis TLS set-up: {exc}") from exc
    return context
