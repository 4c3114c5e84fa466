"""Checks of a command's arguments before anything starts: each failure is an InputError.

A port that is taken, a log file in a folder that does not exist: found here, named with
the option and the value, exit 2, before an engine, a thread or a file is made.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from posactors.errors import InputError


def free_port(option: str, port: int, host: str = "127.0.0.1") -> int:
    """``port`` if it is a valid port nobody listens on at ``host``; InputError otherwise."""
    if not 0 < port < 65536:
        raise InputError(f"{option} {port}: expected a port, 1-65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(
                    f"{option} {port}: the port is already in use on {host} "
                    "(another posactors? choose another port)"
                ) from None
            raise InputError(f"{option} {port}: cannot listen on {host} ({exc.strerror})") from None
    return port


def writable_file(option: str, value: str) -> Path:
    """A file that can be appended to: its folder exists, it is not a folder, it is writable."""
    path = Path(value)
    if value == "" or path.is_dir():
        raise InputError(f"{option} {value!r}: expected a file name, found a folder")
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"{option} {value}: the folder {folder} does not exist (create it first)")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"{option} {value}: not writable")
    return path
