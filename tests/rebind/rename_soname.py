#!/usr/bin/env python3
"""Copies a shared library, renaming sonames in its dynamic string table in
place: SRC DST OLD=NEW... Each NEW has OLD's length, so no offset moves;
the DT_SONAME and DT_NEEDED entries then name the copies."""
import struct
import sys


def dynstr_range(data):
    """Offset and size of .dynstr, from the section headers."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        sys.exit("not a 64-bit ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3a)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_off = sections[shstrndx][4]
    for s in sections:
        name = data[names_off + s[0]:data.index(b"\0", names_off + s[0])]
        if name == b".dynstr":
            return s[4], s[5]
    sys.exit("no .dynstr")


def main():
    src, dst, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
    data = bytearray(open(src, "rb").read())
    off, size = dynstr_range(data)
    table = bytes(data[off:off + size])
    for pair in pairs:
        old, new = (p.encode() + b"\0" for p in pair.split("="))
        if len(old) != len(new):
            sys.exit(f"{pair}: names differ in length")
        # Whole strings only: each starts after a NUL.
        table = table.replace(b"\0" + old, b"\0" + new)
    data[off:off + size] = table
    with open(dst, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
