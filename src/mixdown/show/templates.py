"""The scripts: every template rendered with Jinja2, once per variant row, and parsed.

:func:`render_scripts` renders each script of a :class:`~mixdown.show.project.Project`
for every row of its variants CSV, maps each rendered line back to the
template line it came from (:mod:`mixdown.show.sourcemap`), parses the text
into sections (:mod:`mixdown.show.stanza`) and checks every voice and SFX it
names. Errors name the template file and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError, TemplateError
from ..keys import record
from ..settings import NAME
from .project import Project, Rendition, Script
from .reader import read_text

__all__ = ["render_scripts"]


def render_scripts(project: Project) -> list[Rendition]:
    """Render every script once per variant row and parse it into sections.

    Checks every voice and SFX a script refers to; errors name the template
    file and line.
    """
    from . import metadata, stanza

    env = _jinja(project.root)
    covers: dict[Path, str] = {}  # each cover image's digest, read once
    out: list[Rendition] = []
    for script in project.scripts.values():
        table = script.metadata.over(project.metadata) if script.metadata else project.metadata
        for variant, row in _variant_rows(project.root, script):
            variables = {**script.vars, **row}
            text, origins = _render(env, script, variables)
            sections = stanza.parse(text, source=script.template, origins=origins)
            rendition = Rendition(script, variant, sections)
            if table is not None:
                names = (script.name, rendition.name)
                rendition.tags = metadata.rendered(project.root, table, variables, names, covers)
            _check_refs(project, rendition)
            out.append(rendition)
    return out


def _jinja(root: Path) -> Any:
    import jinja2

    from .sourcemap import LineMarks

    class RecordingLoader(jinja2.FileSystemLoader):
        """Notes every template file read (includes too) for the plan memo."""

        def get_source(self, environment: Any, template: str) -> Any:
            try:
                source = super().get_source(environment, template)
            except UnicodeDecodeError:  # read it again for the one-line message with its line
                read_text(root / template, template)
                raise
            record(source[1])
            return source

    return jinja2.Environment(
        loader=RecordingLoader(str(root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        extensions=[LineMarks],
    )


def _render(env: Any, script: Script, variables: dict[str, Any]) -> tuple[str, list[Any]]:
    """The rendered text of ``script`` and the template origin of each of its lines."""
    import jinja2

    from .sourcemap import unmark

    root = Path(env.loader.searchpath[0])
    try:
        rendered: str = env.get_template(script.template).render(**variables)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"{err.name or script.template}:{err.lineno}: {err.message}") from None
    except jinja2.UndefinedError as err:
        where = _template_line(err, script.template, root)
        raise TemplateError(f"{where}: {err.message}; define it in vars or the variants file") from None
    except jinja2.TemplateNotFound as err:
        where = _template_line(err, script.template, root)
        raise TemplateError(
            f"{where}: included template {err.name!r} not found; give its path from the show's folder"
        ) from None
    except RecursionError as err:
        where = _template_line(err, script.template, root)
        raise TemplateError(
            f"{where}: the template includes itself (directly or through another); remove the loop"
        ) from None
    except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as err:
        where = _template_line(err, script.template, root)
        raise TemplateError(
            f"{where}: {type(err).__name__}: {err}; fix the expression on that line"
        ) from None
    return unmark(rendered, env.line_mark_files, script.template)


def _template_line(err: BaseException, template: str, root: Path) -> str:
    """``file:line`` of the innermost template frame an exception passed through (Jinja2 maps them)."""
    where = template
    tb = err.__traceback__
    while tb is not None:
        name = Path(tb.tb_frame.f_code.co_filename)
        if name.suffix != ".py" and name.is_relative_to(root):
            where = f"{name.relative_to(root).as_posix()}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def _variant_rows(root: Path, script: Script) -> list[tuple[str | None, dict[str, str]]]:
    """The variants of ``script``: (id, row with ``variant``) for each row of its CSV file."""
    if script.variants is None:
        return [(None, {})]
    import csv
    import io

    path = root / script.variants
    record(path)
    reader = csv.reader(io.StringIO(read_text(path, script.variants), newline=""))
    try:
        table = [(reader.line_num, row) for row in reader if row]
    except csv.Error as err:
        raise ConfigError(
            f"{script.variants}:{reader.line_num}: {err}; check the quotes on that line"
        ) from None
    if len(table) < 2:
        raise ConfigError(f"{script.variants}: no rows; add a header line and one row per variant")
    columns = [c.strip() for c in table[0][1]]
    column = columns.index("id") if "id" in columns else 0
    seen: dict[str, int] = {}
    out: list[tuple[str | None, dict[str, str]]] = []
    for number, row in table[1:]:
        if len(row) != len(columns):
            raise ConfigError(
                f"{script.variants}:{number}: wrong number of fields ({len(row)}); every row needs "
                f"{len(columns)}, like the header ({', '.join(columns)})"
            )
        vid = row[column].strip()
        if vid in seen:
            problem = f"repeats an earlier id (line {seen[vid]}); ids are unique"
        elif not NAME.match(vid):
            problem = (
                "is not a usable name: it names the variant's files and targets, so ASCII letters, "
                "digits, _ - . only, starting with a letter or digit; "
                + ("change it" if columns[column] == "id" else "add an 'id' column first (e.g. zoe-1)")
            )
        else:
            seen[vid] = number
            out.append((vid, {**dict(zip(columns, row, strict=True)), "variant": vid}))
            continue
        raise ConfigError(
            f"{script.variants}:{number}: variant id {vid!r} in column '{columns[column]}' {problem}"
        )
    return out


def _check_refs(project: Project, rendition: Rendition) -> None:
    from . import stanza

    for section in rendition.sections:
        voice = section.settings.get("voice")
        if voice is not None and voice not in project.voices:
            raise TemplateError(
                f"{section.where}: unknown voice '{voice}'; declared: {', '.join(project.voices)}"
            )
        for item in section.items:
            refs: list[tuple[str, str, str]] = []  # kind, name, where it is written
            if isinstance(item, stanza.Say):
                refs = [("sfx", c.sfx, c.where or item.where) for c in item.cues]
                refs += [("voice", item.voice, item.where)] if item.voice else []
            elif isinstance(item, stanza.Play):
                refs = [("sfx", item.sfx, item.where)]
            for kind, name, where in refs:
                declared = project.voices if kind == "voice" else project.sfx
                if name not in declared:
                    raise TemplateError(
                        f"{where}: unknown {kind} '{name}'; declared: {', '.join(declared) or 'none'}"
                        f" (add [{'voices' if kind == 'voice' else 'sfx'}.{name}] to project.toml)"
                    )
