"""What a program and the programs it starts see of PYTHONPATH and of the
user's own sitecustomize, with the shim's Python layer in between.

Usage: site_client.py
Prints what it sees itself:
  self: PYTHONPATH=<value or <unset>>
  self: sitecustomize=<file of the module imported as sitecustomize, or <none>>
  self: layer on sys.path: yes|no
and the environment it gives a program it starts, as env(1) reports it (not
a Python program, in which the shim would act again):
  exec: PYTHONPATH=<value or <unset>>
Exit status: env's.
"""
import os
import subprocess
import sys

module = sys.modules.get("sitecustomize")
print("self: PYTHONPATH=" + os.environ.get("PYTHONPATH", "<unset>"), flush=True)
print("self: sitecustomize=" + (getattr(module, "__file__", None) or "<none>"), flush=True)
print("self: layer on sys.path: " + ("yes" if any(p.rstrip("/").endswith("/python-layer") for p in sys.path) else "no"),
      flush=True)
listing = subprocess.run(["env"], stdout=subprocess.PIPE, text=True)
seen = [line[len("PYTHONPATH="):] for line in listing.stdout.splitlines() if line.startswith("PYTHONPATH=")]
print("exec: PYTHONPATH=" + (seen[0] if seen else "<unset>"), flush=True)
sys.exit(listing.returncode)
