"""Fixture models for the native-materialization equivalence tests.

Every common field type, nullable FK chains three levels deep, reverse one-to-one,
multi-table and proxy inheritance, generic relations, a composite primary key, and the
shapes that must make the native path step aside (custom ``from_db``, ``post_init``
receivers, descriptors with ``__set__``, ...).
"""
import datetime
import decimal
import json
import uuid

from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.fields import (
    ArrayField,
    BigIntegerRangeField,
    DateRangeField,
    DateTimeRangeField,
    DecimalRangeField,
    HStoreField,
    IntegerRangeField,
)
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F
from django.db.models.signals import post_init


# --------------------------------------------------------------------------- custom types
class Money:
    """What MoneyField.from_db_value returns: a plain object compared by its __dict__."""

    def __init__(self, amount, currency):
        self.amount = amount
        self.currency = currency

    def __eq__(self, other):
        return isinstance(other, Money) and (self.amount, self.currency) == (other.amount, other.currency)

    def __hash__(self):
        return hash((self.amount, self.currency))

    def __repr__(self):
        return f"Money({self.amount!r}, {self.currency!r})"


class MoneyField(models.CharField):
    """Stored as "12.50 EUR"; loaded as Money via from_db_value."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 40)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        amount, currency = value.split(" ")
        return Money(decimal.Decimal(amount), currency)

    def to_python(self, value):
        if isinstance(value, Money) or value is None:
            return value
        return self.from_db_value(value, None, None)

    def get_prep_value(self, value):
        if isinstance(value, Money):
            return f"{value.amount} {value.currency}"
        return value


class BoomField(models.CharField):
    """from_db_value raises on the value "boom" (error mid-iteration)."""

    def from_db_value(self, value, expression, connection):
        if value == "boom":
            raise ValueError("boom in from_db_value")
        return value


class UpperDescriptor:
    """A data descriptor: __set__ changes the value, so instances must go through setattr."""

    def __init__(self, field):
        self.field = field

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        return instance.__dict__[self.field.attname]

    def __set__(self, instance, value):
        instance.__dict__[self.field.attname] = value.upper() if isinstance(value, str) else value


class UpperCharField(models.CharField):
    descriptor_class = UpperDescriptor


class TaggedDecoder(json.JSONDecoder):
    """Turns {"__decimal__": "1.5"} into Decimal and {"__date__": ...} into date."""

    def __init__(self, *args, **kwargs):
        kwargs["object_hook"] = self._hook
        super().__init__(*args, **kwargs)

    @staticmethod
    def _hook(obj):
        if set(obj) == {"__decimal__"}:
            return decimal.Decimal(obj["__decimal__"])
        if set(obj) == {"__date__"}:
            return datetime.date.fromisoformat(obj["__date__"])
        return obj


class TaggedEncoder(DjangoJSONEncoder):
    def default(self, o):
        if isinstance(o, decimal.Decimal):
            return {"__decimal__": str(o)}
        if isinstance(o, datetime.date) and not isinstance(o, datetime.datetime):
            return {"__date__": o.isoformat()}
        return super().default(o)


# --------------------------------------------------------------------------- relations
class Country(models.Model):
    code = models.CharField(max_length=2, primary_key=True)
    name = models.CharField(max_length=50, db_column="country_name")

    class Meta:
        ordering = ["code"]


class Publisher(models.Model):
    name = models.CharField(max_length=50)
    country = models.ForeignKey(Country, models.SET_NULL, null=True, related_name="publishers")
    founded = models.DateField(null=True)

    class Meta:
        ordering = ["id"]


class Author(models.Model):
    name = models.CharField(max_length=50)
    publisher = models.ForeignKey(Publisher, models.SET_NULL, null=True, related_name="authors")
    mentor = models.ForeignKey("self", models.SET_NULL, null=True, related_name="mentees")
    born = models.DateField(null=True)
    rating = models.DecimalField(max_digits=5, decimal_places=2, null=True)
    uid = models.UUIDField(default=uuid.uuid4)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.name


class ProxyAuthor(Author):
    class Meta:
        proxy = True

    def shout(self):
        return self.name.upper()


class AuthorProfile(models.Model):
    author = models.OneToOneField(Author, models.CASCADE, related_name="profile")
    bio = models.TextField()
    homepage = models.URLField(blank=True)

    class Meta:
        ordering = ["id"]


class Tag(models.Model):
    name = models.SlugField(unique=True)

    class Meta:
        ordering = ["id"]


class TaggedItem(models.Model):
    label = models.CharField(max_length=30)
    content_type = models.ForeignKey(ContentType, models.CASCADE)
    object_id = models.PositiveIntegerField()
    content_object = GenericForeignKey("content_type", "object_id")

    class Meta:
        ordering = ["id"]


class Book(models.Model):
    title = models.CharField(max_length=100)
    author = models.ForeignKey(Author, models.SET_NULL, null=True, related_name="books")
    editor = models.ForeignKey(Author, models.SET_NULL, null=True, related_name="edited")
    tags = models.ManyToManyField(Tag, related_name="books")
    price = models.DecimalField(max_digits=8, decimal_places=2)
    pages = models.IntegerField(null=True)
    double_pages = models.GeneratedField(
        expression=F("pages") * 2, output_field=models.IntegerField(), db_persist=True
    )
    published = models.DateField(null=True)
    created = models.DateTimeField()
    isbn = models.UUIDField(default=uuid.uuid4)
    metadata = models.JSONField(null=True)
    in_print = models.BooleanField(default=True)
    notes = GenericRelation(TaggedItem)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.title


class ProxyBook(Book):
    class Meta:
        proxy = True


class Review(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    book = models.ForeignKey(Book, models.CASCADE, related_name="reviews")
    stars = models.SmallIntegerField()
    body = models.TextField(blank=True)
    posted = models.DateTimeField()

    class Meta:
        ordering = ["posted", "id"]


class OrderLine(models.Model):
    """Composite primary key (Django 5.2)."""

    pk = models.CompositePrimaryKey("book_id", "line_no")
    book = models.ForeignKey(Book, models.CASCADE)
    line_no = models.IntegerField()
    qty = models.IntegerField()

    class Meta:
        ordering = ["book_id", "line_no"]


# --------------------------------------------------------------------------- every field type
class AllTypes(models.Model):
    label = models.CharField(max_length=30)
    big = models.BigIntegerField(null=True)
    small = models.SmallIntegerField(null=True)
    pos = models.PositiveIntegerField(null=True)
    flag = models.BooleanField(null=True)
    text = models.TextField(null=True)
    email = models.EmailField(null=True)
    slug = models.SlugField(null=True)
    fl = models.FloatField(null=True)
    dec = models.DecimalField(max_digits=14, decimal_places=4, null=True)
    dec0 = models.DecimalField(max_digits=10, decimal_places=0, null=True)
    day = models.DateField(null=True)
    moment = models.DateTimeField(null=True)
    clock = models.TimeField(null=True)
    span = models.DurationField(null=True)
    uid = models.UUIDField(null=True)
    data = models.JSONField(null=True)
    tagged = models.JSONField(null=True, encoder=TaggedEncoder, decoder=TaggedDecoder)
    ints = ArrayField(models.IntegerField(), null=True)
    texts = ArrayField(models.CharField(max_length=20), null=True)
    grid = ArrayField(ArrayField(models.IntegerField()), null=True)
    decs = ArrayField(models.DecimalField(max_digits=8, decimal_places=3), null=True)
    moments = ArrayField(models.DateTimeField(null=True), null=True)
    uids = ArrayField(models.UUIDField(), null=True)
    jsons = ArrayField(models.JSONField(), null=True)
    store = HStoreField(null=True)
    irange = IntegerRangeField(null=True)
    brange = BigIntegerRangeField(null=True)
    drange = DecimalRangeField(null=True)
    dayrange = DateRangeField(null=True)
    momentrange = DateTimeRangeField(null=True)
    blob = models.BinaryField(null=True)
    ip = models.GenericIPAddressField(null=True)
    ip4 = models.GenericIPAddressField(protocol="IPv4", null=True)
    attachment = models.FileField(null=True, blank=True, upload_to="x")
    money = MoneyField(null=True)

    class Meta:
        ordering = ["id"]


class Event(models.Model):
    """For the naive-datetime (USE_TZ=False) tests."""

    name = models.CharField(max_length=30)
    starts = models.DateTimeField()
    ends = models.DateTimeField(null=True)
    day = models.DateField()
    clock = models.TimeField(null=True)
    span = DateTimeRangeField(null=True)
    moments = ArrayField(models.DateTimeField(), null=True)

    class Meta:
        ordering = ["id"]


# --------------------------------------------------------------------------- inheritance
class Place(models.Model):
    name = models.CharField(max_length=50)
    address = models.CharField(max_length=80, blank=True)

    class Meta:
        ordering = ["id"]


class Restaurant(Place):
    serves_pizza = models.BooleanField(default=False)
    rating = models.DecimalField(max_digits=3, decimal_places=1, null=True)
    chef = models.ForeignKey(Author, models.SET_NULL, null=True, related_name="kitchens")


class ItalianRestaurant(Restaurant):
    has_oven = models.BooleanField(default=True)
    opened = models.DateTimeField(null=True)


class ProxyRestaurant(Restaurant):
    class Meta:
        proxy = True


# --------------------------------------------------------------------------- opt-outs
class Snapshot(models.Model):
    """Custom from_db (the documented pattern that remembers loaded values)."""

    name = models.CharField(max_length=30)
    value = models.IntegerField()

    class Meta:
        ordering = ["id"]

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_values = dict(zip(field_names, values))
        return instance


class SnapshotKw(models.Model):
    """Custom from_db with Django 6.1's signature (``fetch_mode`` passed through)."""

    name = models.CharField(max_length=30)
    snap = models.ForeignKey(Snapshot, models.SET_NULL, null=True)

    class Meta:
        ordering = ["id"]

    @classmethod
    def from_db(cls, db, field_names, values, **kwargs):
        instance = super().from_db(db, field_names, values, **kwargs)
        instance._loaded_values = dict(zip(field_names, values))
        return instance


