#!/usr/bin/env python3
"""The Kubernetes manifest sketches of docs/scaling.md (docs/k8s/*.yaml).

usage: test-k8s.py K8S-DIR UCAAS-AUTHD-8-SCD CONFIG-C

No cluster here: what can be checked without one is. Every document
parses, and has apiVersion, kind and metadata.name, the apiVersion its kind
has. Every ucaasauth.conf in a ConfigMap names, for its cache = daemon
profiles, the daemon's default socket, as ucaas-authd(8) and config.c give
it (and those two agree). In every pod, the container that runs ucaas-authd
and the containers that read its configuration mount the socket's
directory from one place: the same host directory, or the same emptyDir of
medium Memory in the same pod; the clients' user or groups are in
allow_users or allow_groups, and the daemon runs as root or daemon_user
(or the clients refuse it); the daemon's credential file and master key
are mounted where the configuration and $CREDENTIALS_DIRECTORY say; Secret
volumes give no access to others.
"""
import configparser
import glob
import os
import posixpath
import re
import sys

try:
    import yaml
except ImportError:
    sys.exit("test-k8s: python3-yaml is missing (tools/install-deps "
             "installs it)")

API_VERSIONS = {
    "Namespace": "v1", "ConfigMap": "v1", "Secret": "v1",
    "ServiceAccount": "v1", "Deployment": "apps/v1",
    "DaemonSet": "apps/v1", "StatefulSet": "apps/v1",
}
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet")

k8s_dir, man_page, config_c = sys.argv[1:4]
failures = []


def fail(where, what):
    failures.append("%s: %s" % (where, what))


def default_socket():
    man = open(man_page).read()
    m = re.search(r"^_(/[^_\s]+)_\n\tThe default socket", man, re.M)
    code = re.search(r'"socket",\s*"([^"]+)"', open(config_c).read())
    if not m or not code:
        sys.exit("test-k8s: no default socket found in %s or %s" %
                 (man_page, config_c))
    if m.group(1) != code.group(1):
        sys.exit("test-k8s: %s says %s, %s says %s" %
                 (man_page, m.group(1), config_c, code.group(1)))
    return m.group(1)


def profiles(text, where):
    """{name: {key: value}} of a ucaasauth.conf; a key given twice keeps
    the last value (provider lines are not checked here)."""
    cp = configparser.ConfigParser(strict=False, interpolation=None,
                                   comment_prefixes=("#",))
    cp.optionxform = str
    try:
        cp.read_string("[top]\n" + text)
    except configparser.Error as e:
        fail(where, "ucaasauth.conf does not parse: %s" % e)
        return {}
    return {s[len("profile "):]: dict(cp[s]) for s in cp.sections()
            if s.startswith("profile ")}


def under(path, mount):
    """PATH relative to MOUNT if MOUNT holds it, else None."""
    rel = posixpath.relpath(path, mount)
    return None if rel == ".." or rel.startswith("../") else rel


def mount_of(container, volumes, path):
    """(volume, mount, path inside the volume) of PATH in CONTAINER, the
    deepest mount that holds it, or None."""
    best = None
    for m in container.get("volumeMounts", []):
        rel = under(path, m["mountPath"])
        deeper = not best or len(m["mountPath"]) > len(best[1]["mountPath"])
        if rel is not None and deeper:
            best = (volumes.get(m["name"]), m, rel)
    return best


SOCKET = default_socket()
docs = []
files = sorted(glob.glob(os.path.join(k8s_dir, "*.yaml")))
if not files:
    sys.exit("test-k8s: no manifest in %s" % k8s_dir)
for f in files:
    try:
        loaded = list(yaml.safe_load_all(open(f)))
    except yaml.YAMLError as e:
        fail(f, "not YAML: %s" % e)
        continue
    for i, d in enumerate(loaded):
        where = "%s, document %d" % (os.path.basename(f), i + 1)
        if not isinstance(d, dict):
            fail(where, "not a mapping")
            continue
        meta = d.get("metadata")
        if not isinstance(d.get("apiVersion"), str) or \
                not isinstance(d.get("kind"), str) or \
                not isinstance(meta, dict) or \
                not isinstance(meta.get("name"), str):
            fail(where, "no apiVersion, kind or metadata.name")
            continue
        where = "%s: %s %s" % (os.path.basename(f), d["kind"], meta["name"])
        if API_VERSIONS.get(d["kind"]) != d["apiVersion"]:
            fail(where, "apiVersion %s (expected %s)" % (
                d["apiVersion"], API_VERSIONS.get(d["kind"], "a known kind")))
        docs.append((where, d))

