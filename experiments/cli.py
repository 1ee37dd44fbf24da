"""What the absl command-line tools share: bad input is reported in one line.

Every check in relgraph_jax raises ValueError or TypeError with a message that names the
bad value and what is allowed, so a traceback adds nothing for the user. `run(main)` is
absl's app.run with those errors printed as one line `PROG: MESSAGE` on stderr and exit
status BAD_INPUT (2); `--verbose` shows the traceback as well.
"""
from __future__ import annotations

import os
import re
import sys

from absl import app, flags
from ml_collections import config_flags

BAD_INPUT = 2  # the exit status of a refused command line or config

_VERBOSE = flags.DEFINE_bool("verbose", False, "On bad input, show the Python traceback "
                             "as well as the one-line message.")


def define_config_flag():
    """The experiment config flag: --config=FILE.py[:ARG] with --config.FIELD=VALUE overrides.

    New keys are accepted while parsing the command line (not locked) so that a mistyped
    override (`--config.epochz=3`) reaches the config validation, which names it and the
    allowed keys in one line, instead of failing inside ml_collections with a traceback.
    """
    return config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                           lock_config=False, accept_new_attributes=True)


def fail(message: str) -> None:
    """Prints `PROG: message` on stderr and exits with BAD_INPUT."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)  # python -m experiments.x
    prog = spec.name if spec else os.path.basename(sys.argv[0])
    print(f"{prog}: {message}", file=sys.stderr)
    sys.exit(BAD_INPUT)


def _parse_flags(argv):
    """absl's flag parsing with every error in one line: a bad flag or flag value (absl's
    own parser would print two and exit 1), and what ml_collections raises while loading
    the config file or applying a --config.A.B override under an unknown A. A KeyError or
    AttributeError is called an unknown config key only when an override names that key;
    otherwise (a bug in get_config, a bad `--config=FILE.py:ARG`) it is printed as it is."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:  # a mistyped flag or a value of the wrong type
        refusal = _raised_by_config_file(error)
        if refusal is not None and "--verbose" not in argv:
            fail(str(refusal))  # e.g. config.imports naming a module that is not there
        fail(f"{error}; see --helpshort")
    except (KeyError, AttributeError) as error:
        if "--verbose" in argv:
            raise
        # ml_collections' message starts with the key, quoted (maybe twice), then maybe a
        # "Did you mean" line.
        words = re.findall(r"\w+", str(error))
        key = words[0] if words else ""
        overrides = [a.split("=", 1)[0] for a in argv[1:] if a.startswith("--config.")
                     and key in a.split("=", 1)[0].split(".")]
        if not overrides:
            fail(f"{type(error).__name__}: {error}")
        fail(f"unknown config key {key!r} in {', '.join(overrides)}; check the name against "
             "the config file")
    except (ValueError, TypeError) as error:
        if "--verbose" in argv:
            raise
        fail(str(error))


def _raised_by_config_file(error: BaseException) -> BaseException | None:
    """The ValueError or TypeError the config file raised while it loaded, which
    ml_collections wraps in a flag error holding the traceback as text; None otherwise."""
    chain, cause = [], error.__cause__ or error.__context__
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    wrapped = [i for i, c in enumerate(chain) if str(c).startswith("Error whilst parsing config file")]
    inner = chain[wrapped[0] + 1:] if wrapped else []
    return next((c for c in inner if isinstance(c, (ValueError, TypeError))), None)


def run(main) -> None:
    """app.run(main), with bad input (ValueError, TypeError) reported by `fail`."""
    def guarded(argv):
        try:
            return main(argv)
        except (ValueError, TypeError) as error:
            if _VERBOSE.value:
                raise
            fail(str(error))
    app.run(guarded, flags_parser=_parse_flags)
