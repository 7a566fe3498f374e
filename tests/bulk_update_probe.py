"""Run by tests/test_bulk_update.py in a process of its own (it configures Django).

bulk_update() through django_rustpg (its UNNEST form) and through the stock backend
(psycopg 3), case by case, on one database, each case in a transaction rolled back: the
row count returned, the rows stored (each row's text form as PostgreSQL prints it), the
number of statements sent, the exception and the warnings must be the same. Prints one JSON
object: {"cases": n, "differences": [...], "outcomes": {case: {unnest, error, warnings,
statements, rowcount}}} (outcomes: django_rustpg's; unnest: whether its UPDATE used UNNEST).

argv: dbname host port user
"""
import datetime
import decimal
import json
import sys
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
from django.db.models.functions import Upper  # noqa: E402

from django_rustpg import bulk_update  # noqa: E402

UTC = datetime.timezone.utc
T0 = datetime.datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


class Shout(models.CharField):
    """A custom field with its own get_prep_value: it must be honoured."""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value.upper() if isinstance(value, str) else value


class Placeholder(models.IntegerField):
    """A field with get_placeholder: only Django's SQL knows it."""

    def get_placeholder(self, value, compiler, connection):
        return "(%s + 0)"


class Tag(models.Model):
    name = models.CharField(max_length=20)

    class Meta:
        app_label = "probe"


class Item(models.Model):
    tag = models.ForeignKey(Tag, models.CASCADE, null=True)
    small = models.SmallIntegerField(default=0)
    num = models.IntegerField(default=0)
    big = models.BigIntegerField(null=True)
    pos = models.PositiveIntegerField(default=0)
    flag = models.BooleanField(default=False)
    maybe = models.BooleanField(null=True)
    name = models.CharField(max_length=8, default="")
    slug = models.SlugField(default="")
    text = models.TextField(default="")
    ratio = models.FloatField(null=True)
    price = models.DecimalField(max_digits=9, decimal_places=2, null=True)
    day = models.DateField(null=True)
    at = models.DateTimeField(null=True)
    clock = models.TimeField(null=True)
    span = models.DurationField(null=True)
    blob = models.BinaryField(null=True)
    ref = models.UUIDField(null=True)
    data = models.JSONField(null=True)
    kind = models.CharField(max_length=1, choices=[("a", "A"), ("b", "B")], default="a")
    shout = Shout(max_length=20, default="")
    odd = Placeholder(default=0)
    tags = ArrayField(models.CharField(max_length=10), default=list)

    class Meta:
        app_label = "probe"


class Keyed(models.Model):
    id = models.UUIDField(primary_key=True)
    num = models.IntegerField()

    class Meta:
        app_label = "probe"


class Parent(models.Model):
    pnum = models.IntegerField(default=0)

    class Meta:
        app_label = "probe"


class Child(Parent):
    cnum = models.IntegerField(default=0)

    class Meta:
        app_label = "probe"


class EvenManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(num__gte=0)


class Filtered(models.Model):
    num = models.IntegerField()
    objects = EvenManager()

    class Meta:
        app_label = "probe"


MODELS = (Tag, Item, Keyed, Parent, Child, Filtered)
N = 40


def seed(alias):
    Tag.objects.using(alias).bulk_create([Tag(id=i, name=f"t{i}") for i in (1, 2, 3)])
    Item.objects.using(alias).bulk_create([Item(id=i + 1, num=i, text=f"x{i}") for i in range(N)])
    Keyed.objects.using(alias).bulk_create([Keyed(id=uuid.UUID(int=i + 1), num=i) for i in range(5)])
    for i in range(5):
        Child.objects.using(alias).create(id=i + 1, pnum=i, cnum=i)
    Filtered.objects.using(alias).bulk_create([Filtered(id=i + 1, num=i) for i in range(5)])


def items(alias):
    return list(Item.objects.using(alias).order_by("id"))


def every_field(objs, i0=0):
    for i, o in enumerate(objs, i0):
        o.tag_id = (i % 3) + 1 if i % 4 else None
        o.small, o.num, o.big, o.pos = -i, i * 7, 2**40 + i if i % 5 else None, i
        o.flag, o.maybe = i % 2 == 0, [True, False, None][i % 3]
        o.name, o.slug, o.text = f"n{i}", f"s-{i}", "é✓ '\"\\ " * (i % 4)
        o.ratio = i / 3 if i % 6 else None
        o.price = decimal.Decimal(f"{i}.{i % 100:02d}") if i % 7 else None
        o.day = datetime.date(2020, 1, 1) + datetime.timedelta(days=i) if i % 8 else None
        o.at = T0 + datetime.timedelta(hours=i, microseconds=i) if i % 9 else None
        o.clock = datetime.time(i % 24, i % 60, 1, i) if i % 5 else None
        o.span = datetime.timedelta(days=i, seconds=i, microseconds=i) if i % 4 else None
        o.blob = bytes(range(i % 256)) if i % 3 else None
        o.ref = uuid.UUID(int=i * 1000 + 1) if i % 2 else None
        o.data = [{"i": i, "l": [i, None, "x"]}, [1, 2], "s", 3, None][i % 5] if i % 11 else None
        o.kind = "b" if i % 2 else "a"
    return objs


