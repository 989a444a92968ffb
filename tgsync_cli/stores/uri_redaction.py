"""What of a MongoDB connection string may be shown: an allow-list, not a deny-list.

Credentials hide in more places than `user:password@`: the query string carries key-file
passwords, proxy passwords and `authMechanismProperties` (an AWS session token, an OIDC
token resource). A deny-list misses the option someone adds next year, so only options known to
carry no secret show their value; every other value is `***`, and an option name tgsync does not
know is hidden with it (a name can be anything a person typed)."""

from __future__ import annotations

from typing import List
from urllib.parse import unquote

# Options MongoDB documents whose values are settings, never credentials (lower-cased).
SHOWN = frozenset(name.lower() for name in (
    "replicaSet", "tls", "ssl", "tlsInsecure", "tlsAllowInvalidCertificates",
    "tlsAllowInvalidHostnames", "tlsDisableOCSPEndpointCheck", "tlsDisableCertificateRevocationCheck",
    "tlsCAFile", "tlsCertificateKeyFile", "tlsCRLFile", "sslCAFile", "sslCertificateKeyFile",
    "ssl_cert_reqs", "connectTimeoutMS", "socketTimeoutMS", "timeoutMS", "compressors",
    "zlibCompressionLevel", "maxPoolSize", "minPoolSize", "maxConnecting", "maxIdleTimeMS",
    "waitQueueMultiple", "waitQueueTimeoutMS", "w", "wtimeoutMS", "journal", "readConcernLevel",
    "readPreference", "maxStalenessSeconds", "readPreferenceTags", "localThresholdMS",
    "serverSelectionTimeoutMS", "serverSelectionTryOnce", "heartbeatFrequencyMS", "appName",
    "retryReads", "retryWrites", "uuidRepresentation", "directConnection", "loadBalanced",
    "srvMaxHosts", "srvServiceName", "authSource", "authMechanism", "connect",
    "serverMonitoringMode", "proxyHost", "proxyPort", "tz_aware", "unicode_decode_error_handler",
    "gssapiServiceName",
))
# Options MongoDB documents that carry credentials (their values are never shown).
CREDENTIAL_OPTIONS = (
    "authMechanismProperties", "tlsCertificateKeyFilePassword", "sslClientCertificateKeyPassword",
    "sslPEMKeyPassword", "proxyUsername", "proxyPassword", "password", "username",
    "awsSessionToken", "gssapiServiceRealm", "gssapiHostName",
)
_NAMED = SHOWN | {name.lower() for name in CREDENTIAL_OPTIONS}


def _split(uri: str):
    """(scheme, userinfo or None, hosts and path, query or None) of a URL-shaped string."""
    scheme, rest = uri.split("://", 1)
    userinfo = None
    if "@" in rest:  # everything before the last @ is hidden, whatever it holds
        userinfo, rest = rest.rsplit("@", 1)
    hosts, sep, query = rest.partition("?")
    return scheme, userinfo, hosts, (query if sep else None)


def _options(query: str) -> List[tuple]:
    out = []
    for item in query.replace(";", "&").split("&"):
        if item:
            name, sep, value = item.partition("=")
            out.append((name, sep, value))
    return out


def redact_uri(uri: str) -> str:
    """mongodb://user:secret@host/db?replicaSet=rs&tlsCertificateKeyFilePassword=x →
    mongodb://***@host/db?replicaSet=rs&tlsCertificateKeyFilePassword=***."""
    if "://" not in uri:
        return uri
    scheme, userinfo, hosts, query = _split(uri)
    shown = f"{scheme}://" + ("***@" if userinfo is not None else "") + hosts
    if query is None:
        return shown
    parts = []
    for name, sep, value in _options(query):
        key = unquote(name).lower()
        if key in SHOWN:
            parts.append(f"{name}{sep}{value}")
        elif key in _NAMED:
            parts.append(f"{name}=***")
        else:
            parts.append("***=***")
    return f"{shown}?{'&'.join(parts)}"


def uri_secrets(uri: str) -> List[str]:
    """Every value in the URI that may not be shown (the password, each hidden option's value
    and, for authMechanismProperties, each property's value), raw and URL-decoded, so a message
    that quotes one (a driver's error) is scrubbed too."""
    if "://" not in uri:
        return []
    _, userinfo, _, query = _split(uri)
    found: List[str] = []
    if userinfo:
        found.append(userinfo)
        if ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
    for name, _, value in _options(query or ""):
        if unquote(name).lower() in SHOWN or not value:
            continue
        found.append(value)
        if name.lower() not in _NAMED:
            found.append(name)
        for prop in unquote(value).split(","):
            found.append(prop.partition(":")[2])
    return sorted({v for s in found for v in (s, unquote(s)) if len(v) >= 4}, key=len, reverse=True)


def uri_holds_secrets(uri: str) -> bool:
    return bool(uri_secrets(uri))
