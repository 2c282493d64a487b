"""The `lfsd` Typer app and its sub-apps; commands register on them from their own modules.

Every command runs inside `LfsdGroup.invoke`, the one place that turns what escapes a command into what a
user should see: Ctrl-C is `interrupted: ...` and exit 130; any other failure is one `error: ...` line and
the path of the full log (the traceback is written there), exit 1; `lfsd --debug COMMAND` shows the
traceback instead. Help is click's plain text (flags without a `<bool>` metavar, paragraphs re-flowed)."""

from __future__ import annotations

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

DEBUG = {"on": False}  # set by `lfsd --debug`


class LfsdGroup(TyperGroup):
    """Commands listed in the order they are defined; failures of any of them reported in one line."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: typer.Context):
        from components.cli.running import quiet_libraries, report_failure, report_interrupt

        quiet_libraries()
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):  # typer's own: usage errors, explicit exits
            raise
        except KeyboardInterrupt as e:
            if DEBUG["on"]:
                raise
            raise typer.Exit(report_interrupt(e)) from None
        except Exception as e:
            if DEBUG["on"]:
                raise
            raise typer.Exit(report_failure(e)) from None


def _typer(help_text: str) -> typer.Typer:
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        cls=LfsdGroup,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"max_content_width": 120},  # click's 80 columns cut every command's help short
    )


app = _typer("lfsd: lifelong few-shot customization of text-to-image diffusion models.")
world_app = _typer("The embedded procedural world.")
bench_app = _typer("Measured benchmarks (results land in docs/).")
app.add_typer(world_app, name="world")
app.add_typer(bench_app, name="benchmark")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"lfsd {version('lfsd')}")
        except PackageNotFoundError:
            typer.echo("lfsd (not installed as a package)")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of a failure instead of one line."),
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print lfsd's version and exit."
    ),
) -> None:
    """lfsd: lifelong few-shot customization of text-to-image diffusion models."""
    DEBUG["on"] = debug
