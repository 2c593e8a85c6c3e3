"""The program exec_client.py starts: writes every descriptor it has, one
"NUMBER TARGET" line each (TARGET as /proc/self/fd shows it), to the file
named by its argument.

Usage: list_fds.py OUT_FILE
"""
import os
import sys


def main():
    lines = []
    for name in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            lines.append("%s %s\n" % (name, os.readlink("/proc/self/fd/" + name)))
        except OSError:
            pass  # the descriptor os.listdir read the directory with, closed by now
    # Opened only now, so its own descriptor is not in the list.
    with open(sys.argv[1], "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
