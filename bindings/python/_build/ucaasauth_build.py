"""A PEP 517 build backend for the ucaasauth package, standard library only.

Why not setuptools: pip builds a package in an isolated environment into
which it first installs the backend's requirements, and that needs an index
(the network) unless setuptools and wheel are already there and the user
passes --no-build-isolation. This backend requires nothing, so that

    pip install bindings/python

works offline, with any pip that knows in-tree backends (pip >= 19.1), on
any CPython 3. It builds what the package is: pure Python, one directory.
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

NAME = "ucaasauth"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "py3-none-any"


def _version():
    with open(os.path.join(HERE, NAME, "__init__.py"), encoding="utf-8") as f:
        m = re.search(r'^__version__ = "([^"]+)"$', f.read(), re.M)
    if not m:
        raise RuntimeError("no __version__ in %s/__init__.py" % NAME)
    return m.group(1)


def _metadata():
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    return (
        "Metadata-Version: 2.1\n"
        "Name: %s\n"
        "Version: %s\n"
        "Summary: The Authorization header for the EnableX UCaaS REST API: "
        "a ctypes binding of libucaasauth.so.1\n"
        "License: MIT\n"
        "Requires-Python: >=3.6\n"
        "Classifier: Programming Language :: Python :: 3\n"
        "Classifier: Operating System :: POSIX :: Linux\n"
        "Description-Content-Type: text/markdown\n"
        "\n%s" % (NAME, _version(), readme))


def _package_files():
    root = os.path.join(HERE, NAME)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                yield path, os.path.relpath(path, HERE).replace(os.sep, "/")


def _dist_info():
    return "%s-%s.dist-info" % (NAME, _version())


def _wheel_name():
    return "%s-%s-%s.whl" % (NAME, _version(), TAG)


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
    return "%s,sha256=%s,%d\n" % (arcname, digest.rstrip(b"=").decode(),
                                   len(data))


def _write_wheel(directory, files):
    """files: [(arcname, bytes)]; adds the .dist-info and RECORD."""
    info = _dist_info()
    files = list(files) + [
        (info + "/METADATA", _metadata().encode("utf-8")),
        (info + "/WHEEL", ("Wheel-Version: 1.0\nGenerator: ucaasauth_build\n"
                           "Root-Is-Purelib: true\nTag: %s\n" % TAG).encode()),
        (info + "/top_level.txt", (NAME + "\n").encode()),
    ]
    record = "".join(_record_line(a, d) for a, d in files)
    record += info + "/RECORD,,\n"
    files.append((info + "/RECORD", record.encode()))
    name = _wheel_name()
    with zipfile.ZipFile(os.path.join(directory, name), "w",
                         zipfile.ZIP_DEFLATED) as z:
        for arcname, data in files:
            zi = zipfile.ZipInfo(arcname, (1980, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    info = os.path.join(metadata_directory, _dist_info())
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata())
    return _dist_info()


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = []
    for path, arcname in _package_files():
        with open(path, "rb") as f:
            files.append((arcname, f.read()))
    return _write_wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None,
                   metadata_directory=None):
    # A .pth file naming the checkout: the installed package is the source.
    pth = (HERE + "\n").encode("utf-8")
    return _write_wheel(wheel_directory, [("_%s_editable.pth" % NAME, pth)])


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (NAME, _version())
    name = base + ".tar.gz"
    members = ["pyproject.toml", "README.md", "_build/ucaasauth_build.py"]
    members += [a for _, a in _package_files()]
    examples = os.path.join(HERE, "examples")
    if os.path.isdir(examples):
        members += sorted("examples/" + n for n in os.listdir(examples)
                          if n.endswith(".py"))
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz",
                      format=tarfile.PAX_FORMAT) as t:
        for m in members:
            t.add(os.path.join(HERE, m), base + "/" + m, recursive=False)
        data = _metadata().encode("utf-8")
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size = len(data)
        ti.mode = 0o644
        t.addfile(ti, io.BytesIO(data))
    return name