class Tracked(models.Model):
    """Has a post_init receiver (connected below, for the whole session)."""

    name = models.CharField(max_length=30)
    count = models.IntegerField(default=0)
    owner = models.ForeignKey(Author, models.SET_NULL, null=True)

    class Meta:
        ordering = ["id"]


def _remember_initial(sender, instance, **kwargs):
    instance._initial = {k: instance.__dict__.get(k) for k in ("name", "count")}


post_init.connect(_remember_initial, sender=Tracked)


class Shouty(models.Model):
    """A field whose descriptor has __set__ (the value is upper-cased on assignment)."""

    name = UpperCharField(max_length=30)

    class Meta:
        ordering = ["id"]


class Photo(models.Model):
    """ImageField with dimension fields: Django connects a post_init receiver itself."""

    title = models.CharField(max_length=30)
    image = models.ImageField(upload_to="p", null=True, blank=True, width_field="w", height_field="h")
    w = models.IntegerField(null=True)
    h = models.IntegerField(null=True)

    class Meta:
        ordering = ["id"]


class Fragile(models.Model):
    name = BoomField(max_length=30)

    class Meta:
        ordering = ["id"]


class Holder(models.Model):
    """Points at models that must not be built natively, and at a proxy."""

    name = models.CharField(max_length=30)
    snap = models.ForeignKey(Snapshot, models.SET_NULL, null=True, db_column="snapshot_ref")
    shouty = models.ForeignKey(Shouty, models.SET_NULL, null=True)
    proxy_author = models.ForeignKey(ProxyAuthor, models.SET_NULL, null=True)
    country = models.ForeignKey(Country, models.SET_NULL, null=True, to_field="code")
    tag = models.ForeignKey(Tag, models.SET_NULL, null=True, to_field="name")
    all_types = models.ForeignKey("AllTypes", models.SET_NULL, null=True)
    review = models.ForeignKey("Review", models.SET_NULL, null=True)

    class Meta:
        ordering = ["id"]


