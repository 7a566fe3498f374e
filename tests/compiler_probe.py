"""Run by tests/test_compiler.py in a process of its own (it configures Django).

bulk_create() through django_rustpg (its compiler's faster value preparation) and through
the stock backend (psycopg 3), case by case, on one database: the statement and parameters
sent (types included), the instances afterwards (pks, attributes, _state), the rows stored,
the exceptions and warnings raised, and the signals sent must be the same. Prints one JSON
object: {"cases": n, "differences": [...], "fast_columns": {case: [field names]},
"outcomes": {case: {error, warnings, rows, statements}}} (outcomes: django_rustpg's).

argv: dbname host port user
"""
import contextlib
import datetime
import decimal
import json
import sys
import traceback
import uuid
import warnings
from unittest import mock

import django
from django.conf import settings

DB, HOST, PORT, USER = sys.argv[1:5]
common = {"NAME": DB, "HOST": HOST, "PORT": PORT, "USER": USER}
settings.configure(
    DATABASES={"stock": {"ENGINE": "django.db.backends.postgresql", **common},
               "default": {"ENGINE": "django_rustpg", **common}},
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.postgres"],
    USE_TZ=True,
    TIME_ZONE="Europe/Paris",
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
)
django.setup()

from django.contrib.postgres.fields import ArrayField  # noqa: E402
from django.db import connections, models, transaction  # noqa: E402
from django.db.models import F, Value  # noqa: E402
from django.db.models.functions import Lower, Now  # noqa: E402
from django.db.models.signals import post_save, pre_save  # noqa: E402

from django_rustpg import compiler as rust_compiler  # noqa: E402

UTC = datetime.timezone.utc


class Upper(models.CharField):
    """A custom field: its own get_prep_value must be honoured."""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value.upper() if isinstance(value, str) else value


class Stamp(models.CharField):
    """A custom pre_save that writes another attribute: only Django's order is right."""

    def pre_save(self, instance, add):
        instance.note = f"stamped {getattr(instance, self.attname)}"
        return getattr(instance, self.attname)


class Tag(models.Model):
    name = models.CharField(max_length=20, unique=True)

    class Meta:
        app_label = "probe"


class Item(models.Model):
    tag = models.ForeignKey(Tag, models.CASCADE, null=True)
    small = models.SmallIntegerField(default=3)
    num = models.IntegerField()
    big = models.BigIntegerField(null=True)
    pos = models.PositiveIntegerField(default=0)
    flag = models.BooleanField(default=False)
    name = models.CharField(max_length=50)
    email = models.EmailField(blank=True, default="")
    text = models.TextField(default="")
    ratio = models.FloatField(null=True)
    price = models.DecimalField(max_digits=9, decimal_places=2, null=True)
    day = models.DateField(null=True)
    at = models.DateTimeField(null=True)
    created = models.DateTimeField(auto_now_add=True)
    ref = models.UUIDField(default=uuid.uuid4)
    data = models.JSONField(null=True)
    shout = Upper(max_length=20, default="")
    code = models.CharField(max_length=20, unique=True, null=True)

    class Meta:
        app_label = "probe"


class Extra(models.Model):
    """Fields that make Django insert with VALUES (...) rather than UNNEST."""
    tag = models.ForeignKey(Tag, models.CASCADE)
    num = models.IntegerField()
    tags = ArrayField(models.CharField(max_length=10), default=list)
    served = models.DateTimeField(db_default=Now())
    at = models.DateTimeField(null=True)

    class Meta:
        app_label = "probe"


class Stamped(models.Model):
    label = Stamp(max_length=20)
    note = models.CharField(max_length=40, default="")
    num = models.IntegerField()

    class Meta:
        app_label = "probe"


class Row(models.Model):
    """Stock fields only: every column can be prepared ahead (the whole-column statement)."""
    tag = models.ForeignKey(Tag, models.CASCADE, null=True)
    num = models.IntegerField()
    big = models.BigIntegerField()
    flag = models.BooleanField()
    name = models.CharField(max_length=50)
    ratio = models.FloatField()
    price = models.DecimalField(max_digits=9, decimal_places=2)
    day = models.DateField()
    at = models.DateTimeField()
    ref = models.UUIDField()
    data = models.JSONField()
    code = models.CharField(max_length=20, unique=True)

    class Meta:
        app_label = "probe"


