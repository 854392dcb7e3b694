"""Write the generated half of the Python client (``clients/python``) from ``docs/asyncapi.json``.

Usage: ``python scripts/generate_python_client.py [--output-dir DIR]``. Two modules come out:

- ``marketcast_client/models.py``: a pydantic v2 model per schema of the document (envelopes
  with a ``Literal`` ``type``, payloads, params), the ``ClientMessage``/``ServerMessage``
  discriminated unions and the ``ErrorCode`` literal;
- ``marketcast_client/channels.py``: one ``Family`` descriptor and one typed
  ``subscribe_<family>`` method per channel family the document has (every channel that
  publishes a ``<family>.subscribe`` message), so a new family on the server reaches Python
  users by regenerating, with no hand edit.

Why our own generator rather than datamodel-code-generator (which wrote the test suite's
models before these): that one annotates constrained fields with ``constr()`` / ``conint()``
calls, which ``mypy --strict`` rejects in user code, and it cannot write the client methods.
Constraints here are ``Annotated[str, Field(pattern=...)]``.

The output is deterministic (document order, then names; no timestamps) and run through ruff
with the repository's settings, so a rerun is byte-identical and the files pass ``ruff check``
and ``ruff format --check``. ``scripts/check_generated.py`` compares them with git.
"""

from __future__ import annotations

import argparse
import json
import keyword
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "docs" / "asyncapi.json"
PACKAGE = ROOT / "clients" / "python" / "src" / "marketcast_client"
MODELS = "models.py"
CHANNELS = "channels.py"
#: The repository's ruff line length: comments and docstrings are wrapped to it.
LINE_LENGTH = 100
HEADER = (
    '"""{what}\n'
    "\n"
    "Generated from docs/asyncapi.json by scripts/generate_python_client.py: do not edit.\n"
    "Regenerate with `python scripts/generate_python_client.py` after the contract changes.\n"
    '"""\n'
)

Schema = dict[str, Any]


class GeneratorError(SystemExit):
    """The document has a shape this generator does not translate; fail rather than guess."""


def _ref_name(ref: str) -> str:
    prefix = "#/components/schemas/"
    if not ref.startswith(prefix):
        raise GeneratorError(f"unsupported $ref {ref!r}: only {prefix}... is translated")
    return ref[len(prefix) :]