# ---- models whose instances Django builds through code that from_db/__init__ checks miss
class InitMixin:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mixin_initialised = True


class MixinInit(models.Model, InitMixin):
    """Model.__init__ ends with super().__init__(): InitMixin.__init__ runs after it."""

    name = models.CharField(max_length=30)

    class Meta:
        ordering = ["id"]


class SetattrModel(models.Model):
    """Overrides __setattr__ (e.g. change tracking): Model.__init__ assigns through it."""

    name = models.CharField(max_length=30)

    class Meta:
        ordering = ["id"]

    def __setattr__(self, name, value):
        if isinstance(value, str):
            value = value.strip()
        super().__setattr__(name, value)


class NewModel(models.Model):
    """Overrides __new__."""

    name = models.CharField(max_length=30)

    class Meta:
        ordering = ["id"]

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.made_by_new = True
        return obj


class CountingBase(models.base.ModelBase):
    """A metaclass whose __call__ wraps instantiation (instance registries, counters)."""

    def __call__(cls, *args, **kwargs):
        obj = super().__call__(*args, **kwargs)
        obj.built_by_metaclass = True
        return obj


class MetaCallModel(models.Model, metaclass=CountingBase):
    name = models.CharField(max_length=30)

    class Meta:
        ordering = ["id"]


# --------------------------------------------------------------------------- profiling
class ProfileRow(models.Model):
    """10 fields (+ id) for tests/materialize/profile_rows.py."""

    name = models.CharField(max_length=50)
    number = models.IntegerField()
    big = models.BigIntegerField()
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    ratio = models.FloatField()
    flag = models.BooleanField()
    day = models.DateField()
    moment = models.DateTimeField()
    uid = models.UUIDField()
    note = models.TextField(null=True)

    class Meta:
        ordering = ["id"]