MODELS = (Tag, Item, Extra, Stamped, Row)
T0 = datetime.datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def base_items(n=5, **over):
    out = []
    for i in range(n):
        kw = dict(num=i, big=2**40 + i, pos=i, flag=i % 2 == 0, name=f"n{i}", email=f"e{i}@x.org", text="t" * i,
                  ratio=i / 3, price=decimal.Decimal(f"{i}.25"), day=datetime.date(2020, 1, 1 + i),
                  at=T0 + datetime.timedelta(hours=i), ref=uuid.UUID(int=i + 1), data={"i": i, "l": [i, None]},
                  shout=f"s{i}", code=f"c{i}")
        kw.update({k: (v(i) if callable(v) else v) for k, v in over.items()})
        out.append(Item(**kw))
    return out


def rows(alias, n=5, **over):
    tag = Tag.objects.using(alias).get(name="t1")
    out = []
    for i in range(n):
        kw = dict(tag=tag, num=i, big=2**40 + i, flag=i % 2 == 0, name=f"n{i}", ratio=i / 3,
                  price=decimal.Decimal(f"{i}.255"), day=datetime.date(2020, 1, 1) + datetime.timedelta(days=i), at=T0 + datetime.timedelta(hours=i),
                  ref=uuid.UUID(int=i + 1), data=[{"i": i}, [i, None]][i % 2], code=f"r{i}")
        kw.update({k: (v(i) if callable(v) else v) for k, v in over.items()})
        out.append(Row(**kw))
    return out


# name -> (model, objects factory(alias), bulk_create kwargs)
CASES = {
    "plain": (Item, lambda a: base_items(), {}),
    "one_object": (Item, lambda a: base_items(1), {}),
    "nulls": (Item, lambda a: base_items(big=None, ratio=None, price=None, day=None, at=None, data=None), {}),
    "fk": (Item, lambda a: base_items(tag=lambda i: Tag.objects.using(a).get(name="t1") if i % 2 else None), {}),
    "int_from_str": (Item, lambda a: base_items(num=lambda i: str(i)), {}),
    "int_subclass_bool": (Item, lambda a: base_items(num=lambda i: bool(i % 2)), {}),
    "decimal_from_float": (Item, lambda a: base_items(price=lambda i: i * 1.1), {}),
    "decimal_nan": (Item, lambda a: base_items(price=lambda i: decimal.Decimal("NaN") if i == 3 else decimal.Decimal(i)),
                    {}),
    "naive_datetime": (Item, lambda a: base_items(at=lambda i: datetime.datetime(2024, 1, 1, i)), {}),
    "datetime_for_date": (Item, lambda a: base_items(day=lambda i: T0), {}),
    "uuid_from_str": (Item, lambda a: base_items(ref=lambda i: f"{i + 1:032x}"), {}),
    "json_scalars": (Item, lambda a: base_items(data=lambda i: [None, "s", 1, 1.5, True, {"x": [1]}][i % 6]), {}),
    "json_null_value": (Item, lambda a: base_items(data=lambda i: Value(None, models.JSONField())), {}),
    "expressions": (Item, lambda a: base_items(name=lambda i: Lower(Value(f"N{i}")), num=lambda i: Value(i * 10)), {}),
    "f_expression": (Item, lambda a: base_items(num=lambda i: F("pos")), {}),
    "bad_int": (Item, lambda a: base_items(num=lambda i: "x" if i == 2 else i), {}),
    "str_for_float": (Item, lambda a: base_items(ratio=lambda i: "1.5"), {}),
    "float_inf": (Item, lambda a: base_items(ratio=lambda i: float("inf")), {}),
    "custom_pre_save": (Stamped, lambda a: [Stamped(label=f"l{i}", num=i) for i in range(4)], {}),
    "array_db_default": (Extra, lambda a: [Extra(tag=Tag.objects.using(a).get(name="t2"), num=i, tags=["x", str(i)],
                                                 at=T0) for i in range(4)], {}),
    "explicit_pk": (Item, lambda a: base_items(id=lambda i: 1000 + i), {}),
    "mixed_pk": (Item, lambda a: base_items(id=lambda i: 2000 + i if i % 2 else None), {}),
    "ignore_conflicts": (Item, lambda a: base_items(code=lambda i: "base1" if i < 3 else f"d{i}"), {"ignore_conflicts": True}),
    "update_conflicts": (Item, lambda a: base_items(code=lambda i: "base1" if i < 1 else f"u{i}"),
                         {"update_conflicts": True, "update_fields": ["num", "name"], "unique_fields": ["code"]}),
    "batch_size": (Item, lambda a: base_items(7), {"batch_size": 3}),
    "whole": (Row, rows, {}),
    "whole_two": (Row, lambda a: rows(a, 2), {}),
    "whole_batches": (Row, lambda a: rows(a, 8), {"batch_size": 3}),
    "whole_explicit_pk": (Row, lambda a: rows(a, id=lambda i: 3000 + i), {}),
    "whole_ignore_conflicts": (Row, lambda a: rows(a, 6, code=lambda i: "r0" if i % 2 else f"w{i}"),
                               {"ignore_conflicts": True}),
    "whole_update_conflicts": (Row, lambda a: rows(a, 4, code=lambda i: f"w{i % 2}"),
                               {"update_conflicts": True, "update_fields": ["num", "data"], "unique_fields": ["code"]}),
    # More than 65,535 values: stock's default sends one statement each (Django 6.1 would
    # split them under a server-side-binding parameter cap).
    "whole_6k": (Row, lambda a: rows(a, 6000), {}),
    "values_over_65535": (Extra, lambda a: [Extra(tag=Tag.objects.using(a).get(name="t2"), num=i, tags=[str(i)], at=T0)
                                            for i in range(17000)], {}),
    "unsaved_related": (Item, lambda a: base_items(tag=lambda i: Tag(name="unsaved")), {}),
}


