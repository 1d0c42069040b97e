"""One syscall on a path, for the e2e tests: prints OK[ result] or the errno's name (ENOENT...).

usage: sys.py OP PATH [ARG]
  stat | read | readlink | listdir | mkdir | rmdir | unlink | rename DEST | create | write |
  truncate | chmod | utime | getxattr NAME | listxattr | setxattr NAME=VALUE
"""
import errno
import os
import sys


def run(op, path, arg):
    if op == "stat":
        st = os.lstat(path)
        return "%o %d" % (st.st_mode, st.st_size)
    if op == "read":
        with open(path, "rb") as f:
            return str(len(f.read()))
    if op == "readlink":
        return os.readlink(path)
    if op == "listdir":
        return "\n".join(sorted(os.listdir(path)))
    if op == "mkdir":
        return os.mkdir(path)
    if op == "rmdir":
        return os.rmdir(path)
    if op == "unlink":
        return os.unlink(path)
    if op == "rename":
        return os.rename(path, arg)
    if op == "create":
        return os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    if op == "write":
        return os.close(os.open(path, os.O_WRONLY))
    if op == "truncate":
        return os.truncate(path, 0)
    if op == "chmod":
        return os.chmod(path, 0o777)
    if op == "utime":
        return os.utime(path, None)
    if op == "getxattr":
        return os.getxattr(path, arg).decode("utf-8", "replace")
    if op == "listxattr":
        return "\n".join(sorted(os.listxattr(path)))
    if op == "setxattr":
        name, _, value = arg.partition("=")
        return os.setxattr(path, name, value.encode())
    raise SystemExit("unknown op " + op)


def main():
    op, path = sys.argv[1], sys.argv[2]
    arg = sys.argv[3] if len(sys.argv) > 3 else None
    try:
        r = run(op, path, arg)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
        return
    print("OK" if r is None else "OK " + r if "\n" not in str(r) else "OK\n" + r)


main()