def _py(value: Any) -> str:
    """A Python literal for a JSON value (strings via JSON, whose escapes Python shares)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_py(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_py(k)}: {_py(v)}" for k, v in value.items())
        return "{" + items + "}"
    raise GeneratorError(f"no Python literal for {value!r}")


def _pattern(pattern: str) -> str:
    """A raw string when that spells the pattern unchanged, as people write regexes."""
    if '"' not in pattern and not pattern.endswith("\\") and "\n" not in pattern:
        return f'r"{pattern}"'
    return json.dumps(pattern)


def _wrap(text: str, width: int) -> list[str]:
    """The lines of ``text``, each longer than ``width`` re-wrapped (so ruff's E501 holds)."""
    lines: list[str] = []
    for line in text.strip().splitlines():
        if len(line) <= width:
            lines.append(line.rstrip())
        else:
            lines.extend(textwrap.wrap(line, width, break_on_hyphens=False))
    return lines


def _comment(text: str, indent: str) -> str:
    """``#:`` lines (the attribute-doc convention Sphinx reads) holding ``text``."""
    width = LINE_LENGTH - len(indent) - 3
    return "".join(f"{indent}#: {line}".rstrip() + "\n" for line in _wrap(text, width))


def _docstring(text: str, indent: str) -> str:
    body = text.strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if "\n" not in body and len(indent) + len(body) + 6 <= LINE_LENGTH:
        return f'{indent}"""{body}"""\n'
    lines = _wrap(body, LINE_LENGTH - len(indent))
    inner = "\n".join(f"{indent}{line}" if line.strip() else "" for line in lines)
    return f'{indent}"""\n{inner}\n{indent}"""\n'


@dataclass(frozen=True)
class Annotation:
    """A field's type: ``full`` for the model (with constraints), ``plain`` for signatures."""

    full: str
    plain: str


class Types:
    """Translate JSON Schema fragments of the document into Python annotations."""

    def __init__(self, schemas: dict[str, Schema]) -> None:
        self.schemas = schemas

    def of(self, schema: Schema) -> Annotation:
        """The annotation of ``schema``, constraints as ``Annotated[..., Field(...)]``."""
        options = schema.get("anyOf", [])
        others = [option for option in options if option.get("type") != "null"]
        if options and len(others) == 1 and len(options) == 2:
            # ``X | None`` with X's constraints outside: pydantic applies them to the X.
            inner = self._base(others[0])
            return self._constrained(
                Annotation(f"{inner.full} | None", f"{inner.plain} | None"),
                self._constraints(others[0]),
            )
        return self._constrained(self._base(schema), self._constraints(schema))

    @staticmethod
    def _constrained(base: Annotation, constraints: list[str]) -> Annotation:
        if not constraints:
            return base
        return Annotation(f"Annotated[{base.full}, Field({', '.join(constraints)})]", base.plain)

    def _base(self, schema: Schema) -> Annotation:
        if "$ref" in schema:
            name = _ref_name(schema["$ref"])
            return Annotation(name, name)
        if "anyOf" in schema or "oneOf" in schema:
            options: list[Schema] = schema.get("anyOf") or schema.get("oneOf") or []
            parts = [self.of(part) for part in options]
            full = " | ".join(dict.fromkeys(part.full for part in parts))
            plain = " | ".join(dict.fromkeys(part.plain for part in parts))
            return Annotation(full, plain)
        if "const" in schema:
            literal = f"Literal[{_py(schema['const'])}]"
            return Annotation(literal, literal)
        if "enum" in schema:
            literal = f"Literal[{', '.join(_py(value) for value in schema['enum'])}]"
            return Annotation(literal, literal)
        kind = schema.get("type")
        simple = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
        if kind in simple:
            return Annotation(simple[kind], simple[kind])
        if kind == "null":
            return Annotation("None", "None")
        if kind == "array":
            item = self.of(schema.get("items", {}))
            return Annotation(f"list[{item.full}]", f"list[{item.plain}]")
        if kind == "object" and not schema.get("properties"):
            return Annotation("dict[str, Any]", "dict[str, Any]")
        if kind is None and not schema:
            return Annotation("Any", "Any")
        raise GeneratorError(f"cannot translate schema {json.dumps(schema)[:200]}")

    @staticmethod
    def _constraints(schema: Schema) -> list[str]:
        found = []
        if "pattern" in schema:
            found.append(f"pattern={_pattern(schema['pattern'])}")
        for key, arg in (
            ("minimum", "ge"),
            ("maximum", "le"),
            ("exclusiveMinimum", "gt"),
            ("exclusiveMaximum", "lt"),
            ("minLength", "min_length"),
            ("maxLength", "max_length"),
            ("minItems", "min_length"),
            ("maxItems", "max_length"),
        ):
            if key in schema:
                found.append(f"{arg}={_py(schema[key])}")
        return found

    def refs(self, schema: Any) -> Iterator[str]:
        """Names of the schemas ``schema`` refers to, directly."""
        if isinstance(schema, dict):
            for key, value in schema.items():
                if key == "$ref" and isinstance(value, str):
                    yield _ref_name(value)
                else:
                    yield from self.refs(value)
        elif isinstance(schema, list):
            for item in schema:
                yield from self.refs(item)

    def reachable(self, roots: list[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.refs(self.schemas[name]))
        return seen

    def ordered(self) -> list[str]:
        """Every schema after the ones it refers to (no forward references); ties by name."""
        done: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in done:
                return
            if name in visiting:
                raise GeneratorError(f"recursive schema {name}: not supported")
            visiting.add(name)
            for dependency in sorted(set(self.refs(self.schemas[name]))):
                visit(dependency)
            visiting.discard(name)
            done.append(name)

        for name in sorted(self.schemas):
            visit(name)
        return done


def _nullable(schema: Schema) -> bool:
    options = [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]
    return any(option.get("type") == "null" for option in options)


def _field_name(name: str) -> tuple[str, str | None]:
    """A Python attribute for a JSON property, and the alias when they differ."""
    attribute = name if name.isidentifier() else "".join(c if c.isalnum() else "_" for c in name)
    if keyword.iskeyword(attribute) or attribute.startswith("model_"):
        attribute += "_"
    if attribute[0].isdigit():
        attribute = f"f_{attribute}"
    return attribute, (None if attribute == name else name)


def render_models(document: Schema) -> str:
    schemas: dict[str, Schema] = document["components"]["schemas"]
    types = Types(schemas)
    server_side = types.reachable(["ServerMessage"]) if "ServerMessage" in schemas else set()
    out = [
        HEADER.format(
            what="The wire messages of marketcast, as pydantic v2 models.\n\n"
            "Envelopes carry a ``Literal`` ``type`` (the discriminator of ``ClientMessage`` and\n"
            "``ServerMessage``). Models of what the client sends refuse unknown fields, as the\n"
            "server does; models of what the server sends ignore them, so that a server adding\n"
            "an optional field does not break deployed clients. Conformance checks that must\n"
            'refuse them validate with ``context={"forbid_extra": True}``.'
        ),
        "from collections.abc import Mapping\n"
        "from types import MappingProxyType\n"
        "from typing import Annotated, Any, Final, Literal, NamedTuple, TypeAlias\n\n"
        "from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator\n\n\n"
        "class ClientModel(BaseModel):\n"
        '    """Base of what the client sends: the server refuses unknown fields, so do we."""\n\n'
        '    model_config = ConfigDict(extra="forbid", protected_namespaces=())\n\n\n'
        "class ServerModel(BaseModel):\n"
        '    """Base of what the server sends: unknown fields are ignored unless the\n'
        '    validation context asks for ``forbid_extra`` (see the module docstring)."""\n\n'
        '    model_config = ConfigDict(extra="ignore", protected_namespaces=())\n\n'
        '    @model_validator(mode="before")\n'
        "    @classmethod\n"
        "    def _refuse_unknown_fields(cls, data: Any, info: ValidationInfo) -> Any:\n"
        "        context = info.context\n"
        '        if isinstance(context, dict) and context.get("forbid_extra") and isinstance(\n'
        "            data, dict\n"
        "        ):\n"
        "            known = {field.alias or name for name, field in cls.model_fields.items()}\n"
        "            unknown = sorted(str(key) for key in data if key not in known)\n"
        "            if unknown:\n"
        "                raise ValueError(f\"unknown fields: {', '.join(unknown)}\")\n"
        "        return data\n",
    ]
    for name in types.ordered():
        schema = schemas[name]
        out.append("\n\n")
        out.append(_render_schema(name, schema, types, server=name in server_side))
    out.append(_render_code_tables(document))
    return "".join(out)


_CLOSE_RETRIES: Final = ("never", "immediate", "growing", "backoff")
_ERROR_RETRIES: Final = ("never", "later")


def _render_code_tables(document: Schema) -> str:
    """``x-close-codes`` and ``x-error-codes`` as constants: the reconnect policy and the retry
    of refused requests, the same table the TypeScript client is generated from."""
    close_codes = document.get("x-close-codes")
    error_codes = document.get("x-error-codes")
    if not isinstance(close_codes, dict) or not isinstance(error_codes, dict):
        raise GeneratorError("the document has no x-close-codes / x-error-codes")
    close_lines = []
    for code, info in close_codes.items():
        if not (code.isdigit() and isinstance(info, dict) and info.get("retry") in _CLOSE_RETRIES):
            raise GeneratorError(f"x-close-codes: bad entry {code}: {info!r}")
        close_lines.append(
            f"    {int(code)}: CloseCodeInfo({_py(str(info['meaning']))}, {_py(info['retry'])}),\n"
        )
    error_lines = []
    for code, info in error_codes.items():
        if not (isinstance(info, dict) and info.get("retry") in _ERROR_RETRIES):
            raise GeneratorError(f"x-error-codes: bad entry {code}: {info!r}")
        error_lines.append(f"    {_py(code)}: {_py(info['retry'])},\n")
    close_type = ", ".join(_py(value) for value in _CLOSE_RETRIES)
    error_type = ", ".join(_py(value) for value in _ERROR_RETRIES)
    return (
        "\n\n"
        f"CloseRetry: TypeAlias = Literal[{close_type}]\n"
        f"ErrorRetry: TypeAlias = Literal[{error_type}]\n\n\n"
        "class CloseCodeInfo(NamedTuple):\n"
        '    """What a close code means, and what a client does next: ``never`` retry, reconnect\n'
        "    ``immediate``-ly, ``growing`` back-off (reset only once a later connection is\n"
        '    stable), or plain ``backoff`` (``x-close-codes``)."""\n\n'
        "    meaning: str\n"
        "    retry: CloseRetry\n\n\n"
        "#: Every close code the server sends (``x-close-codes``).\n"
        "CLOSE_CODES: Final[Mapping[int, CloseCodeInfo]] = MappingProxyType({\n"
        + "".join(close_lines)
        + "})\n\n"
        "#: Whether a refused request may be sent again after a delay (``later``) or not\n"
        "#: (``never``), by error code (``x-error-codes``).\n"
        "ERROR_CODE_RETRY: Final[Mapping[str, ErrorRetry]] = MappingProxyType({\n"
        + "".join(error_lines)
        + "})\n"
    )


def _render_schema(name: str, schema: Schema, types: Types, *, server: bool) -> str:
    description = schema.get("description")
    if "oneOf" in schema:
        members = " | ".join(_ref_name(part["$ref"]) for part in schema["oneOf"])
        discriminator = schema.get("discriminator")
        if isinstance(discriminator, dict):
            discriminator = discriminator.get("propertyName")
        value = f"Annotated[{members}, Field(discriminator={_py(discriminator)})]"
        if discriminator is None:
            value = members
        return f"{_comment(description or '', '')}{name}: TypeAlias = {value}\n"
    if schema.get("type") != "object":
        annotation = types.of(schema)
        return f"{_comment(description or '', '')}{name}: TypeAlias = {annotation.full}\n"
    base = "ServerModel" if server else "ClientModel"
    lines = [f"class {name}({base}):\n"]
    if description:
        lines.append(_docstring(description, "    "))
    required = set(schema.get("required", []))
    properties: dict[str, Schema] = schema.get("properties", {})
    if properties and description:
        lines.append("\n")
    for prop, prop_schema in properties.items():
        attribute, alias = _field_name(prop)
        text = types.of(prop_schema).full
        if alias is not None:
            text = f"Annotated[{text}, Field(alias={_py(alias)})]"
        if "const" in prop_schema:
            default = f" = {_py(prop_schema['const'])}"
        elif prop in required:
            default = ""
        elif "default" in prop_schema:
            default = f" = {_py(prop_schema['default'])}"
            if prop_schema["default"] is None and not _nullable(prop_schema):
                text = f"{text} | None"
        else:
            default = " = None"
            if not _nullable(prop_schema):
                text = f"{text} | None"
        lines.append(_comment(prop_schema.get("description", ""), "    "))
        lines.append(f"    {attribute}: {text}{default}\n")
    if not properties and not description:
        lines.append("    pass\n")
    return "".join(lines)


@dataclass(frozen=True)
class FamilySpec:
    """What a channel family's generated method and descriptor need from the document."""

    name: str
    summary: str
    description: str
    subscribe: str
    subscribe_payload: str
    params: str | None
    reply: str
    unsubscribe: str | None
    unsubscribe_payload: str | None
    update_type: str
    update: str
    replay_field: str | None
    #: For a family that resumes with a snapshot of items ordered by ``id`` (``trades``): the
    #: largest snapshot it may ask for; None otherwise.
    resume_snapshot: int | None


def _families(document: Schema) -> list[FamilySpec]:
    schemas: dict[str, Schema] = document["components"]["schemas"]
    messages: dict[str, Schema] = document["components"]["messages"]
    by_title = {message["title"]: message for message in messages.values()}

    def envelope(title: str) -> str | None:
        message = by_title.get(title)
        return None if message is None else _ref_name(message["payload"]["$ref"])

    def payload_of(envelope_name: str) -> str:
        return _ref_name(schemas[envelope_name]["properties"]["payload"]["$ref"])

    found = []
    for channel in document["channels"].values():
        for part in channel.get("publish", {}).get("message", {}).get("oneOf", []):
            ref = part.get("$ref", "")
            message = messages.get(ref.rsplit("/", 1)[-1])
            if message is None or not message["title"].endswith(".subscribe"):
                continue
            family = message["title"][: -len(".subscribe")]
            subscribe = _ref_name(message["payload"]["$ref"])
            reply = envelope(f"{family}.subscribe.response")
            update = envelope(f"{family}.update")
            if reply is None or update is None:
                raise GeneratorError(f"family {family!r}: no subscribe.response or update")
            unsubscribe = envelope(f"{family}.unsubscribe")
            payload = payload_of(subscribe)
            params_schema = schemas[payload]["properties"].get("params")
            found.append(
                FamilySpec(
                    name=family,
                    summary=message.get("summary", ""),
                    description=message.get("description", ""),
                    subscribe=subscribe,
                    subscribe_payload=payload,
                    params=None if params_schema is None else _ref_name(params_schema["$ref"]),
                    reply=payload_of(reply),
                    unsubscribe=unsubscribe,
                    unsubscribe_payload=None if unsubscribe is None else payload_of(unsubscribe),
                    update_type=f"{family}.update",
                    update=payload_of(update),
                    replay_field=_replay_field(schemas, payload, payload_of(reply)),
                    resume_snapshot=_resume_snapshot(schemas, payload, payload_of(reply)),
                )
            )
    return found


def _replay_field(schemas: dict[str, Schema], subscribe: str, reply: str) -> str | None:
    """The reply field holding timed bars, when the family can resume with ``since``; or the
    one holding items ordered by ``id``, when it resumes with a snapshot (``_resume_snapshot``).

    Such a family gets the client's recovery: resubscribe with ``since`` after a reconnect and
    pass each closed bar on once. It needs ``since`` on the request and an array of items
    with ``time`` and ``closed`` in the reply.
    """
    if _resume_snapshot(schemas, subscribe, reply) is not None:
        return _id_items_field(schemas, reply)
    if "since" not in schemas[subscribe].get("properties", {}):
        return None
    for name, prop in schemas[reply].get("properties", {}).items():
        for option in [prop, *prop.get("anyOf", [])]:
            items = option.get("items", {}) if option.get("type") == "array" else {}
            if "$ref" in items:
                fields = schemas[_ref_name(items["$ref"])].get("properties", {})
                if {"time", "closed"} <= set(fields):
                    return str(name)
    return None


def _id_items_field(schemas: dict[str, Schema], reply: str) -> str | None:
    """The reply field holding an array of items with an integer ``id`` (trades), if any."""
    for name, prop in schemas[reply].get("properties", {}).items():
        for option in [prop, *prop.get("anyOf", [])]:
            items = option.get("items", {}) if option.get("type") == "array" else {}
            if "$ref" in items:
                fields = schemas[_ref_name(items["$ref"])].get("properties", {})
                if fields.get("id", {}).get("type") == "integer":
                    return str(name)
    return None


def _resume_snapshot(schemas: dict[str, Schema], subscribe: str, reply: str) -> int | None:
    """For a family without ``since`` whose reply carries items ordered by ``id`` (trades):
    the largest ``snapshot`` it may ask for, which is what it resumes with after a reconnect,
    passing on only the ids after the last one it yielded."""
    properties = schemas[subscribe].get("properties", {})
    if "since" in properties or _id_items_field(schemas, reply) is None:
        return None
    maximum = properties.get("snapshot", {}).get("maximum")
    return int(maximum) if isinstance(maximum, int) else None


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))


