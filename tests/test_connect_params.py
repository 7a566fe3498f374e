"""connect_params.check_connect_value: the rules connect() applies to libpq keyword values,
asked without connecting (Django's OPTIONS are checked with it when the settings are read)."""
import pytest
from django.core.exceptions import ImproperlyConfigured

from django_rustpg import _native, dbapi
from django_rustpg.options import validate_options

VALID = {
    "sslmode": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
    "target_session_attrs": ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"],
    "load_balance_hosts": ["disable", "random"],
}


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in VALID.items() for v in vs])
def test_libpq_values_pass(key, value):
    assert _native.check_connect_value(key, value) is None
    validate_options({key: value}, {})


@pytest.mark.parametrize("key", sorted(VALID))
@pytest.mark.parametrize("value", ["bogus", "", "Read-Write "])
def test_bad_values_name_key_and_value_as_connect_does(key, value, dsn_params):
    with pytest.raises(dbapi.ProgrammingError, match=key) as checked:
        _native.check_connect_value(key, value)
    assert f'"{value}"' in str(checked.value)
    with pytest.raises(ImproperlyConfigured, match=f"OPTIONS\\['{key}'\\]"):
        validate_options({key: value}, {})
    # connect() refuses the same value, by the same rule.
    with pytest.raises(dbapi.Error, match=key):
        dbapi.connect(**dsn_params, **{key: value}).close()


def test_unknown_key_is_refused():
    with pytest.raises(dbapi.ProgrammingError, match="gssencmode"):
        _native.check_connect_value("gssencmode", "disable")
