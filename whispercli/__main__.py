"""`python -m whispercli` and the `whispercli` command. Loading the CLI takes a moment
(typer, the command modules): a Ctrl-C then ends as at any other moment, one line, exit 130."""

from __future__ import annotations


def main() -> None:
    try:
        from whispercli.cli.app import main as run
    except KeyboardInterrupt:
        from whispercli.cli.output import exit_interrupted

        exit_interrupted()
    run()


if __name__ == "__main__":
    main()
