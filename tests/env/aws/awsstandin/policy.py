"""An IAM policy evaluator (the parts of IAM's logic the stand-in needs), used for eks-auth trust
policies and, under --enforce-iam, for every identity policy moto checks (see iam.py).

evaluate(docs, action, resource, context, principal) -> ALLOW | DENY | NEUTRAL:
- an explicit Deny in any statement wins; otherwise any matching Allow allows; else NEUTRAL
  (implicit deny);
- a statement matches when its Action/NotAction (wildcards, case-insensitive), Resource/NotResource
  (ARN wildcards per colon-separated segment, case-sensitive; absent = any, as in trust policies),
  Principal/NotPrincipal (only checked when a principal is given: "*", {"AWS": ...},
  {"Service": ...}, {"Federated": ...}) and every Condition match;
- Condition: AND across operators and keys, OR across a key's values; keys case-insensitive;
  operators String*, StringLike/NotLike, *IgnoreCase, Arn*, Numeric*, Date*, Bool, Null,
  IpAddress/NotIpAddress, BinaryEquals, with the ForAllValues:/ForAnyValue: prefixes and the
  IfExists suffix. A missing key: positive operators false, negated ones true, IfExists true,
  ForAllValues true, ForAnyValue false. An operator this module does not know fails closed (an
  Allow statement does not apply, a Deny statement does);
- policy variables ${key}, ${key, 'default'}, ${*} ${?} ${$} in Resource and Condition values;
  a value whose variable is not in the context (and has no default) matches nothing.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import re
from typing import Iterable
from urllib.parse import unquote

ALLOW, DENY, NEUTRAL = "Allow", "Deny", "Neutral"


class PolicyError(Exception):
    """A policy element this evaluator cannot evaluate."""


class Context:
    """The request context: condition keys (case-insensitive) -> a list of string values.
    Multi-valued keys (aws:TagKeys, ...) keep all their values; single-valued keys have one."""

    def __init__(self, values: dict | None = None, multi: Iterable[str] = ()):
        self._v: dict[str, list[str]] = {}
        self._multi: set[str] = {k.lower() for k in multi}
        for k, v in (values or {}).items():
            self.set(k, v)

    def set(self, key: str, value) -> None:
        if value is None:
            return
        k = key.lower()
        if isinstance(value, (list, tuple, set)):
            self._v[k] = [_s(x) for x in value]
            self._multi.add(k)
        else:
            self._v[k] = [_s(value)]

    def get(self, key: str) -> list[str] | None:
        return self._v.get(key.lower())

    def is_multi(self, key: str) -> bool:
        return key.lower() in self._multi

    def keys(self) -> list[str]:
        return sorted(self._v)

    def __repr__(self) -> str:  # keys only: values may be tag values, names, ...
        return f"Context(keys={self.keys()})"


def _s(x) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    return str(x)


def _list(x) -> list:
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def load(doc) -> dict:
    """A policy document: dict, JSON text, or URL-encoded JSON text (as IAM APIs return it)."""
    if isinstance(doc, dict):
        return doc
    text = doc.decode() if isinstance(doc, bytes) else str(doc)
    if text.lstrip().startswith("%"):
        text = unquote(text)
    return json.loads(text)


# --- policy variables --------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([^}]*)\}")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


class _Unresolved(Exception):
    pass


def _tokens(raw: str, ctx: Context):
    """raw -> [(is_literal, text)]: literal text from variables (or ${*}/${?}/${$}), else
    pattern text in which * and ? may be wildcards. Raises _Unresolved for a missing variable."""
    out, pos = [], 0
    for m in _VAR.finditer(raw):
        if m.start() > pos:
            out.append((False, raw[pos:m.start()]))
        inner = m.group(1).strip()
        if inner in _SPECIAL:
            out.append((True, _SPECIAL[inner]))
        else:
            name, default = inner, None
            dm = re.match(r"^(.*?)\s*,\s*'(.*)'$", inner)
            if dm:
                name, default = dm.group(1).strip(), dm.group(2)
            vals = ctx.get(name)
            if vals and len(vals) == 1 and not ctx.is_multi(name):
                out.append((True, vals[0]))
            elif default is not None:
                out.append((True, default))
            else:
                raise _Unresolved(name)
        pos = m.end()
    if pos < len(raw):
        out.append((False, raw[pos:]))
    return out


def substitute(raw, ctx: Context) -> str | None:
    """A value with its variables replaced (literal comparison); None if one is unresolved."""
    raw = _s(raw)
    try:
        return "".join(t for _, t in _tokens(raw, ctx))
    except _Unresolved:
        return None


def glob_regex(raw, ctx: Context, *, ignore_case: bool = False, wildcards: bool = True):
    """A compiled full-match regex for a policy pattern (* any run, ? one char); None if a
    variable is unresolved."""
    raw = _s(raw)
    try:
        toks = _tokens(raw, ctx)
    except _Unresolved:
        return None
    parts = []
    for literal, text in toks:
        if literal or not wildcards:
            parts.append(re.escape(text))
        else:
            parts.append("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _arn_match(pattern_raw, value: str, ctx: Context) -> bool:
    """ARN matching: "*" matches anything; else each of the six colon-separated segments is
    matched on its own (wildcards do not cross the first five colons)."""
    pattern = _s(pattern_raw)
    if pattern == "*":
        return True
    psegs = pattern.split(":", 5)
    vsegs = value.split(":", 5)
    if len(psegs) != 6 or len(vsegs) != 6:
        rx = glob_regex(pattern, ctx)
        return bool(rx and rx.fullmatch(value))
    for p, v in zip(psegs, vsegs):
        rx = glob_regex(p, ctx)
        if rx is None or not rx.fullmatch(v):
            return False
    return True


# --- condition operators -----------------------------------------------------------------------


def _num(x) -> float:
    return float(x)


def _date(x) -> float:
    s = _s(x).strip()
    try:
        return float(s)
    except ValueError:
        pass
    s = s.replace("Z", "+00:00")
    d = datetime.datetime.fromisoformat(s)
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d.timestamp()


def _cmp(conv, op):
    def f(policy_raw, actual: str, ctx: Context) -> bool:
        p = substitute(policy_raw, ctx)
        if p is None:
            return False
        try:
            return op(conv(actual), conv(p))
        except (ValueError, TypeError):
            return False

    return f


def _str_eq(policy_raw, actual, ctx):
    p = substitute(policy_raw, ctx)
    return p is not None and p == actual


def _str_eq_ic(policy_raw, actual, ctx):
    p = substitute(policy_raw, ctx)
    return p is not None and p.lower() == actual.lower()


def _str_like(policy_raw, actual, ctx):
    rx = glob_regex(policy_raw, ctx)
    return bool(rx and rx.fullmatch(actual))


def _arn_like(policy_raw, actual, ctx):
    return _arn_match(policy_raw, actual, ctx)


def _bool(policy_raw, actual, ctx):
    p = substitute(policy_raw, ctx)
    return p is not None and p.lower() == actual.lower()


def _ip(policy_raw, actual, ctx):
    p = substitute(policy_raw, ctx)
    if p is None:
        return False
    try:
        return ipaddress.ip_address(actual) in ipaddress.ip_network(p, strict=False)
    except ValueError:
        return False


def _binary(policy_raw, actual, ctx):
    p = substitute(policy_raw, ctx)
    if p is None:
        return False
    try:
        return base64.b64decode(p) == base64.b64decode(actual)
    except ValueError:
        return p == actual


# name -> (match function, negated)
_OPS = {
    "StringEquals": (_str_eq, False),
    "StringNotEquals": (_str_eq, True),
    "StringEqualsIgnoreCase": (_str_eq_ic, False),
    "StringNotEqualsIgnoreCase": (_str_eq_ic, True),
    "StringLike": (_str_like, False),
    "StringNotLike": (_str_like, True),
    "ArnEquals": (_arn_like, False),
    "ArnLike": (_arn_like, False),
    "ArnNotEquals": (_arn_like, True),
    "ArnNotLike": (_arn_like, True),
    "NumericEquals": (_cmp(_num, lambda a, b: a == b), False),
    "NumericNotEquals": (_cmp(_num, lambda a, b: a == b), True),
    "NumericLessThan": (_cmp(_num, lambda a, b: a < b), False),
    "NumericLessThanEquals": (_cmp(_num, lambda a, b: a <= b), False),
    "NumericGreaterThan": (_cmp(_num, lambda a, b: a > b), False),
    "NumericGreaterThanEquals": (_cmp(_num, lambda a, b: a >= b), False),
    "DateEquals": (_cmp(_date, lambda a, b: a == b), False),
    "DateNotEquals": (_cmp(_date, lambda a, b: a == b), True),
    "DateLessThan": (_cmp(_date, lambda a, b: a < b), False),
    "DateLessThanEquals": (_cmp(_date, lambda a, b: a <= b), False),
    "DateGreaterThan": (_cmp(_date, lambda a, b: a > b), False),
    "DateGreaterThanEquals": (_cmp(_date, lambda a, b: a >= b), False),
    "Bool": (_bool, False),
    "IpAddress": (_ip, False),
    "NotIpAddress": (_ip, True),
    "BinaryEquals": (_binary, False),
}


def parse_operator(name: str) -> tuple[str | None, str, bool]:
    """'ForAnyValue:StringLikeIfExists' -> ('ForAnyValue', 'StringLike', True)."""
    qualifier = None
    if ":" in name:
        qualifier, name = name.split(":", 1)
        if qualifier not in ("ForAllValues", "ForAnyValue"):
            raise PolicyError(f"unknown condition set operator {qualifier}")
    if_exists = name.endswith("IfExists")
    if if_exists:
        name = name[: -len("IfExists")]
    if name != "Null" and name not in _OPS:
        raise PolicyError(f"unknown condition operator {name}")
    return qualifier, name, if_exists


def condition_matches(op_name: str, key: str, policy_values, ctx: Context) -> bool:
    qualifier, op, if_exists = parse_operator(op_name)
    values = _list(policy_values)
    actual = ctx.get(key)
    present = actual is not None and len(actual) > 0
    if op == "Null":
        want_absent = [_s(v).lower() for v in values]
        return any((w == "true") == (not present) for w in want_absent if w in ("true", "false"))
    if not present:
        if if_exists or qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return _OPS[op][1]  # negated operators hold when the key is missing
    fn, negated = _OPS[op]

    def one(a: str) -> bool:  # does this context value satisfy the operator?
        hit = any(fn(v, a, ctx) for v in values)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(a) for a in actual)
    if qualifier == "ForAnyValue":
        return any(one(a) for a in actual)
    if len(actual) == 1:
        return one(actual[0])
    # a multi-valued key without a set operator: positive operators need some value to match,
    # negated ones that none does
    return all(one(a) for a in actual) if negated else any(one(a) for a in actual)


def conditions_match(conditions, ctx: Context) -> bool:
    if not conditions:
        return True
    if not isinstance(conditions, dict):
        raise PolicyError("Condition must be an object")
    for op_name, block in conditions.items():
        if not isinstance(block, dict):
            raise PolicyError(f"Condition {op_name} must be an object")
        for key, vals in block.items():
            if not condition_matches(op_name, key, vals, ctx):
                return False
    return True


# --- statements --------------------------------------------------------------------------------


def _action_matches(patterns, action: str) -> bool:
    for p in _list(patterns):
        rx = glob_regex(p, Context(), ignore_case=True)
        if rx is not None and rx.fullmatch(action):
            return True
    return False


def _resource_matches(patterns, resource: str, ctx: Context) -> bool:
    return any(_arn_match(p, resource, ctx) for p in _list(patterns))


def _principal_matches(spec, principal: dict) -> bool:
    """spec: the policy's Principal; principal: {"Service": name} / {"AWS": arn} / {"Federated": x}."""
    if spec == "*":
        return True
    if not isinstance(spec, dict):
        return False
    for kind, wanted in spec.items():
        mine = principal.get(kind)
        for w in _list(wanted):
            w = _s(w)
            if kind == "AWS" and w == "*":
                return True
            if mine is None:
                continue
            if kind == "Service" and w.lower() == mine.lower():
                return True
            if kind == "AWS":
                acct = principal.get("account")
                if w == mine or (acct and w in (acct, f"arn:aws:iam::{acct}:root")):
                    return True
                if principal.get("role_arn") and w == principal["role_arn"]:
                    return True
            if kind == "Federated" and w == mine:
                return True
    return False


