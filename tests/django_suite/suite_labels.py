"""Label lists (Django test-suite app directories) used by run.py."""

CORE = """
backends db_typecasts transactions transaction_hooks select_for_update basic
queries lookup custom_lookups raw_query null_queries ordering update delete
get_or_create bulk_create annotations aggregation aggregation_regress
expressions expressions_case db_functions select_related select_related_regress
prefetch_related model_inheritance many_to_one many_to_many one_to_one
model_regress save_delete_hooks signals queryset_pickle model_fields timezones
datetimes dates postgres_tests migrations schema introspection inspectdb
indexes constraints serializers fixtures test_utils
""".split()

EXTENDED = """
multiple_database servers async test_runner db_utils datatypes from_db_value
field_defaults custom_pk composite_pk custom_columns distinct_on_fields
expressions_window filtered_relation xor_lookups or_lookups string_lookup
get_earliest_or_latest pagination force_insert_update update_only_fields defer
defer_regress delete_regress m2m_through m2m_through_regress m2m_regress
m2m_recursive m2m_signals generic_relations generic_relations_regress
foreign_object known_related_objects nested_foreign_keys reverse_lookup null_fk
null_fk_ordering many_to_one_null select_related_onetoone proxy_models
custom_managers order_with_respect_to contenttypes_tests model_indexes
unmanaged_models migrate_signals migration_test_data_persistence sessions_tests
validation model_forms model_formsets fixtures_regress check_framework dbshell
cache
""".split()

LISTS = {
    "core": CORE,
    "extended": EXTENDED,
    "all": CORE + [label for label in EXTENDED if label not in CORE],
}