def render_channels(document: Schema) -> str:
    schemas: dict[str, Schema] = document["components"]["schemas"]
    types = Types(schemas)
    families = _families(document)
    imported = sorted(
        {
            name
            for family in families
            for name in (
                family.subscribe,
                family.subscribe_payload,
                family.params,
                family.reply,
                family.unsubscribe,
                family.unsubscribe_payload,
                family.update,
            )
            if name is not None
        }
    )
    out = [
        HEADER.format(
            what="Typed subscribe methods, one per channel family of the AsyncAPI document.\n\n"
            "Each family also gets a ``Family`` descriptor (which models carry its requests,\n"
            "replies and updates) that the hand-written core uses to route and recover."
        ),
        "from collections.abc import Mapping\n"
        "from typing import Any, Final, Literal, TypeAlias\n\n"
        "from .core import ClientCore, Family, Subscription\n"
        f"from .models import {', '.join(imported)}\n",
    ]
    for family in families:
        constant = family.name.upper().replace("-", "_").replace(".", "_")
        alias = f"{_camel(family.name)}Subscription"
        out.append(
            f"\n\n#: Updates of a ``{family.name}`` subscription are ``{family.update}``.\n"
            f"{alias}: TypeAlias = Subscription[{family.reply}, {family.update}]\n"
            f"{constant}: Final = Family(\n"
            f"    name={_py(family.name)},\n"
            f"    subscribe={family.subscribe},\n"
            f"    reply={family.reply},\n"
            f"    unsubscribe={family.unsubscribe},\n"
            f"    unsubscribe_payload={family.unsubscribe_payload},\n"
            f"    update_type={_py(family.update_type)},\n"
            f"    update={family.update},\n"
            f"    replay_field={_py(family.replay_field)},\n"
            f"    resume_snapshot={_py(family.resume_snapshot)},\n"
            ")\n"
        )
    registry = ", ".join(
        f"{_py(f.name)}: {f.name.upper().replace('-', '_').replace('.', '_')}" for f in families
    )
    out.append(
        "\n\n#: Every family, by name: how the core routes ``<family>.update`` frames.\n"
        f"FAMILIES: Final[Mapping[str, Family[Any, Any]]] = {{{registry}}}\n"
        "\n\nclass GeneratedChannels(ClientCore):\n"
        '    """The typed ``subscribe_<family>`` methods; ``MarketcastClient`` inherits them."""\n'
        "\n"
        "    _families = FAMILIES\n"
    )
    for family in families:
        out.append(_render_method(family, schemas, types))
    return "".join(out)