# The daemon's configuration, per namespace and ConfigMap name.
configs = {}
for where, d in docs:
    if d["kind"] != "ConfigMap" or "ucaasauth.conf" not in d.get("data", {}):
        continue
    profs = profiles(d["data"]["ucaasauth.conf"], where)
    daemon = {n: p for n, p in profs.items() if p.get("cache") == "daemon"}
    if not daemon:
        fail(where, "no profile with cache = daemon")
    for n, p in daemon.items():
        if p.get("socket", SOCKET) != SOCKET:
            fail(where, "profile %s: socket %s, but the daemon's default is "
                 "%s" % (n, p.get("socket"), SOCKET))
    configs[(d["metadata"].get("namespace"), d["metadata"]["name"])] = daemon

# Where each socket directory lives: ("host", path) or ("pod", pod, volume).
daemons, clients = {}, []
sockdir = posixpath.dirname(SOCKET)
for where, d in docs:
    if d["kind"] not in WORKLOADS:
        continue
    pod = d["spec"]["template"]["spec"]
    ns = d["metadata"].get("namespace")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for v in volumes.values():
        mode = v.get("secret", {}).get("defaultMode", 0o644)
        if "secret" in v and mode & 0o007:
            fail(where, "Secret volume %s: mode %04o gives others access" %
                 (v["name"], mode))
    sec = pod.get("securityContext", {})
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        cwhere = "%s, container %s" % (where, c["name"])
        conf = None
        for m in c.get("volumeMounts", []):
            cm = volumes.get(m["name"], {}).get("configMap", {}).get("name")
            if (ns, cm) in configs:
                conf = configs[(ns, cm)]
        is_daemon = "ucaas-authd" in " ".join(c.get("command", []) +
                                              c.get("args", []))
        if conf is None:
            if is_daemon:
                fail(cwhere, "runs ucaas-authd without a ucaasauth.conf")
            continue
        found = mount_of(c, volumes, sockdir)
        if not found or not found[0]:
            fail(cwhere, "%s is not mounted" % sockdir)
            continue
        vol, m, rel = found
        if "hostPath" in vol:
            place = ("host", posixpath.normpath(
                posixpath.join(vol["hostPath"]["path"], rel)))
        elif "emptyDir" in vol:
            place = ("pod", where, vol["name"])
            if vol["emptyDir"].get("medium") != "Memory":
                fail(cwhere, "emptyDir %s is not medium Memory" % vol["name"])
        else:
            fail(cwhere, "%s comes from neither a hostPath nor an emptyDir" %
                 sockdir)
            continue
        csec = dict(sec, **c.get("securityContext", {}))
        if is_daemon:
            if m.get("readOnly"):
                fail(cwhere, "the daemon's %s is read-only" % m["mountPath"])
            daemons[place] = (cwhere, csec.get("runAsUser"))
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            key = mount_of(c, volumes, env.get("CREDENTIALS_DIRECTORY", "/-"))
            if not key or not key[0] or "secret" not in key[0] or \
                    key[2] != ".":
                fail(cwhere, "$CREDENTIALS_DIRECTORY is not a Secret volume")
            for n, p in conf.items():
                cred = p.get("credentials")
                if not cred or not mount_of(c, volumes, cred):
                    fail(cwhere, "profile %s: credentials %s not mounted" %
                         (n, cred))
        else:
            uid = csec.get("runAsUser")
            gids = set([csec.get("runAsGroup"), csec.get("fsGroup")] +
                       csec.get("supplementalGroups", [])) - {None}
            clients.append((cwhere, place, uid, gids, conf))

if not daemons or not clients:
    fail(k8s_dir, "expected a daemon and a client (found %d and %d)" %
         (len(daemons), len(clients)))
for cwhere, place, uid, gids, conf in clients:
    if place not in daemons:
        fail(cwhere, "no ucaas-authd serves its %s (%s)" % (sockdir, place))
        continue
    daemon_uid = daemons[place][1]
    for n, p in conf.items():
        # The clients' check of the daemon: the peer is root, daemon_user
        # (default ucaasauth, a name the client's image may not know) or
        # the client itself.
        if daemon_uid not in (0, uid) and \
                p.get("daemon_user", "ucaasauth") != str(daemon_uid):
            fail(cwhere, "profile %s: the daemon runs as uid %s, but "
                 "daemon_user is %s: the client would refuse it" %
                 (n, daemon_uid, p.get("daemon_user", "ucaasauth")))
        users = set(re.split(r"[\s,]+", p.get("allow_users", ""))) - {""}
        groups = set(re.split(r"[\s,]+", p.get("allow_groups", ""))) - {""}
        if uid != daemon_uid and str(uid) not in users and \
                not {str(g) for g in gids} & groups:
            fail(cwhere, "profile %s: uid %s, groups %s: neither in "
                 "allow_users %s nor allow_groups %s" %
                 (n, uid, sorted(gids), sorted(users), sorted(groups)))

for f in failures:
    print("FAIL: " + f, file=sys.stderr)
if failures:
    sys.exit(1)
print("ok: %d files, %d documents; socket %s; %d daemon(s), %d client "
      "container(s)" % (len(files), len(docs), SOCKET, len(daemons),
                        len(clients)))
