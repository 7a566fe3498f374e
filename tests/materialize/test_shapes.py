"""Queryset shapes, each evaluated natively (alias ``default``) and by Django's path (alias
``plain``, and alias ``default`` with the original ``__iter__``), compared strictly
(mat_compare): same classes, ``__dict__`` keys/values/types, ``_state`` and
``fields_cache``, deferred fields; values()/values_list() rows with types.

Each case also states which Plan kinds the native run must create, so a case cannot pass
by silently taking Django's path.
"""
import datetime
import decimal
import uuid
import zoneinfo

import pytest
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.aggregates import ArrayAgg, BitOr, BoolAnd, JSONBAgg, StringAgg
from django.db.models import (
    Avg,
    Case,
    CharField,
    Count,
    DateField,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    JSONField,
    Max,
    Min,
    OuterRef,
    Prefetch,
    Q,
    StdDev,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import (
    Abs,
    Cast,
    Coalesce,
    Concat,
    ExtractWeekDay,
    ExtractYear,
    Greatest,
    Length,
    Power,
    Round,
    TruncDate,
    TruncDay,
    TruncMonth,
    TruncTime,
    Upper,
)

from mat_app import models as m
from mat_helpers import compare

D = decimal.Decimal
UTC = datetime.timezone.utc
MODELS, DICTS, TUPLES, FLAT, NONE = {"models"}, {"dicts"}, {"tuples"}, {"flat"}, set()


def B(alias):
    return m.Book.objects.using(alias)


def A(alias):
    return m.Author.objects.using(alias)


def latest_book(field):
    return Subquery(m.Book.objects.filter(author=OuterRef("pk")).order_by("-created", "-id").values(field)[:1])


CASES = [
    # ---- plain models, every field type
    ("all_types", lambda a: m.AllTypes.objects.using(a), MODELS),
    ("all_types_values", lambda a: m.AllTypes.objects.using(a).values(), DICTS),
    ("all_types_values_list", lambda a: m.AllTypes.objects.using(a).values_list(), TUPLES),
    ("books", B, MODELS),
    ("authors", A, MODELS),
    ("countries_char_pk", lambda a: m.Country.objects.using(a), MODELS),
    ("reviews_uuid_pk", lambda a: m.Review.objects.using(a), MODELS),
    ("order_lines_composite_pk", lambda a: m.OrderLine.objects.using(a), MODELS),
    ("m2m_through_model", lambda a: m.Book.tags.through.objects.using(a).order_by("id"), MODELS),
    ("content_types", lambda a: ContentType.objects.using(a).order_by("id"), MODELS),
    ("events", lambda a: m.Event.objects.using(a), MODELS),
    # ---- inheritance
    ("proxy_book", lambda a: m.ProxyBook.objects.using(a), MODELS),
    ("proxy_author_select_related", lambda a: m.ProxyAuthor.objects.using(a).select_related("publisher"), MODELS),
    ("mti_parent", lambda a: m.Place.objects.using(a), MODELS),
    ("mti_child", lambda a: m.Restaurant.objects.using(a), MODELS),
    ("mti_grandchild", lambda a: m.ItalianRestaurant.objects.using(a), MODELS),
    ("mti_proxy", lambda a: m.ProxyRestaurant.objects.using(a), MODELS),
    ("mti_down_select_related", lambda a: m.Place.objects.using(a).select_related("restaurant__italianrestaurant"), MODELS),
    ("mti_down_only", lambda a: m.Place.objects.using(a).select_related("restaurant").only("name", "restaurant__rating"), MODELS),
    ("mti_child_chef_chain", lambda a: m.Restaurant.objects.using(a).select_related("chef__publisher__country"), MODELS),
    ("mti_grandchild_chef", lambda a: m.ItalianRestaurant.objects.using(a).select_related("chef"), MODELS),
    ("mti_child_only_parent_field", lambda a: m.Restaurant.objects.using(a).only("name"), MODELS),
    ("mti_grandchild_defer", lambda a: m.ItalianRestaurant.objects.using(a).defer("name", "opened"), MODELS),
    ("mti_values", lambda a: m.ItalianRestaurant.objects.using(a).values(), DICTS),
    # ---- deferred fields
    ("only_title", lambda a: B(a).only("title"), MODELS),
    ("defer_two", lambda a: B(a).defer("metadata", "created"), MODELS),
    ("only_with_related", lambda a: B(a).select_related("author").only("title", "author__name"), MODELS),
    ("defer_related_field", lambda a: B(a).select_related("author__publisher").defer("author__rating", "author__publisher__founded"), MODELS),
    ("only_pk", lambda a: B(a).only("pk"), MODELS),
    ("all_types_only", lambda a: m.AllTypes.objects.using(a).only("label", "store", "momentrange", "money"), MODELS),
    # ---- select_related with nullable joins
    ("sr_author", lambda a: B(a).select_related("author"), MODELS),
    ("sr_two_levels", lambda a: B(a).select_related("author__publisher"), MODELS),
    ("sr_three_levels", lambda a: B(a).select_related("author__publisher__country"), MODELS),
    ("sr_two_chains", lambda a: B(a).select_related("author__publisher__country", "editor__mentor__publisher"), MODELS),
    ("sr_self_fk_chain", lambda a: B(a).select_related("author__mentor__mentor"), MODELS),
    ("sr_reverse_o2o", lambda a: A(a).select_related("profile"), MODELS),
    ("sr_reverse_o2o_and_fk", lambda a: A(a).select_related("profile", "publisher__country", "mentor__profile"), MODELS),
    ("sr_o2o_forward", lambda a: m.AuthorProfile.objects.using(a).select_related("author__publisher"), MODELS),
    ("sr_all_non_null", lambda a: m.Review.objects.using(a).select_related(), MODELS),
    ("sr_review_chain", lambda a: m.Review.objects.using(a).select_related("book__author__publisher__country"), MODELS),
    ("sr_generic_ct", lambda a: m.TaggedItem.objects.using(a).select_related("content_type"), MODELS),
    ("sr_composite_fk", lambda a: m.OrderLine.objects.using(a).select_related("book__author"), MODELS),
    ("sr_tracked_owner", lambda a: m.Tracked.objects.using(a).select_related("owner"), NONE),
    ("sr_to_custom_from_db", lambda a: m.Holder.objects.using(a).select_related("snap"), TUPLES),
    ("sr_to_descriptor_with_set", lambda a: m.Holder.objects.using(a).select_related("shouty"), TUPLES),
    ("sr_to_proxy_to_field", lambda a: m.Holder.objects.using(a).select_related("proxy_author__publisher", "country", "tag"), MODELS),
    ("sr_converters_in_related", lambda a: m.Holder.objects.using(a).select_related("all_types", "review__book", "country"), MODELS),
    ("sr_converters_related_only", lambda a: m.Holder.objects.using(a).select_related("all_types").only("name", "all_types__money", "all_types__tagged", "all_types__store"), MODELS),
    ("values_converters_in_related", lambda a: m.Holder.objects.using(a).values("name", "all_types__money", "all_types__tagged", "review__posted", "country__name"), DICTS),
    ("holder_plain", lambda a: m.Holder.objects.using(a), MODELS),
    ("known_related_to_field", lambda a: m.Tag.objects.using(a).get(name="tag-1").holder_set.all(), MODELS),
    ("known_related_proxy", lambda a: m.ProxyAuthor.objects.using(a).get(name="Ann").holder_set.all(), MODELS),
    (
        "filtered_relation",
        lambda a: B(a).annotate(
            gallimard=FilteredRelation("author__publisher", condition=Q(author__publisher__name="Gallimard"))
        ).select_related("gallimard"),
        MODELS,
    ),
    # ---- annotations
    ("count", lambda a: A(a).annotate(n=Count("books"), n_distinct_tags=Count("books__tags", distinct=True)), MODELS),
    (
        "aggregate_annotations",
        lambda a: A(a).annotate(
            avg_pages=Avg("books__pages"), avg_price=Avg("books__price"), total=Sum("books__price"),
            max_created=Max("books__created"), min_published=Min("books__published"), sd=StdDev("books__pages"),
            sum_float=Sum("books__pages", output_field=FloatField()),
            avg_dec=Avg("books__pages", output_field=DecimalField(max_digits=10, decimal_places=2)),
        ),
        MODELS,
    ),
    (
        "f_expressions",
        lambda a: B(a).annotate(
            pp=F("pages") + 1, price_x2=F("price") * 2, author_name=F("author__name"),
            ratio=ExpressionWrapper(F("price") / F("pages"), output_field=FloatField()),
            publisher_founded=F("author__publisher__founded"),
        ),
        MODELS,
    ),
    (
        "values_annotations",
        lambda a: B(a).annotate(
            v_int=Value(1), v_float=Value(1.5), v_dec=Value(D("2.50")), v_str=Value("s"),
            v_none=Value(None, output_field=IntegerField()), v_date=Value(datetime.date(2020, 2, 2)),
            v_dt=Value(datetime.datetime(2020, 2, 2, 3, 4, 5, tzinfo=UTC)), v_uuid=Value(uuid.UUID(int=5)),
            v_bool=Value(True), v_json=Value({"a": [1, 2.5]}, output_field=JSONField()),
        ),
        MODELS,
    ),
    (
        "case_when",
        lambda a: B(a).annotate(
            size=Case(
                When(pages__gt=200, then=Value("long")), When(pages__isnull=True, then=Value("unknown")),
                default=Value("short"),
            ),
            discount=Case(
                When(in_print=True, then=F("price") * D("0.9")), default=F("price"),
                output_field=DecimalField(max_digits=10, decimal_places=3),
            ),
            flag=Case(When(pages__gt=150, then=True), default=False),
        ),
        MODELS,
    ),
    (
        "subquery_exists",
        lambda a: A(a).annotate(
            latest=latest_book("created"), latest_price=latest_book("price"), latest_meta=latest_book("metadata"),
            latest_isbn=latest_book("isbn"),
            has_books=Exists(m.Book.objects.filter(author=OuterRef("pk"))),
        ),
        MODELS,
    ),
    (
        "functions",
        lambda a: B(a).annotate(
            c_float=Cast("pages", FloatField()), c_int=Cast("price", IntegerField()), c_date=Cast("created", DateField()),
            t_day=TruncDay("created"), t_month_tokyo=TruncMonth("created", tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo")),
            t_date=TruncDate("created"), t_time=TruncTime("created"), year=ExtractYear("created"),
            wd=ExtractWeekDay("created"), coalesced=Coalesce("pages", 0), concat=Concat("title", Value("!")),
            upper=Upper("title"), length=Length("title"), greatest=Greatest("pages", Value(150)),
            rounded=Round("price", 1), power=Power("pages", 2), absolute=Abs(F("pages") - 200),
        ),
        MODELS,
    ),
    ("json_key_annotations", lambda a: B(a).annotate(kt=KT("metadata__key"), kv=F("metadata__a"), deep=F("metadata__c__d")), MODELS),
    (
        "postgres_aggregates",
        lambda a: A(a).annotate(
            titles=ArrayAgg("books__title", order_by="books__title"),
            joined=StringAgg("books__title", delimiter=", ", order_by="-books__title"),
            metas=JSONBAgg("books__metadata", order_by="books__id"),
            all_print=BoolAnd("books__in_print"), bits=BitOr("books__pages"),
            prices=ArrayAgg("books__price", order_by="books__id"),
            created=ArrayAgg("books__created", order_by="books__id"),
        ),
        MODELS,
    ),
    ("annotate_select_related", lambda a: B(a).select_related("author__publisher").annotate(n_tags=Count("tags")), MODELS),
    ("annotate_only", lambda a: B(a).only("title").annotate(n_reviews=Count("reviews"), avg_stars=Avg("reviews__stars")), MODELS),
    ("alias_filter", lambda a: B(a).alias(np=F("pages") * 2).filter(np__gt=250), MODELS),
    ("extra_select", lambda a: B(a).extra(select={"triple": "pages * 3", "lit": "'x'"}), MODELS),
    ("distinct_order_related", lambda a: B(a).order_by("author__name", "title").distinct(), MODELS),
    ("distinct_on", lambda a: B(a).order_by("author_id", "-price").distinct("author_id"), MODELS),
    ("extra_select_related", lambda a: B(a).select_related("author__publisher").extra(select={"x": "1", "y": "pages - 1"}), MODELS),
    ("extra_select_params", lambda a: B(a).extra(select={"p": "%s || title"}, select_params=("pre-",)).values("p", "id"), DICTS),
    ("values_duplicate_names", lambda a: B(a).values("title", "title", "pages"), DICTS),
    ("values_list_duplicate_names", lambda a: B(a).values_list("title", "pages", "title"), TUPLES),
    ("union", lambda a: B(a).filter(pages__lt=150).union(B(a).filter(price__gt=20)).order_by("id"), MODELS),
    ("slice", lambda a: B(a)[2:7], MODELS),
    ("filter_q", lambda a: B(a).filter(Q(author__isnull=True) | Q(metadata__has_key="a")), MODELS),
    ("all_types_filtered_values", lambda a: m.AllTypes.objects.using(a).filter(irange__contains=5).values("label", "irange"), DICTS),
    # ---- related managers, known related objects
    ("known_related_fk", lambda a: A(a).get(name="Ann").books.all(), MODELS),
    ("known_related_select_related", lambda a: A(a).get(name="Ann").books.select_related("editor__publisher"), MODELS),
    ("known_related_editor", lambda a: A(a).get(name="Bob").edited.all(), MODELS),
    ("known_related_publisher", lambda a: m.Publisher.objects.using(a).get(name="Gallimard").authors.all(), MODELS),
    ("m2m_manager", lambda a: B(a).get(title="Book 03").tags.all(), MODELS),
    ("m2m_reverse_manager", lambda a: m.Tag.objects.using(a).get(name="tag-0").books.all(), MODELS),
    ("generic_relation_manager", lambda a: B(a).get(title="Book 00").notes.all(), MODELS),
    ("reverse_o2o_access", lambda a: [x.profile for x in A(a).filter(profile__isnull=False)], MODELS),
    # ---- prefetch_related
    ("prefetch_m2m", lambda a: B(a).prefetch_related("tags"), MODELS),
    ("prefetch_reverse_fk", lambda a: B(a).prefetch_related("reviews"), MODELS),
    ("prefetch_nested", lambda a: A(a).prefetch_related("books__tags", "books__reviews"), MODELS),
    (
        "prefetch_to_attr",
        lambda a: A(a).prefetch_related(
            Prefetch("books", queryset=m.Book.objects.filter(pages__isnull=False).select_related("editor"), to_attr="paged")
        ),
        MODELS,
    ),
    ("prefetch_generic_relation", lambda a: B(a).prefetch_related("notes"), MODELS),
    ("prefetch_gfk", lambda a: m.TaggedItem.objects.using(a).exclude(object_id=999999).prefetch_related("content_object"), MODELS),
    ("gfk_access", lambda a: [(t, t.content_object) for t in m.TaggedItem.objects.using(a)], MODELS),
    # ---- values()
    ("values", lambda a: B(a).values(), DICTS),
    ("values_fields", lambda a: B(a).values("title", "author__name", "author__publisher__country__name", "price"), DICTS),
    ("values_expressions", lambda a: B(a).values("id", upper=Upper("title"), p2=F("pages") * 2, lit=Value(D("1.10"))), DICTS),
    ("values_group_by", lambda a: B(a).values("author").annotate(n=Count("id"), avg=Avg("pages"), total=Sum("price")).order_by("author"), DICTS),
    ("values_annotate_before", lambda a: B(a).annotate(n=Count("tags")).values("n", "title"), DICTS),
    ("values_m2m_multiplies", lambda a: B(a).values("title", "tags__name").order_by("title", "tags__name"), DICTS),
    ("values_json_keys", lambda a: B(a).values("metadata__a", "metadata__c__d", "metadata__b__1", "metadata"), DICTS),
    ("values_transforms", lambda a: B(a).values("created__date", "created__year", "created__time", "published__month"), DICTS),
    ("values_extra", lambda a: B(a).extra(select={"lit": "1.5::float8"}).values("lit", "title"), DICTS),
    ("values_reverse_o2o", lambda a: A(a).values("name", "profile__bio", "profile__id"), DICTS),
    ("values_mti", lambda a: m.Place.objects.using(a).values("name", "restaurant__rating", "restaurant__italianrestaurant__opened"), DICTS),
    ("values_composite_pk", lambda a: m.OrderLine.objects.using(a).values("pk", "qty"), TUPLES),
    ("values_custom_field", lambda a: m.AllTypes.objects.using(a).values("money", "tagged", "attachment"), DICTS),
    # ---- values_list()
    ("values_list", lambda a: B(a).values_list(), TUPLES),
    ("values_list_reordered", lambda a: B(a).values_list("pages", "title", "id", "created"), TUPLES),
    ("values_list_annotation_first", lambda a: B(a).annotate(n=Count("tags")).values_list("n", "title", "price"), TUPLES),
    ("values_list_expression_positions", lambda a: B(a).values_list(F("price") * 2, "title", Upper("title")), TUPLES),
    ("values_list_related", lambda a: B(a).values_list("author__publisher__country", "editor__name", "isbn"), TUPLES),
    ("values_list_composite_pk", lambda a: m.OrderLine.objects.using(a).values_list("qty", "pk"), TUPLES),
    ("values_list_named", lambda a: B(a).values_list("title", "price", named=True), NONE),
    ("values_list_flat", lambda a: B(a).values_list("created", flat=True), FLAT),
    ("values_list_flat_json", lambda a: B(a).values_list("metadata", flat=True), FLAT),
    ("values_list_flat_key", lambda a: B(a).values_list("metadata__a", flat=True), FLAT),
    ("values_list_flat_annotation", lambda a: A(a).annotate(avg=Avg("books__pages")).values_list("avg", flat=True), FLAT),
    ("values_list_flat_composite_pk", lambda a: m.OrderLine.objects.using(a).values_list("pk", flat=True), TUPLES),
    ("dates", lambda a: B(a).dates("published", "year"), FLAT),
    ("datetimes", lambda a: B(a).datetimes("created", "month"), FLAT),
    ("datetimes_tz", lambda a: B(a).datetimes("created", "day", tzinfo=zoneinfo.ZoneInfo("Pacific/Chatham")), FLAT),
    ("values_union", lambda a: B(a).filter(pages__lt=150).values_list("title", "price").union(B(a).filter(price__gt=20).values_list("title", "price")).order_by("title"), TUPLES),
    ("flat_distinct_hidden_ordering", lambda a: B(a).order_by("-created").values_list("author__name", flat=True).distinct(), FLAT),
    ("values_distinct_hidden_ordering", lambda a: B(a).order_by("-pages", "id").values("author").distinct(), DICTS),
    # ---- many rows: several fetch chunks
    ("many_rows", lambda a: m.ProfileRow.objects.using(a), MODELS),
    ("many_rows_values", lambda a: m.ProfileRow.objects.using(a).values(), DICTS),
    ("many_rows_values_list", lambda a: m.ProfileRow.objects.using(a).values_list("uid", "amount", "moment"), TUPLES),
    ("many_rows_flat", lambda a: m.ProfileRow.objects.using(a).values_list("note", flat=True), FLAT),
    ("many_rows_iterator", lambda a: list(m.ProfileRow.objects.using(a).iterator(chunk_size=333)), MODELS),
    ("many_rows_iterator_big_chunk", lambda a: list(m.ProfileRow.objects.using(a).defer("note").iterator(chunk_size=5000)), MODELS),
    ("many_rows_annotated", lambda a: m.ProfileRow.objects.using(a).annotate(r=F("ratio") * 2, d=TruncDate("moment")), MODELS),
    # ---- single objects and dict results
    ("get", lambda a: B(a).select_related("author").get(title="Book 01"), MODELS),
    ("first", lambda a: B(a).first(), MODELS),
    ("last", lambda a: B(a).last(), MODELS),
    ("latest", lambda a: B(a).latest("created"), MODELS),
    ("in_bulk", lambda a: B(a).in_bulk(), MODELS),
    ("in_bulk_field", lambda a: m.Tag.objects.using(a).in_bulk(["tag-0", "tag-2"], field_name="name"), MODELS),
    ("in_bulk_uuid_pk", lambda a: m.Review.objects.using(a).in_bulk([uuid.UUID(int=1000), uuid.UUID(int=1011)]), MODELS),
    ("aggregate", lambda a: B(a).aggregate(
        avg=Avg("pages"), avg_price=Avg("price"), s=Sum("price"), mx=Max("created"), n=Count("id"),
        fl=Sum("pages", output_field=FloatField()), sd=StdDev("pages"),
    ), NONE),
    # ---- iterator(): server-side cursors
    ("iterator_chunked", lambda a: list(B(a).iterator(chunk_size=3)), MODELS),
    ("iterator_select_related", lambda a: list(B(a).select_related("author__publisher").iterator(chunk_size=5)), MODELS),
    ("iterator_prefetch", lambda a: list(B(a).prefetch_related("tags").iterator(chunk_size=4)), MODELS),
    ("iterator_values", lambda a: list(B(a).values("title", "metadata").iterator(chunk_size=2)), DICTS),
    ("iterator_values_list", lambda a: list(B(a).values_list("id", "price").iterator(chunk_size=5)), TUPLES),
    ("iterator_flat", lambda a: list(B(a).values_list("title", flat=True).iterator(chunk_size=1)), FLAT),
    ("iterator_default_chunk", lambda a: list(m.AllTypes.objects.using(a).iterator()), MODELS),
    # ---- models that must not be built natively
    ("custom_from_db", lambda a: m.Snapshot.objects.using(a), NONE),
    ("post_init_receiver", lambda a: m.Tracked.objects.using(a), NONE),
    ("post_init_receiver_only", lambda a: m.Tracked.objects.using(a).only("name"), NONE),
    ("imagefield_post_init", lambda a: m.Photo.objects.using(a), NONE),
    ("descriptor_with_set", lambda a: m.Shouty.objects.using(a), TUPLES),
    ("values_of_post_init_model", lambda a: m.Tracked.objects.using(a).values("owner__name", "name"), DICTS),
]

# ContentType.get_all_objects_for_this_type() queries the default alias whatever the
# instance's database, so the "plain" run builds the prefetched objects on "default" too.
DJANGO_USES_DEFAULT = {"prefetch_gfk"}

# empty querysets: no Plan when Django already knows the result is empty
EMPTY_CASES = [
    ("none", lambda a: B(a).none(), NONE),
    ("pk_in_empty", lambda a: B(a).filter(pk__in=[]), NONE),
    ("values_none", lambda a: B(a).values().none(), NONE),
    ("values_list_pk_in_empty", lambda a: B(a).filter(pk__in=[]).values_list("title"), NONE),
    ("flat_none", lambda a: B(a).values_list("id", flat=True).none(), NONE),
    ("no_match", lambda a: B(a).filter(title="no such title"), MODELS),
    ("no_match_values", lambda a: B(a).filter(title="no such title").values(), DICTS),
    ("no_match_select_related", lambda a: B(a).select_related("author__publisher").filter(title="nope"), MODELS),
    ("no_match_iterator", lambda a: list(B(a).filter(title="nope").iterator(chunk_size=2)), MODELS),
    ("in_bulk_empty", lambda a: B(a).in_bulk([]), NONE),
    ("slice_zero", lambda a: B(a)[:0], NONE),
    ("slice_past_end", lambda a: B(a)[100:200], MODELS),
]


def _ids(cases):
    return [c[0] for c in cases]


@pytest.mark.parametrize("via", ["plain", "wrapped"])
@pytest.mark.parametrize("name,build,expect", CASES, ids=_ids(CASES))
def test_shape(plan_spy, name, build, expect, via):
    compare(plan_spy, build, expect, via=via, what=name, django_plans_ok=name in DJANGO_USES_DEFAULT)


@pytest.mark.parametrize("via", ["plain", "wrapped"])
@pytest.mark.parametrize("name,build,expect", EMPTY_CASES, ids=_ids(EMPTY_CASES))
def test_empty(plan_spy, name, build, expect, via):
    native, django = compare(plan_spy, build, expect, via=via, what=name, allow_empty=True)
    assert len(native) == 0


ALL_TYPES_FIELDS = [f.attname for f in m.AllTypes._meta.concrete_fields]


@pytest.mark.parametrize("field", ALL_TYPES_FIELDS)
def test_each_field_flat(plan_spy, field):
    compare(plan_spy, lambda a: m.AllTypes.objects.using(a).values_list(field, flat=True), FLAT, what=field)


@pytest.mark.parametrize("field", ALL_TYPES_FIELDS)
def test_each_field_only(plan_spy, field):
    compare(plan_spy, lambda a: m.AllTypes.objects.using(a).only(field), MODELS, what=field)


@pytest.mark.parametrize("field", ALL_TYPES_FIELDS)
def test_each_field_as_annotation(plan_spy, field):
    """The same column as a model field and as an F() annotation: same converters."""
    compare(plan_spy, lambda a: m.AllTypes.objects.using(a).only("id").annotate(x=F(field)), MODELS, what=field)