def statement_applies(st: dict, action: str, resource: str, ctx: Context, principal: dict | None = None) -> bool:
    if "NotAction" in st:
        if _action_matches(st["NotAction"], action):
            return False
    elif not _action_matches(st.get("Action"), action):
        return False
    if "NotResource" in st:
        if _resource_matches(st["NotResource"], resource, ctx):
            return False
    elif "Resource" in st and not _resource_matches(st["Resource"], resource, ctx):
        return False
    if principal is not None:
        if "NotPrincipal" in st:
            if _principal_matches(st["NotPrincipal"], principal):
                return False
        elif "Principal" in st and not _principal_matches(st["Principal"], principal):
            return False
        elif "Principal" not in st:
            return False  # a resource policy statement without a principal grants nobody
    return conditions_match(st.get("Condition"), ctx)


def evaluate(docs, action: str, resource: str, ctx: Context, principal: dict | None = None) -> str:
    """ALLOW, DENY (an explicit Deny) or NEUTRAL (nothing allows: an implicit deny)."""
    allowed = False
    for doc in docs:
        d = load(doc)
        for st in _list(d.get("Statement")):
            effect = st.get("Effect")
            try:
                applies = statement_applies(st, action, resource, ctx, principal)
            except PolicyError:
                applies = effect == "Deny"  # fail closed
            if not applies:
                continue
            if effect == "Deny":
                return DENY
            if effect == "Allow":
                allowed = True
    return ALLOW if allowed else NEUTRAL
