"""Test certificates made with the openssl CLI: a CA and a localhost server certificate it signed."""
import os
import subprocess


def make_certs(directory):
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=meshd test CA", "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr")
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "ext.cnf", "-out", "server.pem")
    return {name: os.path.join(directory, f) for name, f in
            [("ca", "ca.pem"), ("cert", "server.pem"), ("key", "server.key")]}


def make_ca(directory, name):
    """A self-signed EC CA: (<name>.pem, <name>.key) in `directory`."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem"],
                   check=True, capture_output=True, cwd=directory)
    return os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")


def make_leaf(directory, ca, name, sans, key_type="ec"):
    """A certificate for `name` (CN) with `sans` ("DNS:a.example.com", "URI:spiffe://…") signed by
    `ca` (a make_ca result), for server and client use: (<name>.pem, <name>.key) in `directory`.
    key_type "rsa" makes an RSA 2048 key instead of EC P-256."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    key_args = ["-newkey", "rsa:2048"] if key_type == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    run("req", *key_args, "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr")
    with open(os.path.join(directory, f"{name}.cnf"), "w") as f:
        f.write(f"subjectAltName={','.join(sans)}\nextendedKeyUsage=serverAuth,clientAuth\n")
    run("x509", "-req", "-in", f"{name}.csr", "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-days", "2",
        "-extfile", f"{name}.cnf", "-out", f"{name}.pem")
    return os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")