ALL = ["tag", "small", "num", "big", "pos", "flag", "maybe", "name", "slug", "text", "ratio", "price", "day", "at",
       "clock", "span", "ref", "data", "kind"]


def set_attr(name, fn):
    def change(objs):
        for i, o in enumerate(objs):
            setattr(o, name, fn(i))
        return objs
    return change


def dup_pks(alias):
    objs = every_field(items(alias))
    twin = Item.objects.using(alias).get(id=3)
    twin.num = 99999
    return objs + [twin]


# name -> (objects factory(alias), fields, bulk_update kwargs)
CASES = {
    "every_field": (lambda a: every_field(items(a)), ALL, {}),
    "one_object": (lambda a: every_field(items(a)[:1]), ALL, {}),
    "one_field": (lambda a: every_field(items(a)), ["num"], {}),
    "batches": (lambda a: every_field(items(a)), ALL, {"batch_size": 7}),
    "subset_of_rows": (lambda a: every_field(items(a)[5:15]), ["num", "text", "data"], {}),
    "all_null": (lambda a: set_attr("price", lambda i: None)(items(a)), ["price", "big"], {}),
    "fk_objects": (lambda a: set_attr("tag", lambda i: Tag.objects.using(a).get(id=2))(items(a)), ["tag"], {}),
    "fk_empty_string": (lambda a: set_attr("tag_id", lambda i: "" if i % 2 else 1)(items(a)), ["tag"], {}),
    "truncated_varchar": (lambda a: set_attr("name", lambda i: "y" * (i % 12))(items(a)), ["name"], {}),
    "decimal_rounding": (lambda a: set_attr("price", lambda i: decimal.Decimal("1.005") * i)(items(a)), ["price"], {}),
    "decimal_overflow": (lambda a: set_attr("price", lambda i: decimal.Decimal("1e12") if i == 3 else None)(items(a)),
                         ["price"], {}),
    "decimal_nan": (lambda a: set_attr("price", lambda i: decimal.Decimal("NaN") if i == 2 else None)(items(a)),
                    ["price"], {}),
    "decimal_from_float": (lambda a: set_attr("price", lambda i: i * 1.1)(items(a)), ["price"], {}),
    "int_from_str": (lambda a: set_attr("num", lambda i: str(i))(items(a)), ["num"], {}),
    "bad_int": (lambda a: set_attr("num", lambda i: "x" if i == 5 else i)(items(a)), ["num"], {}),
    "int_overflow": (lambda a: set_attr("small", lambda i: 40000 if i == 5 else i)(items(a)), ["small"], {}),
    "bool_for_int": (lambda a: set_attr("num", lambda i: bool(i % 2))(items(a)), ["num"], {}),
    "naive_datetime": (lambda a: set_attr("at", lambda i: datetime.datetime(2021, 1, 1, i % 24))(items(a)),
                       ["at"], {}),
    "date_from_datetime": (lambda a: set_attr("day", lambda i: T0 + datetime.timedelta(days=i))(items(a)),
                           ["day"], {}),
    "uuid_from_str": (lambda a: set_attr("ref", lambda i: str(uuid.UUID(int=i)))(items(a)), ["ref"], {}),
    "json_scalars": (lambda a: set_attr("data", lambda i: [i, "s", True, None, 1.5][i % 5])(items(a)), ["data"], {}),
    "json_value_none": (lambda a: set_attr("data", lambda i: Value(None, models.JSONField()) if i % 2 else {})(items(a)),
                        ["data"], {}),
    "custom_prep": (lambda a: set_attr("shout", lambda i: f"hi{i}")(items(a)), ["shout"], {}),
    "binary_field": (lambda a: every_field(items(a)), ["blob", "num"], {}),  # BinaryField has get_placeholder
    "placeholder_field": (lambda a: set_attr("odd", lambda i: i)(items(a)), ["odd", "num"], {}),
    "array_field": (lambda a: set_attr("tags", lambda i: [f"a{i}", "b"])(items(a)), ["tags"], {}),
    "f_expression": (lambda a: set_attr("num", lambda i: F("num") + 1)(items(a)), ["num"], {}),
    "function_value": (lambda a: set_attr("text", lambda i: Upper(Value(f"u{i}")))(items(a)), ["text", "num"], {}),
    "duplicate_pks": (dup_pks, ["num", "text"], {}),
    "missing_row": (lambda a: every_field(items(a) + [Item(id=10_000)]), ["num"], {}),
    "uuid_pk": (lambda a: set_attr("num", lambda i: i * 3)(list(Keyed.objects.using(a).order_by("id"))), ["num"], {}),
    "mti_child_fields": (lambda a: set_attr("cnum", lambda i: i * 3)(list(Child.objects.using(a).order_by("id"))),
                         ["cnum"], {}),
    "mti_parent_fields": (lambda a: set_attr("pnum", lambda i: i * 3)(list(Child.objects.using(a).order_by("id"))),
                          ["pnum", "cnum"], {}),
    "unverified_django": (lambda a: every_field(items(a)), ALL, {"unverified": True}),
    "ordered_queryset": (lambda a: every_field(items(a)), ["num"], {"order_by": "-id"}),
    "manager_filter": (lambda a: set_attr("num", lambda i: -i)(list(Filtered.objects.using(a).order_by("id"))),
                       ["num"], {}),
}
# The cases whose UPDATE uses UNNEST (test_bulk_update.py checks it): where it is exact. The
# others: values that raise before any statement (decimal_nan, bad_int), or Django's SQL.
FAST = {"every_field", "one_object", "one_field", "batches", "subset_of_rows", "all_null", "fk_objects",
        "fk_empty_string", "truncated_varchar", "decimal_rounding", "decimal_overflow",
        "decimal_from_float", "int_from_str", "int_overflow", "bool_for_int", "naive_datetime",
        "date_from_datetime", "uuid_from_str", "json_scalars", "custom_prep", "missing_row", "uuid_pk"}