def _render_method(family: FamilySpec, schemas: dict[str, Schema], types: Types) -> str:
    payload_schema = schemas[family.subscribe_payload]
    properties: dict[str, Schema] = payload_schema.get("properties", {})
    required = set(payload_schema.get("required", []))
    positional: list[str] = []
    keywords: list[str] = []
    assignments: list[str] = []
    seen: set[str] = set()

    def argument(prop: str, schema: Schema, is_required: bool) -> str:
        attribute, _alias = _field_name(prop)
        if attribute in seen:
            raise GeneratorError(f"family {family.name!r}: two arguments named {attribute!r}")
        seen.add(attribute)
        plain = types.of(schema).plain
        if is_required:
            return f"{attribute}: {plain}"
        default = schema.get("default")
        if default is None and "None" not in plain.split(" | "):
            plain = f"{plain} | None"
        return f"{attribute}: {plain} = {_py(default)}"

    for prop, schema in properties.items():
        if prop == "params":
            continue
        if prop in required:
            positional.append(argument(prop, schema, True))
    params_args: list[str] = []
    if family.params is not None:
        params_schema = schemas[family.params]
        params_required = set(params_schema.get("required", []))
        for prop, schema in params_schema.get("properties", {}).items():
            keywords.append(argument(prop, schema, prop in params_required))
            params_args.append(_field_name(prop)[0])
    for prop, schema in properties.items():
        if prop != "params" and prop not in required:
            keywords.append(argument(prop, schema, False))
    for prop in properties:
        attribute = _field_name(prop)[0]
        if prop == "params" and family.params is not None:
            inner = ", ".join(f"{name}={name}" for name in params_args)
            assignments.append(f"params={family.params}({inner})")
        else:
            assignments.append(f"{attribute}={attribute}")
    signature = ", ".join(["self", *positional, *(["*", *keywords] if keywords else [])])
    alias = f"{_camel(family.name)}Subscription"
    constant = family.name.upper().replace("-", "_").replace(".", "_")
    paragraphs = [
        family.summary.strip(),
        family.description.strip(),
        f"Returns once the server confirmed; iterate the subscription for ``{family.update}``."
        " Raises a ``ServerError`` subclass when the server refuses the subscription.",
    ]
    if family.resume_snapshot is not None:
        paragraphs.append(
            f"After a reconnect it subscribes again with ``snapshot={family.resume_snapshot}``"
            f" and yields the items of the reply's ``{family.replay_field}`` after the last id"
            f" it yielded, in order: each once. A gap the snapshot cannot cover is reported"
            f" as ``recovered`` False. The first reply's ``{family.replay_field}`` (the"
            f" snapshot) stay in ``subscription.reply``."
        )
    elif family.replay_field is not None:
        paragraphs.append(
            f"After a reconnect it subscribes again with ``since`` after the last closed item"
            f" passed on, and yields the items of the reply's ``{family.replay_field}`` it had"
            f" not yielded yet, in order: each closed one once. The first reply's"
            f" ``{family.replay_field}`` (the snapshot) stay in ``subscription.reply``."
        )
    doc_lines = "\n\n".join(paragraph for paragraph in paragraphs if paragraph).splitlines()
    method_name = "subscribe_" + family.name.replace("-", "_").replace(".", "_")
    return (
        f"\n    async def {method_name}({signature}) -> {alias}:\n"
        + _docstring("\n".join(doc_lines), "        ")
        + f"        payload = {family.subscribe_payload}({', '.join(assignments)})\n"
        + f"        return await self._subscribe({constant}, payload)\n"
    )


