"""The input compiler: one generator of request decoders, two accessors for the two forms.

Each request form has a *checking path* (:mod:`dsl.input.request`: a reader, then an
interpreter of the same plans), which reports every problem, and a *fast path*: straight-line Python
generated once per schema that reads a well-formed request field by field and gives up
(``raise SLOW``) on anything else, so that the checking path judges it.

:class:`DecoderSource` writes that code from the field plans (:mod:`dsl.input.plans`); what
differs between the forms is only how a value is read, so that is all an accessor says:
:class:`MappingAccess` reads the proto3 JSON mapping (``d.get("memberSince")``, numbers as JSON
numbers or digits, RFC 3339 texts) and :class:`MessageAccess` reads ``loyalty.v1`` messages by
attribute name (``m.member_since``, ``HasField``, the ``details`` oneof named after the kind).
The bounds, defaults, constants, record and list handling are written once.

A fast path is only safe if it checks every bound the checking path checks; the differential
tests hold the two to the same results, and the source passes
:func:`dsl.backend.compiler.load_decoder` (the policies' verifier with a closed allow-list of
names) before anything runs. Values never enter the source: every constant is a namespace name.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from dsl.backend.compiler import load_decoder
from dsl.input import scalars
from dsl.input.layout import MessageLayout, RequestLayout
from dsl.input.plans import ABSENT, CONSTANT, DERIVED, MESSAGE, REQUIRED, Plan, event_plans, record_plans
from dsl.schema import airports
from dsl.schema.schema import MAX_LIST, MAX_MAGNITUDE, Schema, currency_codes
from dsl.schema.timezones import time_zones

_TEXT_KINDS = ("string", "enum", "airport", "currency_code", "timezone", "date", "decimal")
_LIMIT = f"{MAX_MAGNITUDE:_}"


class Function:
    """One generated function being written: its lines and its local names."""

    def __init__(self, name: str, param: str) -> None:
        self.name = name
        self.lines = [f"def {name}({param}):"]
        self.taken = {param}
        #: int64 counters to bound in one comparison before the record is built.
        self.non_negative: list[str] = []

    def local(self, hint: str) -> str:
        """A fresh local named after ``hint`` (a field's path)."""
        base = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_") or "value"
        if keyword.iskeyword(base) or base[0].isdigit() or base.startswith("decode_"):
            base = f"{base}_"
        name, n = base, 1
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name

    def add(self, depth: int, *lines: str) -> None:
        self.lines += ["    " * depth + line for line in lines]


class MappingAccess:
    """Reads the mapping form: a plain mapping per message, as JSON gives it."""

    form = "mapping"
    what = "plain mappings (the proto3 JSON mapping of loyalty.v1 requests)"
    namespace: dict[str, Any] = {
        "ISSTR": scalars.is_str, "ISDICT": scalars.is_dict, "ISLIST": scalars.is_list,
        "INT64": scalars.int64, "TIME": scalars.parse_time, "TIME_GET": scalars.TIMES.get,
        "ATTR": scalars.mapping_attribute, "EMPTY": {},
    }
    is_text = "ISSTR"
    #: The request function: its name, parameters, first lines and the event's kind.
    request = ("decode_request", "request",
               ["    customer = request['customer']", "    event = request['event']"],
               "event.get('kind')")

    def guard(self, fn: Function, depth: int, src: str, keys: str, checked: bool) -> None:
        """Refuse keys the message does not have (and anything but a mapping, unless ``checked``)."""
        if not checked:
            fn.add(depth, f"if not ISDICT({src}): raise SLOW")
        fn.add(depth, f"if not {keys}.issuperset({src}): raise SLOW")

    def attributes(self, fn: Function, depth: int, src: str, var: str, known: str) -> None:
        fn.add(depth, f"{var} = {src}.get('attributes')",
               f"if {var} is not None and (not ISDICT({var}) or not {known}.issuperset({var})): "
               "raise SLOW")

    def read(self, fn: Function, depth: int, src: str, plan: Plan, var: str) -> None:
        fn.add(depth, f"{var} = {src}.get({plan.json_name!r})")
        if plan.json_name != plan.name:  # either spelling, never both
            fn.add(depth, f"if {var} is None: {var} = {src}.get({plan.name!r})",
                   f"elif {plan.name!r} in {src}: raise SLOW")

    def text(self, fn: Function, depth: int, plan: Plan, var: str, when_missing: str,
             conversion: list[str]) -> None:
        fn.add(depth, f"if {var} is None or {var} == '': {when_missing}", "else:")
        fn.add(depth + 1, *conversion)

    def integer(self, fn: Function, depth: int, src: str, plan: Plan, var: str, when_missing: str) -> None:
        if plan.missing is None:
            fn.add(depth, f"if {var} is not None: {var} = INT64({var})")
        else:
            fn.add(depth, f"if {var} is None: {when_missing}", f"else: {var} = INT64({var})")

    def boolean(self, fn: Function, depth: int, plan: Plan, var: str, when_missing: str) -> None:
        fn.add(depth, f"if {var} is None: {when_missing}",
               f"elif {var} is not True and {var} is not False: raise SLOW")

    def time(self, fn: Function, depth: int, src: str, plan: Plan, var: str, when_missing: str) -> None:
        fn.add(depth, f"if {var} is None or {var} == '': {when_missing}",
               f"else: {var} = TIME_GET({var}) or TIME({var})")

    def record(self, fn: Function, depth: int, var: str) -> None:
        fn.add(depth, f"if {var} is None: {var} = EMPTY", f"elif not ISDICT({var}): raise SLOW")

    def items(self, fn: Function, depth: int, var: str, helper: str) -> None:
        fn.add(depth, f"if {var} is None: {var} = []",
               f"elif not ISLIST({var}) or LEN({var}) > {MAX_LIST}: raise SLOW",
               f"else: {var} = [{helper}(x) for x in {var}]")

    def details(self, fn: Function, depth: int, kind: str, kind_const: str, var: str) -> None:
        """Read the event's details (and refuse a ``kind`` that names another kind)."""
        fn.add(depth, "given_kind = event.get('kind')",
               f"if given_kind is not None and given_kind != '' and given_kind != {kind_const}: "
               "raise SLOW")
        fn.taken.add("given_kind")
        if var:
            fn.add(depth, f"{var} = event.get({kind!r})")
            self.record(fn, depth, var)


class MessageAccess:
    """Reads ``loyalty.v1`` messages by attribute name: proto3 gives "" and 0 for a field that
    was not set, so ``HasField`` is asked only where a zero could be either."""

    form = "message"
    what = "loyalty.v1 protobuf messages"
    namespace: dict[str, Any] = {
        "TS": scalars.message_time, "INSTANT": scalars.INSTANTS.get,
        "NEW_INSTANT": scalars.new_instant, "ATTR": scalars.message_attribute,
    }
    is_text = ""
    #: The request function: its name, parameters, first lines and the event's kind (the
    #: budget is the checking path's: the fast path counts nothing).
    request: tuple[str, str, list[str], str] = (
        "decode_inputs", "customer, event, budget=None", [], "event.kind")

    def guard(self, fn: Function, depth: int, src: str, keys: str, checked: bool) -> None:
        """A message has only its own fields."""

    def attributes(self, fn: Function, depth: int, src: str, var: str, known: str) -> None:
        fn.add(depth, f"{var} = {src}.attributes",
               f"if {var} and not {known}.issuperset({var}): raise SLOW")

    def read(self, fn: Function, depth: int, src: str, plan: Plan, var: str) -> None:
        fn.add(depth, f"{var} = {src}.{plan.name}")

    def text(self, fn: Function, depth: int, plan: Plan, var: str, when_missing: str,
             conversion: list[str]) -> None:
        if plan.missing is REQUIRED:  # every kind's conversion but a string's refuses "" itself
            if plan.kind == "string":
                fn.add(depth, f"if not {var}: raise SLOW")
            fn.add(depth, *conversion)
            return
        fn.add(depth, f"if {var}:")
        fn.add(depth + 1, *conversion)
        fn.add(depth, f"else: {when_missing}")

    def integer(self, fn: Function, depth: int, src: str, plan: Plan, var: str, when_missing: str) -> None:
        if plan.wire == "optional int64":  # HasField only for a zero (unset, or set to 0)
            fn.add(depth, f"if not {var} and not {src}.HasField({plan.name!r}): {when_missing}")

    def boolean(self, fn: Function, depth: int, plan: Plan, var: str, when_missing: str) -> None:
        """A proto3 bool is its own default."""

    def time(self, fn: Function, depth: int, src: str, plan: Plan, var: str, when_missing: str) -> None:
        # A whole-second instant is one cached lookup. HasField costs as much as a conversion,
        # so it is asked only for the zero instant (unset, or the epoch).
        ts = fn.local(f"{var}_timestamp")
        fn.add(depth, f"{ts} = {var}", f"{var} = {ts}.seconds",
               f"if {var} and not {ts}.nanos: {var} = INSTANT({var}) or NEW_INSTANT({var})",
               f"elif {var} or {ts}.nanos or {src}.HasField({plan.name!r}): {var} = TS({ts})",
               f"else: {when_missing}")

    def record(self, fn: Function, depth: int, var: str) -> None:
        """An unset message field reads as an empty message."""

    def items(self, fn: Function, depth: int, var: str, helper: str) -> None:
        # The length first: a list past the bound is not read at all (the request's total of
        # list elements is the servicer's to bound, before any item is decoded).
        fn.add(depth, f"if LEN({var}) > {MAX_LIST}: raise SLOW",
               f"{var} = [{helper}(x) for x in {var}]")

    def details(self, fn: Function, depth: int, kind: str, kind_const: str, var: str) -> None:
        """The caller dispatched on ``kind`` and the oneof (:class:`~dsl.input.decoders.MessageFastPath`)."""
        if var:
            fn.add(depth, f"{var} = event.{kind}")


Access = MappingAccess | MessageAccess


class DecoderSource:
    """Generates one form's fast path for a schema: ``decode_customer(customer)`` and one
    ``decode_event_<kind>(event)`` per event kind (and ``decode_record_<name>`` for list items).

    Names in the generated source come from the schema (checked there against
    ``[a-z][a-z0-9_]*``); every other value is a constant in the namespace.
    """

    def __init__(self, schema: Schema, access: Access, layout: RequestLayout | None = None) -> None:
        self.schema = schema
        self.access = access
        self.layout = layout or RequestLayout(schema)
        self.ns: dict[str, Any] = {
            "SLOW": scalars.Slow, "LEN": len,
            "INT_DECIMAL": Decimal,  # only ever called on an int already within bounds
            "DATE": scalars.cached_date, "DATE_GET": scalars.DATES.get,
            "AIRPORTS": airports.airport_codes(), "CURRENCIES": currency_codes(),
            "TIMEZONES": time_zones(), **access.namespace,
        }
        #: The attribute names the generated code reads (the verifier allows these alone).
        self.attributes: set[str] = {"get", "issuperset", "date", "attributes", "seconds", "nanos",
                                     "HasField"}
        self.functions: list[Function] = []
        self.helpers: dict[str, str] = {}
        self._consts: dict[Any, str] = {}
        self._keep: list[Any] = []  # constants stay referenced, so their ids stay unique
        self._namespace: dict[str, Any] | None = None
        self._generate()

    # -- the result --------------------------------------------------------------------------

    def source(self) -> str:
        """The generated source: a header, then every function, each field under its plan."""
        header = [
            f"# Input decoders for {self.access.what},",
            f"# generated for schema {self.schema.digest} by dsl.input.generate from the request",
            "# layout (dsl.input.layout) and one plan per field (dsl.input.plans).",
            "# Each function reads a well-formed request in one pass and raises SLOW on anything",
            "# else; the checking path (dsl.input.request, an interpreter of the same plans) then judges it",
            "# and names every problem. UPPERCASE names are the namespace's constants and helpers.",
        ]
        return "\n".join(header + [line for fn in self.functions for line in ["", *fn.lines]]) + "\n"

    def load(self) -> dict[str, Any]:
        """The loaded namespace (verified and run once, :func:`dsl.backend.compiler.load_decoder`)."""
        if self._namespace is None:
            names = self.attributes | {fn.name for fn in self.functions}
            filename = f"<{self.access.form} decoder for schema {self.schema.digest}>"
            self._namespace = load_decoder(self.source(), filename, self.ns, frozenset(names))
        return self._namespace

    def customer(self) -> Callable[[Any], dict[str, Any]]:
        """``decode_customer``; raises on anything unusual."""
        return self.load()["decode_customer"]  # type: ignore[no-any-return]

    def events(self) -> dict[str, Callable[[Any], dict[str, Any]]]:
        """``decode_event_<kind>`` by kind; each raises on anything unusual."""
        ns = self.load()
        return {kind: ns[f"decode_event_{kind}"] for kind in self.layout.events}

    # -- constants ---------------------------------------------------------------------------

    def const(self, value: Any, hint: str) -> str:
        """The name of a namespace constant holding ``value`` (values never enter the source)."""
        key = ((value.__class__, value) if isinstance(value, str | int | frozenset)
               else (value.__class__, id(value)))
        if key not in self._consts:
            base = re.sub(r"[^A-Z0-9]+", "_", hint.upper()).strip("_")
            name, n = base, 1
            while name in self.ns:
                n += 1
                name = f"{base}_{n}"
            self.ns[name] = value
            self._consts[key] = name
            self._keep.append(value)
        return self._consts[key]

    def decimals(self, minimum: int | Decimal | None, maximum: int | Decimal | None = None) -> str:
        """The decimal cache for a least (and most) value: ``NAME_GET(text)`` looks up,
        ``NAME(text)`` converts and checks (:func:`dsl.input.scalars.decimal_cache`)."""
        def part(v: int | Decimal) -> str:
            return re.sub(r"[^0-9]", "_", str(v).replace("-", "MINUS_"))

        name = "DECIMALS" if minimum is None else "DECIMALS_FROM_" + part(minimum)
        if maximum is not None:
            name += "_TO_" + part(maximum)
        if name not in self.ns:
            self.ns[f"{name}_GET"], self.ns[name] = scalars.decimal_cache(minimum, maximum)
        return name

    # -- functions ---------------------------------------------------------------------------

    def _generate(self) -> None:
        fn = Function("decode_customer", "customer")
        fn.lines.insert(0, "# customer: a Customer")
        result = self._message(fn, 1, "customer", self.layout.customer, "customer", "customer", True)
        fn.add(1, f"return {result}")
        self.functions.append(fn)
        for kind in self.layout.events:
            self._event(kind)
        self._inputs()

    def _inputs(self) -> None:
        """A request's two records in one call (one call fewer on every evaluation's path): the
        customer's fields inline, as ``decode_customer`` reads them, and the event by the
        function the caller's dispatch gives (EVENT_BY_KIND, else EVENT_FUNCTION: set once the
        functions are loaded)."""
        name, params, head, kind = self.access.request
        fn = Function(name, "customer")
        fn.lines = ["# a request: its customer (as decode_customer) and its event (by its kind)",
                    f"def {name}({params}):", *head]
        fn.taken |= {"event", "request", "budget", "decode_event"}
        result = self._message(fn, 1, "customer", self.layout.customer, "customer", "customer", True)
        fn.add(1, f"decode_event = EVENT_BY_KIND({kind}) or EVENT_FUNCTION(event)",
               f"return {result}, decode_event(event)")
        self.ns["EVENT_BY_KIND"] = self.ns["EVENT_FUNCTION"] = None
        self.attributes.add("kind")
        self.functions.append(fn)

    def inputs(self, by_kind: Callable[[str], Any], event_function: Callable[[Any], Any]
               ) -> Callable[..., tuple[dict[str, Any], dict[str, Any]]]:
        """The request function (``decode_request(mapping)``, ``decode_inputs(customer, event,
        budget=None)``), an event's function ``by_kind(kind)`` (a dict's ``get``) or else
        ``event_function(event)``."""
        ns = self.load()
        ns["EVENT_BY_KIND"], ns["EVENT_FUNCTION"] = by_kind, event_function
        return ns[self.access.request[0]]  # type: ignore[no-any-return]

    def _event(self, kind: str) -> None:
        own, details = self.layout.events[kind]
        fn = Function(f"decode_event_{kind}", "event")
        fn.lines.insert(0, f"# event: an Event of kind {kind}"
                        + (f", its details in event.{kind}" if details else ""))
        keys = {k for s in own.message_slots() for k in (s.name, s.json_name)} | {"kind", "attributes"}
        if details is not None:
            keys.add(kind)
            self.attributes.add(kind)
        self.access.guard(fn, 1, "event", self.const(frozenset(keys), f"event_{kind}_keys"), True)
        sources = {"event": "event"}
        details_var = ""
        if details is not None:
            details_var = sources[f"event.{kind}"] = fn.local(kind)
        self.access.details(fn, 1, kind, self.const(kind, f"kind_{kind}"), details_var)
        if details is not None:
            self.access.guard(fn, 1, details_var, self._keys(details, f"{kind}_keys"), True)
        plans = event_plans(self.schema, self.layout, kind)
        fn.add(1, "# event.attributes: the extension fields of the event")
        attrs = sources["event.attributes"] = fn.local("attributes")
        known = [p.name for p in plans if p.path.startswith("event.attributes.")]
        known_const = self.const(frozenset(known), f"event_{kind}_attributes")
        self.access.attributes(fn, 1, "event", attrs, known_const)
        fn.add(1, f"return {self._fields(fn, 1, plans, sources, kind)}")
        self.functions.append(fn)

    def _keys(self, layout: MessageLayout, hint: str) -> str:
        keys = {k for s in layout.message_slots() for k in (s.name, s.json_name)}
        if layout.has_attributes:
            keys.add("attributes")
        return self.const(frozenset(keys), hint)

    def _message(self, fn: Function, depth: int, src: str, layout: MessageLayout, record: str,
                 path: str, checked: bool) -> str:
        """Decode a whole message into a dict display: its keys, its attributes, every field."""
        self.access.guard(fn, depth, src, self._keys(layout, f"{path}_keys"), checked)
        plans = record_plans(self.schema, layout, record, path)
        sources = {path: src}
        if layout.has_attributes:
            hint = "attributes" if src in ("customer", "m") else f"{self._local_hint(path)}_attributes"
            attrs = sources[f"{path}.attributes"] = fn.local(hint)
            known = frozenset(p.name for p in plans if p.path.startswith(f"{path}.attributes."))
            self.access.attributes(fn, depth, src, attrs, self.const(known, f"{path}_attributes"))
        return self._fields(fn, depth, plans, sources, "")

    def _fields(self, fn: Function, depth: int, plans: list[Plan], sources: dict[str, str],
                kind: str) -> str:
        """Every plan's code; the dict display of the prepared record (in the plans' order)."""
        out: list[tuple[str, str]] = []
        for plan in plans:
            if plan.source == CONSTANT:
                out.append((plan.name, self.const(kind, f"kind_{kind}")))
                continue
            if plan.source == DERIVED:
                var = fn.local(plan.name)
                src = dict(out).get(plan.derived_from)
                fn.add(depth, f"# {plan.describe()}")
                fn.add(depth, f"{var} = {src}.date() if {src} is not None else None" if src
                       else f"{var} = None")
                out.append((plan.name, var))
                continue
            fn.add(depth, f"# {plan.describe()}")
            parent = plan.path.rsplit(".", 1)[0]
            var = fn.local(self._local_hint(plan.path))
            out.append((plan.name, var))
            if plan.source == MESSAGE:
                self.attributes.add(plan.name)
                self._message_field(fn, depth, sources[parent], plan, var)
            elif plan.source == ABSENT:
                fn.add(depth, "raise SLOW" if plan.missing is REQUIRED else
                       f"{var} = {self._missing(plan)}")
            else:
                self._attribute(fn, depth, sources[parent], plan, var)
        if fn.non_negative:
            # OR-ing never gives less than the largest operand, and is negative when any operand
            # is: one comparison bounds them all (a false alarm only costs the checking path,
            # which then judges each alone).
            fn.add(depth, f"if not 0 <= ({' | '.join(fn.non_negative)}) < {_LIMIT}: raise SLOW")
            fn.non_negative.clear()
        return "{" + ", ".join(f"{name!r}: {var}" for name, var in out) + "}"

    @staticmethod
    def _local_hint(path: str) -> str:
        root, _, rest = path.partition(".")
        rest = rest.replace("attributes.", "")
        return rest if root == "customer" or "." not in rest else rest.split(".", 1)[1]

    # -- one field ---------------------------------------------------------------------------

    def _missing(self, plan: Plan) -> str:
        """What a field that was not given becomes: its default, None, or a refusal."""
        if plan.missing is REQUIRED:
            return "raise SLOW"
        if plan.missing is None:
            return "None"
        if plan.missing == []:
            return "[]"
        if plan.missing.__class__ in (int, bool):  # a literal reads better than a name
            return repr(plan.missing)
        return self.const(plan.missing, f"{self._local_hint(plan.path)}_default")

    def _when_missing(self, plan: Plan, var: str) -> str:
        missing = self._missing(plan)
        return missing if missing == "raise SLOW" else f"{var} = {missing}"

    def _message_field(self, fn: Function, depth: int, src: str, plan: Plan, var: str) -> None:
        """Read, convert and check a field of the message into ``var``."""
        if not plan.carried:  # the directory's type is not the message's: the checking path says why
            fn.add(depth, "raise SLOW")
            return
        access, kind = self.access, plan.kind
        when_missing = self._when_missing(plan, var)
        access.read(fn, depth, src, plan, var)
        if kind == "record":
            access.record(fn, depth, var)
            record = plan.field.type.name
            result = self._message(fn, depth, var, self.layout.record(record), record, plan.path, True)
            fn.add(depth, f"{var} = {result}")
        elif kind == "list":
            assert plan.field.type.elem is not None and plan.field.type.elem.kind == "record"
            access.items(fn, depth, var, self._record_helper(plan.field.type.elem.name))
        elif kind in _TEXT_KINDS and plan.wire == "string":
            access.text(fn, depth, plan, var, when_missing, self._text(fn, var, plan))
            if kind == "decimal" and plan.missing is not REQUIRED and not _decimal_ok(plan):
                # the schema refuses its own default: the checking path says why
                fn.add(depth, f"if {var} is {self._missing(plan)}: raise SLOW")
        elif kind in ("int", "decimal"):
            access.integer(fn, depth, src, plan, var, when_missing)
            self._bounds(fn, depth, plan, var)
            if kind == "decimal":
                guard = f"if {var} is not None: " if plan.missing is None else ""
                fn.add(depth, f"{guard}{var} = INT_DECIMAL({var})")
        elif kind == "bool":
            access.boolean(fn, depth, plan, var, when_missing)
        else:  # datetime
            access.time(fn, depth, src, plan, var, when_missing)

    def _attribute(self, fn: Function, depth: int, attrs: str, plan: Plan, var: str) -> None:
        """An extension field: a scalar ``Value``, converted by the schema's own reading (ATTR);
        only the number bounds are left to check."""
        t = self.const(plan.field.type, f"{self._local_hint(plan.path)}_type")
        fn.add(depth, f"{var} = {attrs}.get({plan.name!r}) if {attrs} else None",
               f"if {var} is not None: {var} = ATTR({var}, {t}, {plan.field.max_length})")
        missing = self._missing(plan)
        if missing != "None":
            fn.add(depth, f"if {var} is None: {self._when_missing(plan, var)}")
        self._bounds(fn, depth, plan, var)

    def _bounds(self, fn: Function, depth: int, plan: Plan, var: str) -> None:
        """Range checks for a number: the input bound, then the schema's least and most values."""
        low, high = plan.low, plan.field.maximum
        maybe_none = plan.missing is None
        guard = f"{var} is not None and " if maybe_none else ""
        if plan.kind == "int":
            if low == 0 and not maybe_none:
                fn.non_negative.append(var)  # checked together: 0 <= (a | b | c) < 10**18
            else:
                fn.add(depth, f"if {guard}not {low:_} <= {var} < {_LIMIT}: raise SLOW")
        elif low is not None:
            fn.add(depth, f"if {guard}{var} < {self.const(low, f'least_{low}')}: raise SLOW")
        if high is not None:
            fn.add(depth, f"if {guard}{var} > {self.const(high, f'most_{high}')}: raise SLOW")

    def _text(self, fn: Function, var: str, plan: Plan) -> list[str]:
        """Lines converting and checking a text (string, enum, airport, currency code, time zone,
        date, decimal); the mapping form also tells a text from anything else."""
        kind, f = plan.kind, plan.field
        if kind == "string":
            is_text = self.access.is_text
            guard = f"not {is_text}({var}) or " if is_text else ""
            return [f"if {guard}LEN({var}) > {f.max_length}: raise SLOW"]
        if kind == "enum":
            values = self.const(frozenset(f.type.values), f"{self._local_hint(plan.path)}_values")
            return [f"if {var} not in {values}: raise SLOW"]
        if kind in ("airport", "currency_code", "timezone"):
            table = {"airport": "AIRPORTS", "currency_code": "CURRENCIES", "timezone": "TIMEZONES"}[kind]
            return [f"if {var} not in {table}: raise SLOW"]
        if kind == "date":
            return [f"{var} = DATE_GET({var}) or DATE({var})"]
        # a decimal: a cache hit is both the conversion and the check (a zero is falsy)
        cache, text = self.decimals(f.minimum, f.maximum), fn.local(f"{var}_text")
        return [f"{text} = {var}", f"{var} = {cache}_GET({text})",
                f"if {var} is None: {var} = {cache}({text})"]

    def _record_helper(self, record: str) -> str:
        if record in self.helpers:
            return self.helpers[record]
        name = self.helpers[record] = "decode_record_" + re.sub(r"[^a-z0-9_]", "_", record)
        fn = Function(name, "m")
        fn.lines.insert(0, f"# {record}: one element of a list")
        result = self._message(fn, 1, "m", self.layout.record(record), record, record, False)
        fn.add(1, f"return {result}")
        self.functions.append(fn)
        return name


def _decimal_ok(plan: Plan) -> bool:
    """Whether a field's default passes its own checks (else the checking path says why)."""
    value, minimum, maximum = plan.missing, plan.field.minimum, plan.field.maximum
    return isinstance(value, Decimal) and value.is_finite() and (minimum is None or value >= minimum) \
        and (maximum is None or value <= maximum)
