"""The sample files of docs/deploy are accepted by the programs they are for: tor reads
the torrc (proof-of-work defence included), nginx the two server blocks, gunicorn its
two configurations with the app they serve. Paths and addresses that only exist on a
real server are moved into the test's folder; nothing else is changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from .conftest import FAST_ARGON2, ROOT
from .servers import free_port

SAMPLES = ROOT / "docs" / "deploy"


def test_tor_accepts_the_onion_service_sample(tmp_path):
    tor = shutil.which("tor")
    if not tor:
        pytest.skip("tor is not installed (apt-get install tor)")
    for folder in ("hs", "data"):
        (tmp_path / folder).mkdir(mode=0o700)
    text = (SAMPLES / "torrc").read_text()
    assert "HiddenServicePoWDefensesEnabled 1" in text
    text = text.replace("/var/lib/tor/testimony-intake/", "%s/hs/" % tmp_path)
    text = text.replace("/run/testimony/", "%s/" % tmp_path)
    (tmp_path / "torrc").write_text(text + "\nDataDirectory %s/data\n" % tmp_path)
    done = subprocess.run(
        [tor, "--verify-config", "-f", str(tmp_path / "torrc")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "Configuration was valid" in done.stdout, done.stdout


def test_nginx_accepts_both_server_blocks(tmp_path):
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if not nginx:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "review.testimony.internal")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "review.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "review.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    port = free_port()
    includes = []
    for sample in ("nginx-intake.conf", "nginx-review.conf"):
        text = (SAMPLES / sample).read_text()
        assert "access_log off;" in text and "proxy_max_temp_file_size 0;" in text
        assert "proxy_request_buffering off;" in text
        for old, new in (
            ("/etc/testimony/tls/", "%s/" % tmp_path),
            ("/var/log/nginx/", "%s/" % tmp_path),
            ("/run/testimony/", "%s/" % tmp_path),
            ("10.44.0.1:443", "127.0.0.1:%d" % port),
        ):
            text = text.replace(old, new)
        (tmp_path / sample).write_text(text)
        includes.append("include %s/%s;" % (tmp_path, sample))
    (tmp_path / "nginx.conf").write_text(
        "pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp {\n%s\n}\n"
        % (tmp_path, tmp_path, "\n".join(includes))
    )
    done = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "test is successful" in done.stderr, done.stderr


@pytest.mark.parametrize("face", ["intake", "review"])
def test_gunicorn_accepts_its_configuration_and_loads_the_face(face, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESTIMONY_")}
    env.update(FAST_ARGON2, TESTIMONY_INSTANCE_PATH=str(tmp_path / "instance"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--check-config",
            "-c",
            str(SAMPLES / ("gunicorn-%s.conf.py" % face)),
            "wsgi:%s_app" % face,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_backup_script_is_valid_shell():
    done = subprocess.run(
        ["sh", "-n", str(SAMPLES / "testimony-backup.sh")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
