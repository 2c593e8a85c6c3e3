#!/usr/bin/env python3
"""Makes an identical twin of every library in a library's dependency
closure, but libc, libm, libstdc++, libgcc_s and the loader: LIB OUTDIR.
Each twin is the file with every closure soname in its dynamic string table
renamed in place, "lib" to "liZ" (same length, so the layout is the same),
and OUTDIR/twins.txt lists "SONAME TWIN-FILE" with dependencies first, the
order to load them in."""
import os
import struct
import subprocess
import sys

from rename_soname import dynstr_range

SHARED = ("libc.so.", "libm.so.", "libstdc++.so.", "libgcc_s.so.", "ld-linux", "linux-vdso")


def closure(lib):
    """soname -> path of everything lib loads, lib included."""
    out = {os.path.basename(lib): os.path.realpath(lib)}
    for line in subprocess.run(["ldd", lib], check=True, capture_output=True, text=True).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>" and not parts[0].startswith(SHARED):
            out[parts[0]] = os.path.realpath(parts[2])
    return out


def needed(path):
    """The DT_NEEDED names of a 64-bit little-endian ELF file."""
    data = open(path, "rb").read()
    str_off, _ = dynstr_range(data)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3a)
    names = []
    for i in range(shnum):
        s = struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
        if s[1] != 6:  # SHT_DYNAMIC
            continue
        for off in range(s[4], s[4] + s[5], 16):
            tag, val = struct.unpack_from("<qQ", data, off)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                names.append(data[str_off + val:data.index(b"\0", str_off + val)].decode())
    return names


def twin_name(soname):
    assert soname.startswith("lib"), soname
    return "liZ" + soname[3:]


def main():
    lib, outdir = sys.argv[1], sys.argv[2]
    libs = closure(lib)
    deps = {so: [n for n in needed(path) if n in libs] for so, path in libs.items()}
    order, done = [], set()

    def visit(so, stack=()):
        if so in done or so in stack:
            return
        for d in deps[so]:
            visit(d, stack + (so,))
        done.add(so)
        order.append(so)

    for so in sorted(libs):
        visit(so)
    os.makedirs(outdir, exist_ok=True)
    renames = [(b"\0" + so.encode() + b"\0", b"\0" + twin_name(so).encode() + b"\0") for so in libs]
    with open(os.path.join(outdir, "twins.txt"), "w") as manifest:
        for so in order:
            data = bytearray(open(libs[so], "rb").read())
            off, size = dynstr_range(data)
            table = bytes(data[off:off + size])
            for old, new in renames:
                table = table.replace(old, new)
            data[off:off + size] = table
            dst = os.path.join(outdir, twin_name(so))
            with open(dst, "wb") as f:
                f.write(data)
            left = [n for n in needed(dst) if n in libs]
            if left:
                sys.exit(f"{dst} still needs {left}")
            manifest.write(f"{so} {twin_name(so)}\n")


if __name__ == "__main__":
    main()