# A value the driver refuses with its own message (psycopg's differs), whichever SQL Django
# or this path sends: the exception class is compared, not the text.
DRIVER_MESSAGE = {"int_overflow"}


def stored(alias):
    out = {}
    with connections[alias].cursor() as c:
        for m in MODELS:
            t = m._meta.db_table
            c.execute(f'SELECT t::text FROM "{t}" t ORDER BY 1')
            out[t] = [r[0] for r in c.fetchall()]
    return out


class _Rollback(Exception):
    pass


def run_case(alias, name, factory, fields, kwargs):
    sent = []

    def capture(execute, sql, params, many, context):
        if not sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
            sent.append(sql)
        return execute(sql, params, many, context)

    result = {}
    try:
        with transaction.atomic(using=alias):
            seed(alias)
            objs = factory(alias)
            model = type(objs[0])
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with connections[alias].execute_wrapper(capture):
                    try:
                        qs = model.objects.using(alias)
                        kw = dict(kwargs)
                        if "order_by" in kw:
                            qs = qs.order_by(kw.pop("order_by"))
                        # Another Django (its code's digest not the one read): Django's own SQL.
                        gate = {} if kw.pop("unverified", False) else bulk_update.VERIFIED_DJANGO
                        with transaction.atomic(using=alias), mock.patch.object(bulk_update, "VERIFIED_DJANGO", gate):
                            result["rowcount"] = qs.bulk_update(objs, fields, **kw)
                    except Exception as e:
                        result["error"] = f"{type(e).__module__}.{type(e).__qualname__}: {e}"
                        if name in DRIVER_MESSAGE:
                            result["error"] = result["error"].split(":")[0]
            result["warnings"] = sorted(f"{w.category.__name__}: {w.message}" for w in caught)
            result["stored"] = stored(alias)
            raise _Rollback
    except _Rollback:
        pass
    result["statements"] = len(sent)
    result["unnest"] = any(s.startswith("UPDATE") and "UNNEST(" in s for s in sent)
    return result


def main():
    with connections["stock"].schema_editor() as editor:
        for m in MODELS:
            editor.execute(f'DROP TABLE IF EXISTS "{m._meta.db_table}" CASCADE')
        for m in MODELS:
            editor.create_model(m)
    differences, outcomes = [], {}
    for name, (factory, fields, kwargs) in CASES.items():
        stock = run_case("stock", name, factory, fields, kwargs)
        ours = run_case("default", name, factory, fields, kwargs)
        outcomes[name] = {"unnest": ours.pop("unnest"), "stock_unnest": stock.pop("unnest"), "error": ours.get("error"), "warnings": len(ours["warnings"]),
                          "statements": ours["statements"], "rowcount": ours.get("rowcount")}
        for key in sorted(set(stock) | set(ours)):
            if stock.get(key) != ours.get(key):
                differences.append({"case": name, "what": key, "stock": stock.get(key), "django_rustpg": ours.get(key)})
    from django.db.models import QuerySet
    from django_rustpg import bulk_update as rustpg_bulk_update

    print(json.dumps({"cases": len(CASES), "fast": sorted(FAST), "differences": differences, "outcomes": outcomes,
                      "django": django.get_version(), "verified": rustpg_bulk_update.verified_django(),
                      "digest": rustpg_bulk_update.update_code_digest(),
                      "update_alters_data": getattr(QuerySet.update, "alters_data", None)}, default=str))


if __name__ == "__main__":
    main()