def render(document: Schema) -> dict[str, str]:
    """The formatted text of each generated module, by file name."""
    drafts = {MODELS: render_models(document), CHANNELS: render_channels(document)}
    return {name: _ruff(text, PACKAGE / name) for name, text in drafts.items()}


def _ruff(text: str, as_path: Path) -> str:
    """Fix and format ``text`` as if it were at ``as_path`` (so with the same ruff settings)."""
    path = str(as_path.relative_to(ROOT))
    text = _run(
        sys.executable,
        "-m",
        "ruff",
        "format",
        "--quiet",
        "--stdin-filename",
        path,
        "-",
        stdin=text,
    )
    fixed = _run(
        sys.executable,
        "-m",
        "ruff",
        "check",
        "--fix",
        "--quiet",
        "--stdin-filename",
        path,
        "-",
        stdin=text,
    )
    return _run(
        sys.executable,
        "-m",
        "ruff",
        "format",
        "--quiet",
        "--stdin-filename",
        path,
        "-",
        stdin=fixed,
    )


def _run(*command: str, stdin: str) -> str:
    done = subprocess.run(
        command, cwd=ROOT, input=stdin, capture_output=True, text=True, encoding="utf-8"
    )
    if done.returncode != 0:
        raise GeneratorError(
            f"{' '.join(command[:4])} failed with status {done.returncode}:\n"
            f"{done.stderr}{done.stdout}"
        )
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=PACKAGE,
        help="where to write models.py and channels.py (default: the client package)",
    )
    options = parser.parse_args()
    document = json.loads(SOURCE.read_text(encoding="utf-8"))
    output_dir: Path = options.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in render(document).items():
        target = output_dir / name
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
