"""The ``ganmemory`` command line: parses and validates options, then calls the library.

Every user error ends in one line on stderr naming the file, option or task at fault, and
exit status 2; no traceback. ``parser.py`` holds the argument tables, ``commands.py`` the commands.
"""

from __future__ import annotations

import sys

from ..errors import GanMemoryError
from .commands import (cmd_compress, cmd_data, cmd_demo, cmd_evaluate, cmd_import, cmd_init, cmd_interpolate,
                       cmd_learn, cmd_lifelong, cmd_list, cmd_merge, cmd_pretrain, cmd_remove, cmd_sample)
from .parser import build_parser

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = {"data": cmd_data, "import-gan-stability": cmd_import, "init": cmd_init, "learn": cmd_learn,
            "list": cmd_list, "evaluate": cmd_evaluate, "interpolate": cmd_interpolate, "remove": cmd_remove,
            "compress": cmd_compress, "merge": cmd_merge, "demo": cmd_demo, "lifelong": cmd_lifelong,
            "pretrain": cmd_pretrain, "sample": cmd_sample}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..distributed import teardown
    try:
        code = COMMANDS[args.command](args)
        teardown()
        return code
    except GanMemoryError as exc:
        print(f"ganmemory {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused: a place that cannot be written, a full disk
        name = exc.filename2 or exc.filename  # a rename names its target second
        where = f"'{name}'" if name else "a file"
        print(f"ganmemory {args.command}: error: cannot use {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ganmemory {args.command}: interrupted; files already written are intact", file=sys.stderr)
        return 130