def canon(v):
    """Comparable rendering of a value and its type."""
    if isinstance(v, models.Model):
        return f"<{type(v).__name__}:{v.pk}>"
    if hasattr(v, "obj") and type(v).__name__ in ("Jsonb", "Json"):
        return [type(v).__name__, canon(v.obj)]
    if isinstance(v, (list, tuple)):
        return [type(v).__name__, [canon(x) for x in v]]
    if isinstance(v, dict):
        return {str(k): canon(x) for k, x in v.items()}
    return f"{type(v).__module__}.{type(v).__qualname__}:{v!r}"


def instance_state(obj, model, alias):
    out = {"adding": obj._state.adding, "db": "<alias>" if obj._state.db == alias else obj._state.db}
    for f in model._meta.concrete_fields:
        if f.name == "served":  # db_default: the server's clock
            v = getattr(obj, f.attname)
            out[f.name] = type(v).__name__  # times and random defaults: the type only
            continue
        out[f.name] = canon(getattr(obj, f.attname))
    return out


def stored_rows(model, alias):
    fields = [f.attname for f in model._meta.concrete_fields if f.name != "served"]
    return [canon(list(r)) for r in model.objects.using(alias).order_by("pk").values_list(*fields)]


def run_case(alias, name, model, factory, kwargs):
    """Runs one case in a transaction that is rolled back; returns what must match."""
    signals = []
    receivers = [lambda sender, **kw: signals.append(("pre_save", sender.__name__)),
                 lambda sender, **kw: signals.append(("post_save", sender.__name__))]
    pre_save.connect(receivers[0], weak=False)
    post_save.connect(receivers[1], weak=False)
    sent = []

    def capture(execute, sql, params, many, context):
        if not sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
            sent.append({"sql": sql, "params": canon(params)})
        return execute(sql, params, many, context)

    result = {}
    try:
        with transaction.atomic(using=alias), mock.patch("django.utils.timezone.now", lambda: T0):
            # Every alias starts its sequences at the same place, so pks can be compared.
            with connections[alias].cursor() as c:
                for m in MODELS:
                    c.execute(f"SELECT setval(pg_get_serial_sequence('{m._meta.db_table}', 'id'), 500)")
            Tag.objects.using(alias).bulk_create([Tag(name="t1"), Tag(name="t2")])
            Item.objects.using(alias).bulk_create(base_items(2, code=lambda i: f"base{i}", num=lambda i: 100 + i))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                objs = factory_objs = factory(alias)
                with (connections[alias].execute_wrapper(capture), served_columns(model) as served,
                      whole_columns() as whole):
                    try:
                        with transaction.atomic(using=alias):
                            returned = model.objects.using(alias).bulk_create(objs, **kwargs)
                        result["returned"] = [instance_state(o, model, alias) for o in returned]
                        result["instances"] = [instance_state(o, model, alias) for o in factory_objs]
                    except Exception as e:  # the same exception, same message
                        result["error"] = f"{type(e).__module__}.{type(e).__qualname__}: {e}"
            if alias == "default":
                result["fast_columns"] = served
                result["whole_columns"] = bool(whole)
            result["warnings"] = sorted(f"{w.category.__name__}: {w.message}" for w in caught)
            result["rows"] = stored_rows(model, alias)
            raise _Rollback
    except _Rollback:
        pass
    finally:
        pre_save.disconnect(receivers[0])
        post_save.disconnect(receivers[1])
    result["signals"] = signals
    result["sent"] = sent
    return result


class _Rollback(Exception):
    pass


@contextlib.contextmanager
def served_columns(model):
    """Field names whose values the faster path served during the bulk_create inside (proves it
    is taken in a real insert, not only planned)."""
    taken = set()
    real = rust_compiler.SQLInsertCompiler._served_pre_save_val

    def spy(self, field, obj):
        if self._rustpg_columns and id(field) in self._rustpg_columns:
            taken.add(field.name)
        return real(self, field, obj)

    names = []
    with mock.patch.object(rust_compiler.SQLInsertCompiler, "_served_pre_save_val", spy):
        yield names
    names.extend(f.name for f in model._meta.concrete_fields if f.name in taken)


@contextlib.contextmanager
def whole_columns():
    """Whether the statement sent was Django's two-row statement with the whole columns
    (SQLInsertCompiler._unnest_sql) rather than Django's loop over every object."""
    taken = []
    real = rust_compiler.SQLInsertCompiler._unnest_sql

    def spy(self, columns):
        statements = real(self, columns)
        taken.append(statements is not None)
        return statements

    with mock.patch.object(rust_compiler.SQLInsertCompiler, "_unnest_sql", spy):
        yield taken
    taken[:] = [t for t in taken if t]


def main():
    with connections["stock"].schema_editor() as editor:
        for m in MODELS:
            editor.execute(f'DROP TABLE IF EXISTS "{m._meta.db_table}" CASCADE')
        for m in MODELS:
            editor.create_model(m)
    differences, fast, outcomes = [], {}, {}
    for name, (model, factory, kwargs) in CASES.items():
        stock = run_case("stock", name, model, factory, kwargs)
        ours = run_case("default", name, model, factory, kwargs)
        fast[name] = ours.pop("fast_columns", None)
        outcomes[name] = {"whole_columns": ours.pop("whole_columns", None), "error": ours.get("error"), "warnings": len(ours["warnings"]), "rows": len(ours["rows"]),
                          "statements": len(ours["sent"])}
        for key in sorted(set(stock) | set(ours)):
            if stock.get(key) != ours.get(key):
                differences.append({"case": name, "what": key, "stock": stock.get(key), "django_rustpg": ours.get(key)})
    print(json.dumps({"cases": len(CASES), "differences": differences, "fast_columns": fast, "outcomes": outcomes},
                     default=str))


if __name__ == "__main__":
    main()
